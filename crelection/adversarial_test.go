package crelection

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// testOptions are the options of newTestManager: no metrics, no logs.
func testOptions() manager.Options {
	return manager.Options{Logger: testLogger(), Metrics: metricsserver.Options{BindAddress: "0"}}
}

// A replica that takes a free lock leads without waiting for its warmups
// (the elector takes a free or expired lock at once). If a higher key then
// preempts it while a kept runnable's Warmup still runs, the end of the term
// cancels that Warmup's context (warmupOnly ties it to the term), the Warmup
// returns the context's error, as controller-runtime's controller does when
// its sources have not synced, and the inner manager takes that for a
// failed runnable: Start returns the Warmup's error instead of
// ErrLeadershipLost.
func TestAdvWarmupCancelledByTheTermMasksLeadershipLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		// Its sources never sync in time: Warmup returns only when its
		// context ends.
		w := warming{probe: newProbe("controller", nil), warmed: make(chan struct{}), slow: make(chan struct{})}
		if err := mgr.Add(w); err != nil {
			t.Fatal(err)
		}
		done := start(ctx, mgr)
		if err := e.AdvanceUntil(ctx, func() bool { return closed(mgr.Elected()) }); err != nil {
			t.Fatal(err)
		}
		<-w.warmed
		<-w.started
		rev2 := higher(t, ctx, e, nil)
		if err := e.AdvanceUntil(ctx, func() bool { return len(done) == 1 }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Start after a handoff, with a warmup still running as the term ended: %v; want ErrLeadershipLost "+
				"(the README's `errors.Is(err, crelection.ErrLeadershipLost)` check misses it)", err)
		}
		cancel()
		<-rev2.Done()
	})
}

// The README and doc.go promise that the lock goes over only once every
// runnable of the term has returned, "so the two managers never reconcile
// at once". NewManager accepts a negative StopTimeout, which the elector
// takes as "do not wait": the lock is handed over at once, while the
// preempted manager's runnable still runs.
func TestAdvNegativeStopTimeoutHandsOverWhileRunnablesRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := electionConfig(e, "rev-1", "rev-1")
		lec.StopTimeout = -1
		mgr, err := NewManager(unreachable, testOptions(), lec)
		if err != nil {
			// Rejecting it is a fix.
			t.Skipf("NewManager rejects a negative StopTimeout: %v", err)
		}
		work := newProbe("rev-1 work", nil)
		work.hold = make(chan struct{})
		defer close(work.hold)
		_ = mgr.Add(work)
		done := start(ctx, mgr)
		<-mgr.Elected()
		<-work.started
		rev2 := higher(t, ctx, e, nil)
		<-work.context().Done()
		asked := e.Clock.Now()
		_ = e.AdvanceUntil(ctx, func() bool { return rev2.Terms() == 1 || e.Clock.Since(asked) > time.Minute })
		if rev2.Terms() != 0 && !closed(work.returned) {
			t.Fatalf("rev-2 leads while rev-1's runnable still runs (StopTimeout %v was accepted): two managers reconcile at once", lec.StopTimeout)
		}
		cancel()
		<-rev2.Done()
		<-done
	})
}

// A manager whose Start is called with a context already done (a pod told
// to stop before its manager got going, e.g. during cache sync) still
// campaigns: the campaign runs on the inner manager's runnable-group
// context, which ends only once the stop procedure reaches it, not on
// Start's. So it takes the lock, starts its controllers, and, with a higher
// key, makes a healthy leader stop its work and hand over to a manager that
// is shutting down.
func TestAdvStartWithDoneContextStillTakesTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := electiontest.New("ns", "lock")
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		work := newProbe("work", nil)
		_ = mgr.Add(work)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := mgr.Start(ctx); err != nil {
			t.Fatalf("Start with a done context: %v; want nil", err)
		}
		holder, _, _ := e.Holder(t.Context())
		if work.isStarted() || holder != "" {
			t.Fatalf("Start was called with a context already done, yet the manager took the lock (holder %q) and started its runnable (%v)",
				holder, work.isStarted())
		}
	})
}

// The same with a higher key: the stopping manager asks the healthy leader
// for the lock, which stops its work and hands it over to a manager that has
// already returned from Start, and the lock stays with nobody working until
// it expires.
func TestAdvStartWithDoneContextPreemptsAHealthyLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		rev1, err := e.Start(ctx, e.Config("rev-1", "rev-1"), false)
		if err != nil {
			t.Fatal(err)
		}
		rev1Term, err := rev1.WaitLeading(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		lec := electionConfig(e, "rev-2", "rev-2")
		lec.KeyComparison = func(holderKey string) bool { return holderKey == "rev-1" }
		mgr := newTestManager(t, lec)
		_ = mgr.Add(newProbe("rev-2 work", nil))
		stopping, stop := context.WithCancel(ctx)
		stop()
		if err := mgr.Start(stopping); err != nil {
			t.Fatalf("Start with a done context: %v; want nil", err)
		}
		// Whatever rev-2 left in the lock, rev-1 acts on it within a few
		// renewals.
		e.Advance(5 * time.Second)
		synctest.Wait()
		if rev1Term.Err() != nil {
			holder, _, _ := e.Holder(ctx)
			t.Fatalf("a manager started with a context already done preempted the healthy leader rev-1 (holder now %q)", holder)
		}
		cancel()
		<-rev1.Done()
	})
}

// Add refuses a runnable once the term is over, but a warmer's Warmup has
// already been handed to the inner manager by then: it is called with a
// context that is already done (the term's end), and the error it returns
// fails the inner manager, so Start reports that instead of
// ErrLeadershipLost. Here the lock was taken (a steal) and a hung runnable
// keeps the manager waiting, the window in which a late Add lands.
func TestAdvAddAfterTheTermStillRunsWarmup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := electionConfig(e, "rev-1", "rev-1")
		lec.StopTimeout = 3 * time.Second
		mgr := newTestManager(t, lec)
		hung := newProbe("hung", nil)
		hung.hold = make(chan struct{})
		_ = mgr.Add(hung)
		done := start(ctx, mgr)
		<-mgr.Elected()
		<-hung.started
		if err := e.Hold(ctx, "thief", "thief"); err != nil {
			t.Fatal(err)
		}
		if err := e.AdvanceUntil(ctx, func() bool { return hung.context().Err() != nil }); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		late := warming{probe: newProbe("late", nil), warmed: make(chan struct{}), slow: make(chan struct{})}
		addErr := mgr.Add(late)
		synctest.Wait()
		warmedUp := closed(late.warmed)
		close(hung.hold)
		if err := e.AdvanceUntil(ctx, func() bool { return len(done) == 1 }); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if addErr == nil {
			t.Fatal("Add after the term was over was accepted")
		}
		if warmedUp || !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Add refused the runnable (%v), yet its Warmup was called: %v; and Start returned %v, want ErrLeadershipLost", addErr, warmedUp, err)
		}
	})
}

// Add refuses an untyped nil, but a typed nil (a nil *T in the Runnable)
// is kept, and its Start is called, panicking the process, only when this
// replica is elected: a standby that runs fine crashes at failover.
func TestAdvAddAcceptsATypedNilRunnable(t *testing.T) {
	e := electiontest.New("ns", "lock")
	mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
	var nothing *probe
	if err := mgr.Add(nothing); err == nil {
		t.Fatal("Add accepted a nil *probe; it would panic in a goroutine of the term when this replica is elected")
	}
}
