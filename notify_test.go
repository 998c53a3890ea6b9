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
		a := runCandidate(t, aCtx, lec)
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
		b := runCandidate(t, ctx, lec)
		synctest.Wait() // b has seen a, and its first OnNewLeader is held at the gate

		stopA()
		<-a.done
		b.leading(t) // b leads although OnNewLeader("a") has not returned

		lec = testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "c", "stable"))
		lec.KeyComparison = outranksAllBut("stable")
		c := runCandidate(t, ctx, lec)
		c.leading(t)
		time.Sleep(retryPeriod) // b's next renewal sees c

		close(gate)
		<-b.done
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
		<-c.done
	})
}

func TestNotifierWithoutCallback(t *testing.T) {
	var n *leaderNotifier = startNotifier(nil)
	n.notify("x") // must not panic
	n.stop()
}
