package prommetrics_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

// These tests drive real electors, which report to the provider TestMain
// installed, in an election held in memory on a fake clock. Each replica
// has an election name of its own, as replicas in separate processes would
// have a process each.

var gathered = prometheus.DefaultGatherer

var runs atomic.Int64

// unique tells apart the series of repeated runs of a test (go test
// -count), which all report to the one provider of the process.
func unique(name string) string { return fmt.Sprintf("%s-%d", name, runs.Add(1)) }

// start runs a replica of e called identity, with key and the election
// name name; it never preempts unless outranks is set.
func start(t *testing.T, ctx context.Context, e *electiontest.Election, identity, key, name string, tweak func(*k8sleaderelection.LeaderElectionConfig)) *electiontest.Replica {
	t.Helper()
	lec := e.Config(identity, key)
	lec.Name = name
	if tweak != nil {
		tweak(&lec)
	}
	r, err := e.Start(ctx, lec, false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLeadRenewAndRelease: the status is 1 while the replica leads, each
// renewal is observed, and once it released the lock the status is 0 with
// no preemption counted.
func TestLeadRenewAndRelease(t *testing.T) {
	leadA := unique("lead-a")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lead")
		// Renewing every RetryPeriod, so that each step of the clock
		// below is one renewal, whatever pace a watching leader keeps.
		r := start(t, ctx, e, "a", "", leadA, func(lec *k8sleaderelection.LeaderElectionConfig) {
			lec.ReleaseOnCancel = true
			lec.RenewPeriod = lec.RetryPeriod
		})
		if _, err := r.WaitLeading(ctx, 1); err != nil {
			t.Fatal(err)
		}
		check(t, gathered, leadA, map[string]float64{prommetrics.MasterStatus: 1, prommetrics.Transitions: 1})
		for range 3 {
			e.Advance(electiontest.RetryPeriod)
			synctest.Wait()
		}
		cancel()
		<-r.Done()
		if holder, _, _ := e.Holder(t.Context()); holder != "" {
			t.Fatalf("holder %q after cancel, want the lock released", holder)
		}
		check(t, gathered, leadA, map[string]float64{
			prommetrics.MasterStatus:                  0,
			prommetrics.Transitions:                   1,
			prommetrics.RenewalDuration:               3,
			prommetrics.RenewalFailures:               0,
			prommetrics.Preemptions + "{how=handoff}": 0,
			prommetrics.Preemptions + "{how=steal}":   0,
		})
	})
}

// TestPreemptedByAHandoff: a higher key asks the leader for the lock; the
// leader counts a handoff, the new leader a transition and no preemption.
func TestPreemptedByAHandoff(t *testing.T) {
	handoffA, handoffB := unique("handoff-a"), unique("handoff-b")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "handoff")
		a := start(t, ctx, e, "a", "canary", handoffA, nil)
		if _, err := a.WaitLeading(ctx, 1); err != nil {
			t.Fatal(err)
		}
		b := start(t, ctx, e, "b", "stable", handoffB, func(lec *k8sleaderelection.LeaderElectionConfig) {
			lec.KeyComparison = func(holderKey string) bool { return holderKey != "stable" }
		})
		if err := e.AdvanceUntil(ctx, func() bool { return b.Terms() == 1 }); err != nil {
			t.Fatal(err)
		}
		<-a.Done()
		check(t, gathered, handoffA, map[string]float64{
			prommetrics.MasterStatus:                  0,
			prommetrics.Transitions:                   2, // nobody, then a, then b
			prommetrics.Preemptions + "{how=handoff}": 1,
			prommetrics.Preemptions + "{how=steal}":   0,
		})
		check(t, gathered, handoffB, map[string]float64{
			prommetrics.MasterStatus:                  1,
			prommetrics.Transitions:                   1, // a, then b
			prommetrics.Preemptions + "{how=handoff}": 0,
			prommetrics.Preemptions + "{how=steal}":   0,
		})
	})
}

// TestPreemptedByASteal: another replica writes itself into the lock over
// the leader's running lease, as a higher key does when the leader makes no
// handoff offer (DisableHandoff, or an elector without handoffs).
func TestPreemptedByASteal(t *testing.T) {
	stealA := unique("steal-a")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "steal")
		a := start(t, ctx, e, "a", "canary", stealA, func(lec *k8sleaderelection.LeaderElectionConfig) { lec.DisableHandoff = true })
		term, err := a.WaitLeading(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Hold(ctx, "other", "stable"); err != nil {
			t.Fatal(err)
		}
		if err := e.AdvanceUntil(ctx, func() bool { return term.Err() != nil }); err != nil {
			t.Fatal(err)
		}
		<-a.Done()
		check(t, gathered, stealA, map[string]float64{
			prommetrics.MasterStatus:                  0,
			prommetrics.Transitions:                   2,
			prommetrics.Preemptions + "{how=handoff}": 0,
			prommetrics.Preemptions + "{how=steal}":   1,
			prommetrics.LeaderlessSeconds:             0,
		})
	})
}

// TestLeaderlessTimeAndLostLease: a follower sees the lock released but
// cannot take it for a while: the stretch counts from the release it saw
// to its own acquisition. Cut off later, the leader counts its failed
// renewals, and losing the lease so is not a preemption.
func TestLeaderlessTimeAndLostLease(t *testing.T) {
	leaderlessA := unique("leaderless-a")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "leaderless")
		if err := e.Hold(ctx, "other", ""); err != nil {
			t.Fatal(err)
		}
		// The follower's writes are refused until the test says.
		var refuse atomic.Bool
		refuse.Store(true)
		e.Client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
			lease := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
			if refuse.Load() && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == "a" {
				return true, nil, errors.New("refused")
			}
			return false, nil, nil
		})
		a := start(t, ctx, e, "a", "", leaderlessA, nil)
		e.Advance(5 * time.Second)
		synctest.Wait()
		released := e.Clock.Now()
		if err := e.Release(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for range 20 {
			e.Advance(time.Second)
			synctest.Wait()
		}
		refuse.Store(false)
		if err := e.AdvanceUntil(ctx, func() bool { return a.Terms() == 1 }); err != nil {
			t.Fatal(err)
		}
		lease, err := e.Client.CoordinationV1().Leases("ns").Get(ctx, "leaderless", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		acquired := lease.Spec.AcquireTime.Time
		check(t, gathered, leaderlessA, map[string]float64{
			prommetrics.LeaderlessSeconds: acquired.Sub(released).Seconds(),
			prommetrics.Transitions:       1, // other (the first seen), nobody, then a
		})
		if acquired.Sub(released) < 20*time.Second {
			t.Fatalf("a took the lock %v after the release, while it was refused for 20s", acquired.Sub(released))
		}

		if err := e.LoseLease(ctx, a); err != nil {
			t.Fatal(err)
		}
		<-a.Done()
		failures := value(t, gathered, prommetrics.RenewalFailures, leaderlessA)
		if failures < 1 || value(t, gathered, prommetrics.RenewalDuration, leaderlessA) != failures {
			t.Errorf("%v renewal failures out of %v attempts; want at least one, and only failures",
				failures, value(t, gathered, prommetrics.RenewalDuration, leaderlessA))
		}
		check(t, gathered, leaderlessA, map[string]float64{
			prommetrics.MasterStatus:                  0,
			prommetrics.Preemptions + "{how=handoff}": 0,
			prommetrics.Preemptions + "{how=steal}":   0,
		})
	})
}
