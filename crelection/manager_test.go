package crelection

import (
	"context"
	"errors"
	"math"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// unreachable is the API server of the managers in these tests: nothing
// listens there, and nothing in them needs one (the election is held in
// memory), so a request to it would fail loudly rather than pass unseen.
var unreachable = &rest.Config{Host: "http://127.0.0.1:1"}

// electionConfig is a valid election config for identity with key, in e,
// without OnStartedLeading (the manager's).
func electionConfig(e *electiontest.Election, identity, key string) k8sleaderelection.LeaderElectionConfig {
	lec := e.Config(identity, key)
	lec.Callbacks.OnStartedLeading = nil
	return lec
}

// testOptions are the options of newTestManager: no metrics, no logs.
func testOptions() manager.Options {
	return manager.Options{Logger: testLogger(), Metrics: metricsserver.Options{BindAddress: "0"}}
}

// newTestManager returns a manager for lec that serves no metrics and logs
// nothing.
func newTestManager(t *testing.T, lec k8sleaderelection.LeaderElectionConfig) manager.Manager {
	t.Helper()
	mgr, err := NewManager(unreachable, testOptions(), lec)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return mgr
}

// testLogger is where the managers, and so their electors, log: nowhere,
// unless KLOG_TESTS is set.
func testLogger() logr.Logger {
	if os.Getenv("KLOG_TESTS") == "" {
		return logr.Discard()
	}
	return klog.Background()
}

// start runs mgr until ctx is done; the channel yields what Start returned.
func start(ctx context.Context, mgr manager.Manager) <-chan error {
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return done
}

func TestManagerStartsKeptRunnablesOnlyWhenLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		e := electiontest.New("ns", "lock")
		if err := e.Hold(ctx, "other", "other"); err != nil {
			t.Fatal(err)
		}
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		kept, free := newProbe("kept", nil), newProbe("free", nil)
		if err := mgr.Add(kept); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Add(everywhere{free}); err != nil {
			t.Fatal(err)
		}
		done := start(ctx, mgr)
		<-free.started
		synctest.Wait()
		if kept.isStarted() || closed(mgr.Elected()) {
			t.Fatal("a runnable that needs leader election started, or Elected closed, while another replica led")
		}
		if err := e.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// Advancing lets the manager see the release on its next poll, if
		// its watch missed it.
		if err := e.AdvanceUntil(ctx, func() bool { return closed(mgr.Elected()) }); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !kept.isStarted() {
			t.Fatal("Elected closed before the kept runnable started")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Start after a clean shutdown: %v; want nil", err)
		}
	})
}

// higher starts, in e, a plain elector with key rev-2 that outranks rev-1,
// recording in events when it leads.
func higher(t *testing.T, ctx context.Context, e *electiontest.Election, events *timeline) *electiontest.Replica {
	t.Helper()
	lec := e.Config("rev-2", "rev-2")
	lec.KeyComparison = func(holderKey string) bool { return holderKey == "rev-1" }
	lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
		events.add("rev-2 leads")
		<-ctx.Done()
	}
	r, err := e.Start(ctx, lec, false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestManagerHandsOverOnlyOnceItsRunnablesReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		events := &timeline{}
		lec := electionConfig(e, "rev-1", "rev-1")
		lec.Callbacks.OnStoppedLeading = func() { events.add("rev-1 stopped leading") }
		mgr := newTestManager(t, lec)
		work := newProbe("rev-1 work", events)
		work.hold = make(chan struct{})
		_ = mgr.Add(work)
		done := start(ctx, mgr)
		<-mgr.Elected()
		<-work.started

		rev2 := higher(t, ctx, e, events)
		<-work.context().Done()
		// The work takes its time to stop; the lock must stay ours meanwhile.
		e.Advance(5 * time.Second)
		synctest.Wait()
		if holder, _, _ := e.Holder(ctx); holder != "rev-1" || rev2.Terms() != 0 || len(done) != 0 {
			t.Fatalf("while rev-1's work still runs: holder %q, rev-2 terms %d, Start returned %v; want rev-1 holding, no rev-2 term, Start running",
				holder, rev2.Terms(), len(done) != 0)
		}
		close(work.hold)
		// rev-2 may have missed the handover on its watch (a write that
		// landed as the watch opened), and then sees it on its next poll.
		if err := e.AdvanceUntil(ctx, func() bool { return rev2.Terms() == 1 }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Start after a handoff: %v; want ErrLeadershipLost", err)
		}
		returned, stopped, leads := events.index("rev-1 work returned"), events.index("rev-1 stopped leading"), events.index("rev-2 leads")
		if returned < 0 || stopped < returned || leads < stopped {
			t.Fatalf("events %v; want rev-1's work returned, then OnStoppedLeading, then rev-2 leading", events)
		}
		cancel()
		<-rev2.Done()
	})
}

func TestManagerStolenFromReturnsLeadershipLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		work := newProbe("work", nil)
		_ = mgr.Add(work)
		done := start(ctx, mgr)
		<-mgr.Elected()
		<-work.started
		if err := e.Hold(ctx, "thief", "thief"); err != nil { // a steal: no handoff asked
			t.Fatal(err)
		}
		if err := e.AdvanceUntil(ctx, func() bool { return len(done) == 1 }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Start after a steal: %v; want ErrLeadershipLost", err)
		}
		if !closed(work.returned) {
			t.Fatal("Start returned while a runnable of the term still ran")
		}
		if err := mgr.Add(newProbe("late", nil)); err == nil {
			t.Fatal("Add after the term was accepted for a term that cannot come")
		}
	})
}

func TestManagerRunnableFailureEndsTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := electionConfig(e, "rev-1", "rev-1")
		lec.ReleaseOnCancel = true
		mgr := newTestManager(t, lec)
		failing, other := newProbe("failing", nil), newProbe("other", nil)
		_ = mgr.Add(failing)
		_ = mgr.Add(other)
		done := start(ctx, mgr)
		<-mgr.Elected()
		<-failing.started
		boom := errors.New("boom")
		failing.fail <- boom
		if err := <-done; !errors.Is(err, boom) {
			t.Fatalf("Start after a runnable failed: %v; want its error", err)
		}
		if !closed(other.returned) {
			t.Fatal("Start returned while another runnable of the term still ran")
		}
		if holder, _, _ := e.Holder(ctx); holder != "" {
			t.Fatalf("holder %q after the term failed with ReleaseOnCancel; want the lock released", holder)
		}
	})
}

// releases records in events each write that releases the lock.
func recordReleases(e *electiontest.Election, events *timeline) {
	e.Client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		lease := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			events.add("released")
		}
		return false, nil, nil
	})
}

func TestManagerShutdownReleasesAfterItsRunnablesReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		e := electiontest.New("ns", "lock")
		events := &timeline{}
		recordReleases(e, events)
		lec := electionConfig(e, "rev-1", "rev-1")
		lec.ReleaseOnCancel = true
		lec.Callbacks.OnNewLeader = func(identity string) { events.add("new leader " + identity) }
		mgr := newTestManager(t, lec)
		work := newProbe("work", events)
		_ = mgr.Add(work)
		done := start(ctx, mgr)
		<-mgr.Elected()
		late := newProbe("late", events)
		if err := mgr.Add(late); err != nil {
			t.Fatal(err)
		}
		<-late.started // added while leading: starts in this term
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Start after a clean shutdown: %v; want nil", err)
		}
		released := events.index("released")
		if released < 0 || events.index("work returned") > released || events.index("late returned") > released {
			t.Fatalf("events %v; want every runnable returned, then the lock released", events)
		}
		if events.index("new leader rev-1") < 0 {
			t.Fatalf("events %v; OnNewLeader was not passed through", events)
		}
	})
}

