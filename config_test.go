package k8sleaderelection

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
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
			[]string{"renewDeadline (2.4s) must be greater than retryPeriod*JitterFactor (2s*1.2)"}},
		{"negative renew period", func(c *LeaderElectionConfig) { c.RenewPeriod = -time.Second },
			[]string{"renewPeriod (-1s) must not be negative (zero derives it from the other timings)"}},
		{"renew period below retry period", func(c *LeaderElectionConfig) { c.RenewPeriod = time.Second },
			[]string{"renewPeriod (1s) must be between retryPeriod (2s) and 5s, the shortest of leaseDuration/3, renewDeadline/2 and leaseDuration-(2+JitterFactor)*retryPeriod"}},
		{"renew period above what the timings allow", func(c *LeaderElectionConfig) { c.RenewPeriod = 6 * time.Second },
			[]string{"renewPeriod (6s) must be between retryPeriod (2s) and 5s"}},
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
		{"key comparison on a lock without a key", func(c *LeaderElectionConfig) {
			c.Lock, c.KeyComparison = upstreamLock{c.Lock}, func(string) bool { return true }
		}, []string{"KeyComparison is set but Lock (k8sleaderelection.upstreamLock) has no Key: we would compete with the empty key; give Lock a Key method (embed k8sresourcelock.Keyed, not Interface, in a wrapper)"}},
		{"key comparison on a multilock whose primary has no key", func(c *LeaderElectionConfig) {
			c.Lock = &rl.MultiLock{Primary: upstreamLock{c.Lock}, Secondary: newTestLock(t, fakekube.New(), rl.ConfigMapsResourceLock, "a", "stable")}
			c.KeyComparison = func(string) bool { return true }
		}, []string{"KeyComparison is set but Lock's Primary (k8sleaderelection.upstreamLock) has no Key: we would compete with the empty key; give Lock's Primary a Key method"}},
		{"coordinated with a key comparison", func(c *LeaderElectionConfig) {
			c.Coordinated, c.KeyComparison = true, func(string) bool { return true }
		}, []string{"KeyComparison must be nil when Coordinated is set: the control plane picks the leader"}},
		{"coordinated on a configmap lock", func(c *LeaderElectionConfig) {
			c.Coordinated, c.Lock = true, newTestLock(t, fakekube.New(), rl.ConfigMapsResourceLock, "a", "")
		}, []string{"Coordinated needs a Lease lock (*k8sresourcelock.LeaseLock), not *k8sresourcelock.ConfigMapLock: the control plane elects through a Lease"}},
		{"coordinated on a multilock", func(c *LeaderElectionConfig) {
			c.Coordinated, c.Lock = true, newTestLock(t, fakekube.New(), rl.ConfigMapsLeasesResourceLock, "a", "")
		}, []string{"Coordinated needs a Lease lock (*k8sresourcelock.LeaseLock), not *k8sresourcelock.MultiLock"}},
		{"several at once", func(c *LeaderElectionConfig) { c.Lock = nil; c.RetryPeriod = 0 },
			[]string{"Lock must not be nil", "retryPeriod (0s) must be greater than zero"}},
		{"retry period below the minimum", func(c *LeaderElectionConfig) { c.RetryPeriod = time.Millisecond },
			[]string{"retryPeriod (1ms) must be at least MinRetryPeriod (100ms)"}},
		{"retry period near the largest duration", func(c *LeaderElectionConfig) { c.RetryPeriod = math.MaxInt64 },
			[]string{"renewDeadline (10s) must be greater than retryPeriod*JitterFactor (2562047h47m16.854775807s*1.2)"}},
		{"lease duration above the maximum", func(c *LeaderElectionConfig) {
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 2*time.Hour, time.Hour, time.Minute
		}, []string{"leaseDuration (2h0m0s) must be at most MaxLeaseDuration (1h0m0s)"}},
		{"empty multilock", func(c *LeaderElectionConfig) { c.Lock = &rl.MultiLock{} },
			[]string{"multilock: Primary must not be nil (got <nil>)", "multilock: Secondary must not be nil (got <nil>)"}},
		{"multilock without a secondary", func(c *LeaderElectionConfig) {
			c.Lock = &rl.MultiLock{Primary: newTestLock(t, fakekube.New(), rl.ConfigMapsResourceLock, "a", "")}
		}, []string{"multilock: Secondary must not be nil"}},
		{"multilock with a typed nil primary", func(c *LeaderElectionConfig) {
			c.Lock = &rl.MultiLock{Primary: (*rl.ConfigMapLock)(nil), Secondary: newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", "")}
		}, []string{"multilock: Primary must not be nil (got *k8sresourcelock.ConfigMapLock)"}},
		{"lease lock without a client", func(c *LeaderElectionConfig) {
			c.Lock = &rl.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: "ns", Name: "n"}, LockConfig: rl.ResourceLockConfig{Identity: "a"}}
		}, []string{"Lock: lease lock ns/n: Client must not be nil"}},
		{"multilock with a half built badly", func(c *LeaderElectionConfig) {
			c.Lock = &rl.MultiLock{
				Primary:   &rl.ConfigMapLock{ConfigMapMeta: metav1.ObjectMeta{Namespace: "ns"}, LockConfig: rl.ResourceLockConfig{Identity: "a"}},
				Secondary: newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", ""),
			}
		}, []string{`multilock Primary: configmap lock in namespace "ns": name must not be empty`, "configmap lock ns/: Client must not be nil"}},
		{"lease lock with a typed nil client", func(c *LeaderElectionConfig) {
			var client *coordinationv1client.CoordinationV1Client // NewForConfig's, its error ignored
			c.Lock = &rl.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: "ns", Name: "n"}, Client: client, LockConfig: rl.ResourceLockConfig{Identity: "a"}}
		}, []string{"Lock: lease lock ns/n: Client must not be nil"}},
		{"a custom lock that panics", func(c *LeaderElectionConfig) { c.Lock = panickingLock{} },
			[]string{"Lock (k8sleaderelection.panickingLock) panicked while being checked (is it fully built?): half-built lock"}},
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
		MaxLeaseDuration: 3600, MaxLeaseDuration - time.Nanosecond: 3600,
	} {
		if got := durations.WholeSeconds(d); got != want {
			t.Errorf("durations.WholeSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

// TestLimitsAreAccepted: the bounds themselves are valid configs.
func TestLimitsAreAccepted(t *testing.T) {
	lec := testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", ""))
	lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod = MaxLeaseDuration, MaxLeaseDuration-time.Second, MinRetryPeriod
	if _, err := NewLeaderElector(lec); err != nil {
		t.Fatalf("config at the limits rejected: %v", err)
	}
}

// TestRenewPeriodBoundsAreAccepted: RetryPeriod (client-go's pace) and the
// longest period the timings allow are valid RenewPeriods.
func TestRenewPeriodBoundsAreAccepted(t *testing.T) {
	for _, period := range []time.Duration{retryPeriod, corePeriod} {
		lec := testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", ""))
		lec.RenewPeriod = period
		le, err := NewLeaderElector(lec)
		if err != nil {
			t.Fatalf("renewPeriod %v rejected: %v", period, err)
		}
		if got := le.renewPeriod(); got != period {
			t.Errorf("renewPeriod() = %v with RenewPeriod %v", got, period)
		}
	}
}

// panickingLock is a custom lock built so badly that its methods panic.
type panickingLock struct{ rl.Interface }

func (panickingLock) Identity() string { panic("half-built lock") }

// typedNilOf holds, for each interface type a caller can set in a
// LeaderElectionConfig, a nil pointer of a type that implements it: the
// value a constructor that failed leaves behind, set but unusable.
var typedNilOf = map[reflect.Type]any{
	reflect.TypeFor[rl.Interface]():               (*rl.LeaseLock)(nil),
	reflect.TypeFor[clock.WithDelayedExecution](): (*clocktesting.FakeClock)(nil),
}

// TestEveryInterfaceFieldRejectsTypedNil: each interface-typed field of a
// LeaderElectionConfig, found by reflection so that a new one is covered
// the day it is added, is refused with an error naming it when it holds a
// typed nil, instead of panicking in Run.
func TestEveryInterfaceFieldRejectsTypedNil(t *testing.T) {
	fields := nilness.InterfaceFields(reflect.TypeFor[LeaderElectionConfig]())
	if len(fields) < 2 {
		t.Fatalf("found only the interface fields %v", fields)
	}
	for name, index := range fields {
		t.Run(name, func(t *testing.T) {
			lec := testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", ""))
			field := reflect.ValueOf(&lec).Elem().FieldByIndex(index)
			typedNil, ok := typedNilOf[field.Type()]
			if !ok {
				t.Fatalf("no typed nil known for %s (%v): add one to typedNilOf, and make validate refuse it", name, field.Type())
			}
			field.Set(reflect.ValueOf(typedNil))
			want := fmt.Sprintf("%s must not be a nil %T", name, typedNil)
			le, err := NewLeaderElector(lec)
			if err == nil || le != nil {
				t.Fatalf("NewLeaderElector accepted a typed nil %s", name)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
			func() {
				defer func() {
					r := recover()
					if err, ok := r.(error); !ok || !strings.Contains(err.Error(), want) {
						t.Fatalf("RunOrDie panicked with %v, want the config error saying %q", r, want)
					}
				}()
				RunOrDie(context.Background(), lec)
			}()
		})
	}
}
