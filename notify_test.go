package k8sleaderelection

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestOnNewLeaderOrderedSerialAndNonBlocking watches b see three holders in
// turn (a, then itself, then c) while its OnNewLeader is held up: the
// election goes on meanwhile, and the calls come later one at a time, in
// order, each once, before Run returns.
func TestOnNewLeaderOrderedSerialAndNonBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()

		aCtx, stopA := context.WithCancel(ctx)
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "old"))
		lec.ReleaseOnCancel = true
		a := runCandidate(t, aCtx, lec, nil)
		a.leading(t)

		var (
			mu       sync.Mutex
			seen     []string
			inFlight atomic.Int32
			overlap  atomic.Bool
		)
		gate := make(chan struct{})
		lec = testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "canary"))
		lec.Callbacks.OnNewLeader = func(id string) {
			if inFlight.Add(1) > 1 {
				overlap.Store(true)
			}
			defer inFlight.Add(-1)
			<-gate
			mu.Lock()
			seen = append(seen, id)
			mu.Unlock()
		}
		b := runCandidate(t, ctx, lec, nil)
		synctest.Wait() // b has seen a, and its first OnNewLeader is held at the gate

		stopA()
		a.finished(t)
		b.leading(t) // b leads although OnNewLeader("a") has not returned

		lec = testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "c", "stable"))
		lec.KeyComparison = outranksAllBut("stable")
		c := runCandidate(t, ctx, lec, nil)
		c.leading(t)
		time.Sleep(retryPeriod) // b's next renewal sees c

		close(gate)
		b.finished(t)
		synctest.Wait() // the calls queued before Run returned are made
		mu.Lock()
		got := slices.Clone(seen)
		mu.Unlock()
		if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
			t.Fatalf("OnNewLeader calls = %v, want %v", got, want)
		}
		if overlap.Load() {
			t.Fatal("two OnNewLeader calls ran at once")
		}
		cancel()
		c.finished(t)
	})
}

// TestOnNewLeaderNeverOverlapsAcrossRuns: an elector Run again while its
// previous Run's OnNewLeader call is still running makes no call until that
// one returns, and the calls keep their order.
func TestOnNewLeaderNeverOverlapsAcrossRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 0))
		var (
			mu       sync.Mutex
			seen     []string
			inFlight atomic.Int32
			overlap  atomic.Bool
		)
		gate := make(chan struct{})
		openGate := sync.OnceFunc(func() { close(gate) })
		defer openGate() // also when the test fails, so that the bubble can end
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", ""))
		lec.Callbacks.OnNewLeader = func(id string) {
			if inFlight.Add(1) > 1 {
				overlap.Store(true)
			}
			defer inFlight.Add(-1)
			mu.Lock()
			first := len(seen) == 0
			seen = append(seen, id)
			mu.Unlock()
			if first {
				<-gate
			}
		}
		le := newTestElector(t, lec, nil)
		ctx, cancel := context.WithTimeout(t.Context(), retryPeriod/2)
		le.Run(ctx) // sees "other"; its OnNewLeader call is held at the gate
		cancel()
		writeRecord(t, cs, rl.LeasesResourceLock, released(0))
		ctx, cancel = context.WithTimeout(t.Context(), retryPeriod/2)
		le.Run(ctx) // takes the free lock: a call for "b" is queued
		cancel()
		synctest.Wait()
		if overlap.Load() {
			t.Fatal("the second Run's OnNewLeader ran while the first Run's was still running")
		}
		openGate()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"other", "b"}; !slices.Equal(seen, want) {
			t.Fatalf("OnNewLeader calls = %v, want %v", seen, want)
		}
	})
}

// TestNotifierDeliversQueuedCallsAfterStop: stop does not wait, but what was
// queued is still delivered, in order, whether the notifier was busy or idle
// when it was stopped.
func TestNotifierDeliversQueuedCallsAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		gate := make(chan struct{})
		n := startNotifier(func(id string) { <-gate; got = append(got, id) }, nil)
		for _, id := range []string{"a", "", "b", "c"} {
			n.notify(id)
		}
		n.stop() // returns although the first call is held at the gate
		close(gate)
		receive(t, n.done, "the notifier to finish")
		if want := []string{"a", "", "b", "c"}; !slices.Equal(got, want) {
			t.Fatalf("delivered %q, want %q", got, want)
		}
		// Stopped while idle with calls queued: the goroutine sees the
		// queue and the stop at once, and must not pick the stop alone.
		// The loop runs here, in the test's goroutine, so that both are
		// ready when it first looks; select picks either at random.
		for i := range 20 {
			got = nil
			n := &leaderNotifier{
				callback: func(id string) { got = append(got, id) },
				wake:     make(chan struct{}, 1),
				quit:     make(chan struct{}),
				done:     make(chan struct{}),
			}
			n.notify("x")
			n.notify("y")
			n.stop()
			n.loop(nil)
			if want := []string{"x", "y"}; !slices.Equal(got, want) {
				t.Fatalf("round %d: delivered %q, want %q", i, got, want)
			}
		}
	})
}

func TestNotifierWithoutCallback(t *testing.T) {
	n := startNotifier(nil, nil)
	if n != nil {
		t.Fatal("a notifier without a callback was started")
	}
	n.notify("x") // must not panic
	n.stop()
}