func TestManagerShutdownWithoutReleaseOnCancelKeepsTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		e := electiontest.New("ns", "lock")
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		work := newProbe("work", nil)
		_ = mgr.Add(work)
		done := start(ctx, mgr)
		<-mgr.Elected()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Start after a clean shutdown: %v; want nil", err)
		}
		if !closed(work.returned) {
			t.Fatal("Start returned while a runnable of the term still ran")
		}
		if holder, _, _ := e.Holder(t.Context()); holder != "rev-1" {
			t.Fatalf("holder %q; without ReleaseOnCancel the lock is left to expire", holder)
		}
	})
}

func TestManagerShutdownWhileFollowing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		e := electiontest.New("ns", "lock")
		_ = e.Hold(ctx, "other", "other")
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		kept, free := newProbe("kept", nil), newProbe("free", nil)
		_ = mgr.Add(kept)
		_ = mgr.Add(everywhere{free})
		done := start(ctx, mgr)
		<-free.started
		cancel()
		// The election's clock stands still: a wait on it would never end.
		if err := <-done; err != nil {
			t.Fatalf("Start after a clean shutdown: %v; want nil", err)
		}
		if kept.isStarted() {
			t.Fatal("a runnable that needs leader election started though this manager never led")
		}
		if err := mgr.Add(newProbe("late", nil)); err == nil {
			t.Fatal("Add after the election ended was accepted for a term that cannot come")
		}
	})
}

func TestManagerWarmsUpKeptRunnablesBeforeLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		e := electiontest.New("ns", "lock")
		_ = e.Hold(ctx, "other", "other")
		events := &timeline{}
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		w := warming{probe: newProbe("controller", events), warmed: make(chan struct{})}
		_ = mgr.Add(w)
		done := start(ctx, mgr)
		<-w.warmed
		synctest.Wait()
		if w.isStarted() {
			t.Fatal("a runnable that needs leader election started while another replica led")
		}
		_ = e.Release(ctx)
		if err := e.AdvanceUntil(ctx, w.isStarted); err != nil {
			t.Fatal(err)
		}
		if events.index("controller warmed up") > events.index("controller started") {
			t.Fatalf("events %v; want the warmup first", events)
		}
		cancel()
		<-done
	})
}

func TestManagerPreemptsOnlyOnceWarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		events := &timeline{}
		low := e.Config("rev-1", "rev-1")
		low.Callbacks.OnStoppedLeading = func() { events.add("rev-1 stopped leading") }
		rev1, err := e.Start(ctx, low, false)
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
		w := warming{probe: newProbe("controller", events), warmed: make(chan struct{}), slow: make(chan struct{})}
		_ = mgr.Add(w)
		done := start(ctx, mgr)
		<-w.warmed
		e.Advance(5 * time.Second) // rev-1 renews; we would have asked long ago
		synctest.Wait()
		if rev1Term.Err() != nil {
			t.Fatal("rev-1 was preempted while our warmup still ran")
		}
		close(w.slow)
		if err := e.AdvanceUntil(ctx, func() bool { return closed(mgr.Elected()) }); err != nil {
			t.Fatal(err)
		}
		warm, stopped := events.index("controller warmed up"), events.index("rev-1 stopped leading")
		if warm < 0 || stopped < warm {
			t.Fatalf("events %v; want the warmup to return before rev-1 is asked to stop", events)
		}
		cancel()
		<-done
		<-rev1.Done()
	})
}

// A controller with warmup enabled stops its workers only when its
// Warmup's context ends: that context must end with the term, or the
// controller would go on reconciling after handing the lock over.
func TestManagerStopsWarmedUpRunnablesWithTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		events := &timeline{}
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		ctrl := newWarmBound("controller", events)
		_ = mgr.Add(ctrl)
		done := start(ctx, mgr)
		<-ctrl.started
		rev2 := higher(t, ctx, e, events)
		<-ctrl.context().Done()
		synctest.Wait()
		if !closed(ctrl.returned) {
			t.Fatal("the term is over, but a runnable working on its Warmup's context still runs")
		}
		if err := e.AdvanceUntil(ctx, func() bool { return rev2.Terms() == 1 }); err != nil {
			t.Fatal(err)
		}
		if returned, leads := events.index("controller returned"), events.index("rev-2 leads"); leads < returned {
			t.Fatalf("events %v; want the controller to return before rev-2 leads", events)
		}
		if err := <-done; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Start after a handoff: %v; want ErrLeadershipLost", err)
		}
		cancel()
		<-rev2.Done()
	})
}

