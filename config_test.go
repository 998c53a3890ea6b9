package k8sleaderelection

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func TestNewLeaderElectorRejectsBadConfig(t *testing.T) {
	valid := func() LeaderElectionConfig {
		return testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", ""))
	}
	cases := []struct {
		name   string
		change func(*LeaderElectionConfig)
		want   []string
	}{
		{"lease duration not above renew deadline", func(c *LeaderElectionConfig) { c.LeaseDuration = c.RenewDeadline },
			[]string{"leaseDuration (10s) must be greater than renewDeadline (10s)"}},
		{"renew deadline not above jittered retry", func(c *LeaderElectionConfig) { c.RenewDeadline = 2400 * time.Millisecond },
			[]string{"renewDeadline (2.4s) must be greater than retryPeriod*JitterFactor (2.4s)"}},
		{"zero lease duration", func(c *LeaderElectionConfig) { c.LeaseDuration = 0 },
			[]string{"leaseDuration (0s) must be greater than zero"}},
		{"negative renew deadline", func(c *LeaderElectionConfig) { c.RenewDeadline = -time.Second },
			[]string{"renewDeadline (-1s) must be greater than zero"}},
		{"zero retry period", func(c *LeaderElectionConfig) { c.RetryPeriod = 0 },
			[]string{"retryPeriod (0s) must be greater than zero"}},
		{"no OnStartedLeading", func(c *LeaderElectionConfig) { c.Callbacks.OnStartedLeading = nil },
			[]string{"Callbacks.OnStartedLeading must not be nil"}},
		{"no OnStoppedLeading", func(c *LeaderElectionConfig) { c.Callbacks.OnStoppedLeading = nil },
			[]string{"Callbacks.OnStoppedLeading must not be nil"}},
		{"no lock", func(c *LeaderElectionConfig) { c.Lock = nil },
			[]string{"Lock must not be nil"}},
		{"typed nil lock", func(c *LeaderElectionConfig) { c.Lock = (*rl.LeaseLock)(nil) },
			[]string{"Lock must not be a nil *k8sresourcelock.LeaseLock"}},
		{"empty identity", func(c *LeaderElectionConfig) {
			c.Lock = newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "", "")
		}, []string{"Lock identity (ResourceLockConfig.Identity) must not be empty"}},
		{"coordinated", func(c *LeaderElectionConfig) { c.Coordinated = true },
			[]string{"Coordinated is set, but coordinated leader election is not supported yet"}},
		{"several at once", func(c *LeaderElectionConfig) { c.Lock = nil; c.RetryPeriod = 0 },
			[]string{"Lock must not be nil", "retryPeriod (0s) must be greater than zero"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lec := valid()
			tc.change(&lec)
			le, err := NewLeaderElector(lec)
			if err == nil || le != nil {
				t.Fatalf("NewLeaderElector accepted the config")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			func() {
				defer func() {
					if r := recover(); r == nil {
						t.Error("RunOrDie did not panic")
					}
				}()
				RunOrDie(context.Background(), lec)
			}()
		})
	}
	if _, err := NewLeaderElector(valid()); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestLeaseDurationIsRoundedUpInTheRecord(t *testing.T) {
	for d, want := range map[time.Duration]int{
		15 * time.Second: 15, 1500 * time.Millisecond: 2, 300 * time.Millisecond: 1, time.Nanosecond: 1,
		math.MaxInt64: math.MaxInt32, math.MaxInt32 * time.Second: math.MaxInt32,
	} {
		if got := wholeSeconds(d); got != want {
			t.Errorf("wholeSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
