package crelection

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func TestNewManagerRejectsBadInput(t *testing.T) {
	e := electiontest.New("ns", "lock")
	second := time.Second
	cases := []struct {
		name     string
		options  func(*manager.Options)
		election func(*k8sleaderelection.LeaderElectionConfig)
		want     string
	}{
		{name: "controller-runtime's election on", options: func(o *manager.Options) { o.LeaderElection = true }, want: "options.LeaderElection is set"},
		{name: "controller-runtime's lock", options: func(o *manager.Options) { o.LeaderElectionResourceLockInterface = &resourcelock.LeaseLock{} }, want: "options.LeaderElectionResourceLockInterface is set"},
		{name: "lock kind", options: func(o *manager.Options) { o.LeaderElectionResourceLock = "leases" }, want: "options.LeaderElectionResourceLock is set"},
		{name: "lock namespace", options: func(o *manager.Options) { o.LeaderElectionNamespace = "ns" }, want: "options.LeaderElectionNamespace is set"},
		{name: "lock name", options: func(o *manager.Options) { o.LeaderElectionID = "lock" }, want: "options.LeaderElectionID is set"},
		{name: "lock client", options: func(o *manager.Options) { o.LeaderElectionConfig = unreachable }, want: "options.LeaderElectionConfig is set"},
		{name: "lock labels", options: func(o *manager.Options) { o.LeaderElectionLabels = map[string]string{"a": "b"} }, want: "options.LeaderElectionLabels is set"},
		{name: "release", options: func(o *manager.Options) { o.LeaderElectionReleaseOnCancel = true }, want: "options.LeaderElectionReleaseOnCancel is set"},
		{name: "lease", options: func(o *manager.Options) { o.LeaseDuration = &second }, want: "options.LeaseDuration is set"},
		{name: "renew deadline", options: func(o *manager.Options) { o.RenewDeadline = &second }, want: "options.RenewDeadline is set"},
		{name: "retry period", options: func(o *manager.Options) { o.RetryPeriod = &second }, want: "options.RetryPeriod is set"},
		{name: "OnStartedLeading", election: func(c *k8sleaderelection.LeaderElectionConfig) {
			c.Callbacks.OnStartedLeading = func(context.Context) {}
		}, want: "election.Callbacks.OnStartedLeading is set"},
		{name: "timings", election: func(c *k8sleaderelection.LeaderElectionConfig) { c.RenewDeadline = c.LeaseDuration }, want: "election: invalid leader election config: leaseDuration (15s) must be greater than renewDeadline (15s)"},
		{name: "no lock", election: func(c *k8sleaderelection.LeaderElectionConfig) { c.Lock = nil }, want: "election: invalid leader election config: Lock must not be nil"},
		// Taken as "do not wait", it handed the lock over while the
		// runnables still ran.
		{name: "negative stop timeout", election: func(c *k8sleaderelection.LeaderElectionConfig) { c.StopTimeout = -1 }, want: "election.StopTimeout (-1ns) is negative"},
		{name: "stop timeout beyond the grace period", election: func(c *k8sleaderelection.LeaderElectionConfig) { c.StopTimeout = time.Hour },
			want: "options.GracefulShutdownTimeout (30s) is shorter than election.StopTimeout (1h0m0s) plus election.RenewDeadline (10s)"},
		{name: "no grace period", options: func(o *manager.Options) { o.GracefulShutdownTimeout = new(time.Duration(0)) },
			want: "options.GracefulShutdownTimeout (0s) is shorter than election.StopTimeout (10s) plus election.RenewDeadline (10s)"},
		{name: "grace period and stop timeout that overflow", options: func(o *manager.Options) {
			o.GracefulShutdownTimeout = new(time.Duration(math.MaxInt64 - 10*time.Second))
		},
			election: func(c *k8sleaderelection.LeaderElectionConfig) { c.StopTimeout = math.MaxInt64 - 5*time.Second },
			want:     "is shorter than election.StopTimeout (2562047h47m11.854775807s) plus election.RenewDeadline (10s)"},
		{name: "nil clock", election: func(c *k8sleaderelection.LeaderElectionConfig) { c.Clock = (*clocktesting.FakeClock)(nil) }, want: "election.Clock is a nil *testing.FakeClock"},
		{name: "nil lock", election: func(c *k8sleaderelection.LeaderElectionConfig) { c.Lock = (*rl.LeaseLock)(nil) }, want: "Lock must not be a nil *k8sresourcelock.LeaseLock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			options := manager.Options{}
			election := electionConfig(e, "rev-1", "rev-1")
			if tc.options != nil {
				tc.options(&options)
			}
			if tc.election != nil {
				tc.election(&election)
			}
			mgr, err := NewManager(unreachable, options, election)
			if err == nil || mgr != nil {
				t.Fatalf("NewManager = %v, %v; want an error", mgr, err)
			}
			if !strings.HasPrefix(err.Error(), "crelection: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want it to say %q", err, tc.want)
			}
		})
	}
}

func TestNewManagerNamesEveryProblemAtOnce(t *testing.T) {
	e := electiontest.New("ns", "lock")
	election := electionConfig(e, "rev-1", "rev-1")
	election.Callbacks.OnStartedLeading = func(context.Context) {}
	election.RetryPeriod = 0
	_, err := NewManager(unreachable, manager.Options{LeaderElection: true, LeaderElectionID: "x"}, election)
	if err == nil {
		t.Fatal("NewManager accepted four problems")
	}
	for _, want := range []string{"options.LeaderElection is set", "options.LeaderElectionID is set", "election.Callbacks.OnStartedLeading", "retryPeriod (0s)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The elector's own error stays reachable.
	var inner interface{ Unwrap() []error }
	if !errors.As(err, &inner) {
		t.Errorf("error %q does not wrap the elector's config error", err)
	}
}

func TestNewManagerAcceptsAValidElection(t *testing.T) {
	e := electiontest.New("ns", "lock")
	election := electionConfig(e, "rev-1", "rev-1")
	election.Callbacks.OnStoppedLeading = nil // optional here: the manager has its own
	if _, err := NewManager(unreachable, manager.Options{}, election); err != nil {
		t.Fatalf("NewManager: %v", err)
	}
}

func TestAddRejectsNil(t *testing.T) {
	mgr := newTestManager(t, electionConfig(electiontest.New("ns", "lock"), "rev-1", "rev-1"))
	if err := mgr.Add(nil); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("Add(nil) = %v; want an error saying the runnable is nil", err)
	}
	// A typed nil would be kept, and its Start called, panicking the
	// process, only when this replica is elected: a standby that runs
	// fine would crash at failover.
	if err := mgr.Add((*probe)(nil)); err == nil || !strings.Contains(err.Error(), "nil *crelection.probe") {
		t.Fatalf("Add((*probe)(nil)) = %v; want an error saying the runnable is nil", err)
	}
	// A nil func is as nil as a nil pointer: kept, it would panic in a
	// goroutine of the term when this replica is elected.
	if err := mgr.Add(manager.RunnableFunc(nil)); err == nil || !strings.Contains(err.Error(), "nil manager.RunnableFunc") {
		t.Fatalf("Add(RunnableFunc(nil)) = %v; want an error saying the runnable is nil", err)
	}
}