func TestManagerHungRunnableKeepsTheLockAndStartReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := electionConfig(e, "rev-1", "rev-1")
		lec.StopTimeout = 3 * time.Second
		mgr := newTestManager(t, lec)
		hung := newProbe("hung", nil)
		hung.hold = make(chan struct{})
		defer close(hung.hold)
		_ = mgr.Add(hung)
		done := start(ctx, mgr)
		<-mgr.Elected()
		rev2 := higher(t, ctx, e, nil)
		<-hung.started
		<-hung.context().Done()
		// The elector waits StopTimeout for the work, then Start waits as
		// long again; a minute on the election's clock is plenty.
		asked := e.Clock.Now()
		_ = e.AdvanceUntil(ctx, func() bool { return len(done) == 1 || e.Clock.Since(asked) > time.Minute })
		if len(done) == 0 {
			t.Fatal("Start has not returned a minute after the handoff was asked, with a runnable that never returns")
		}
		if err := <-done; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Start: %v; want ErrLeadershipLost", err)
		}
		if rev2.Terms() != 0 {
			t.Fatal("the lock was handed over while a runnable of the term still ran")
		}
		cancel()
		<-rev2.Done()
	})
}

// A second Start must fail at once and change nothing of the first: here it
// comes while the first waits for its caches to sync, with a context that
// is already done, and the first must still campaign and lead. The test
// runs outside a synctest bubble: the inner manager holds a mutex while
// its caches sync, which a bubble cannot wait on.
func TestManagerSecondStartFailsAndLeavesTheFirstAlone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e := electiontest.New("ns", "lock")
	lec := electionConfig(e, "rev-1", "rev-1")
	// Out of a bubble, a fake clock stepped by the test could outrun the
	// elector's renewals; the real one takes a free lock at once.
	lec.Clock = clock.RealClock{}
	mgr := newTestManager(t, lec)
	caches := &syncing{asked: make(chan struct{}), synced: make(chan struct{})}
	if err := mgr.Add(caches); err != nil {
		t.Fatal(err)
	}
	work := newProbe("work", nil)
	_ = mgr.Add(work)
	done := start(ctx, mgr)
	select {
	case <-caches.asked:
	case <-time.After(time.Minute):
		t.Fatal("the manager did not wait for its caches to sync within a minute")
	}

	stopped, stop := context.WithCancel(ctx)
	stop()
	second := start(stopped, mgr)
	var secondErr error
	returned := false
	select {
	case secondErr = <-second:
		returned = true
	case <-time.After(time.Second):
	}
	close(caches.synced)
	select {
	case <-mgr.Elected():
	case <-time.After(10 * time.Second):
		t.Fatalf("the first Start did not lead a free lock within 10s after a second Start (returned at once: %v, with %v)", returned, secondErr)
	}
	if !returned {
		t.Fatal("a second Start did not return within a second, while the first waited for its caches")
	}
	if !errors.Is(secondErr, errStartedTwice) {
		t.Fatalf("the second Start returned %v; want errStartedTwice", secondErr)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the first Start after a clean shutdown: %v; want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the first Start did not return within a minute of its context ending")
	}
}

