package crelection

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// warmupFunc is a warmer made of a function.
type warmupFunc func(context.Context) error

func (f warmupFunc) Warmup(ctx context.Context) error { return f(ctx) }

func TestWarmupsReadyOnceEveryWarmupReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWarmups()
		release := make(chan struct{})
		slow := w.of(warmupFunc(func(context.Context) error { <-release; return nil }), t.Context())
		quick := w.of(warmupFunc(func(context.Context) error { return nil }), t.Context())
		theirsAsked := false
		ready := make(chan error, 1)
		go func() {
			ready <- w.waitForReady(func(context.Context) error { theirsAsked = true; return nil })(t.Context())
		}()
		go func() { _ = slow.Warmup(t.Context()) }()
		_ = quick.Warmup(t.Context())
		synctest.Wait()
		if len(ready) != 0 || theirsAsked {
			t.Fatal("ready, or the caller's WaitForReady asked, while a warmup still ran")
		}
		close(release)
		if err := <-ready; err != nil || !theirsAsked {
			t.Fatalf("WaitForReady = %v, caller's asked %v; want nil and asked", err, theirsAsked)
		}
	})
}

func TestWarmupsFailedWarmupIsNotReady(t *testing.T) {
	w := newWarmups()
	boom := errors.New("boom")
	_ = w.of(warmupFunc(func(context.Context) error { return boom }), t.Context()).Warmup(t.Context())
	if err := w.wait(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("wait = %v; want the warmup's error", err)
	}
}

func TestWarmupsWaitEndsWithItsContext(t *testing.T) {
	w := newWarmups()
	_ = w.of(warmupFunc(func(context.Context) error { return nil }), t.Context()) // never called
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v; want context.Canceled", err)
	}
}

func TestWarmupContextEndsWithTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWarmups()
		termOver, endTerm := context.WithCancel(t.Context())
		var got context.Context
		warmup := w.of(warmupFunc(func(ctx context.Context) error { got = ctx; return nil }), termOver)
		_ = warmup.Warmup(t.Context())
		synctest.Wait()
		if got.Err() != nil {
			t.Fatal("the Warmup context ended when Warmup returned; a controller goes on using it")
		}
		endTerm()
		synctest.Wait() // the context ends from a goroutine of its own
		if got.Err() == nil {
			t.Fatal("the Warmup context outlived the term")
		}
	})
}

// A Warmup the end of the term cuts short is no failure of the manager.
// A replica that takes a free lock leads without waiting for its warmups
// (the elector takes a free or expired lock at once). If a higher key then
// preempts it while a kept runnable's Warmup still runs, the end of the term
// cancels that Warmup's context (warmupOnly ties it to the term), the Warmup
// returns the context's error, as controller-runtime's controller does when
// its sources have not synced, and the inner manager takes that for a
// failed runnable, and Start would return the Warmup's error instead of
// ErrLeadershipLost (found by a review written to break the package).
func TestManagerWarmupCutShortByTheTermStillReportsLeadershipLost(t *testing.T) {
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