// Start must not return before the term is settled, even once
// controller-runtime's grace period is over: a process that exits when
// Start returns would otherwise cut its runnables and its elector short.
// Here the work takes longer to stop than StopTimeout: the elector gives
// the lock up to expiry, and Start still waits for the work (at most
// StopTimeout more), while the inner manager's 30 s grace period ends
// first.
func TestManagerStartReturnsOnlyOnceTheTermIsSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := electiontest.New("ns", "lock")
		lec := electionConfig(e, "rev-1", "rev-1")
		// The manager's grace period runs on the bubble's clock, and so
		// must the election for the two to be compared.
		lec.Clock = clock.RealClock{}
		lec.ReleaseOnCancel = true
		lec.StopTimeout = 20 * time.Second // plus RenewDeadline, within the default grace period
		mgr := newTestManager(t, lec)
		work := newProbe("work", nil)
		work.takes = 35 * time.Second
		_ = mgr.Add(work)
		ctx, cancel := context.WithCancel(t.Context())
		done := start(ctx, mgr)
		<-mgr.Elected()
		cancel()
		began := time.Now()
		err := <-done
		if !closed(work.returned) {
			took := time.Since(began)
			// Let the term wind down, or the bubble would end in a
			// deadlock instead of this message.
			<-work.returned
			time.Sleep(time.Minute)
			t.Fatalf("Start returned %v after %v, while a runnable of the term still ran", err, took)
		}
	})
}

// With StopTimeout as long as it takes (math.MaxInt64), a preempted manager
// keeps the lock until its runnables have returned, however long: the
// successor's runnables never start while ours still run.
func TestManagerEndlessStopTimeoutNeverReconcilesBesideTheSuccessor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		events := &timeline{}
		endless := func(identity string) k8sleaderelection.LeaderElectionConfig {
			lec := electionConfig(e, identity, identity)
			lec.StopTimeout = math.MaxInt64
			return lec
		}
		waitForever := time.Duration(-1)
		options := testOptions()
		options.GracefulShutdownTimeout = &waitForever
		rev1, err := NewManager(unreachable, options, endless("rev-1"))
		if err != nil {
			t.Fatalf("NewManager with StopTimeout %v: %v", time.Duration(math.MaxInt64), err)
		}
		work1 := newProbe("rev-1 work", events)
		work1.hold = make(chan struct{})
		stopWork1 := sync.OnceFunc(func() { close(work1.hold) })
		defer stopWork1()
		_ = rev1.Add(work1)
		done1 := start(ctx, rev1)
		<-rev1.Elected()
		<-work1.started

		lec2 := endless("rev-2")
		lec2.KeyComparison = func(holderKey string) bool { return holderKey == "rev-1" }
		rev2, err := NewManager(unreachable, options, lec2)
		if err != nil {
			t.Fatal(err)
		}
		work2 := newProbe("rev-2 work", events)
		_ = rev2.Add(work2)
		done2 := start(ctx, rev2)
		<-work1.context().Done()
		// rev-1's work takes ten minutes to stop; rev-2 must wait for it.
		for range 600 {
			e.Advance(time.Second)
			synctest.Wait()
			if work2.isStarted() {
				t.Fatalf("events %v: rev-2's runnable started while rev-1's still ran, with StopTimeout %v",
					events, time.Duration(math.MaxInt64))
			}
		}
		stopWork1()
		if err := e.AdvanceUntil(ctx, work2.isStarted); err != nil {
			t.Fatal(err)
		}
		if returned, started := events.index("rev-1 work returned"), events.index("rev-2 work started"); returned < 0 || started < returned {
			t.Fatalf("events %v; want rev-1's work returned before rev-2's started", events)
		}
		if err := <-done1; !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("rev-1's Start after a handoff: %v; want ErrLeadershipLost", err)
		}
		cancel()
		if err := <-done2; err != nil {
			t.Fatalf("rev-2's Start after a clean shutdown: %v; want nil", err)
		}
	})
}

// Add refuses a runnable once the term is over, and must not hand its
// Warmup to the inner manager either: called with a context already done
// (the term's end), the error it returned would fail the inner manager, and
// Start would report that instead of ErrLeadershipLost. Here the lock was taken (a steal) and a hung runnable
// keeps the manager waiting, the window in which a late Add lands.
func TestManagerAddAfterTheTermRunsNoWarmup(t *testing.T) {
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
