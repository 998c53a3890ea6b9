package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// handoffPair starts a low-key leader a (whose work takes windDown to stop)
// and then a high-key candidate b, and returns them with the fleet.
func handoffPair(t *testing.T, ctx context.Context, cs clientset, kind string, mode func(*LeaderElectionConfig), windDown time.Duration, tweakB func(*LeaderElectionConfig)) (a, b *candidate, f *fleet) {
	t.Helper()
	f = newFleet()
	low := testConfig(newTestLock(t, cs, kind, "a", "canary"))
	low.KeyComparison = outranksAllBut("canary")
	mode(&low)
	a = startCandidate(t, ctx, low, f, windDown)
	a.leading(t)
	time.Sleep(retryPeriod / 2)
	high := testConfig(newTestLock(t, cs, kind, "b", "stable"))
	high.KeyComparison = outranksAllBut("stable")
	mode(&high)
	if tweakB != nil {
		tweakB(&high)
	}
	b = startCandidate(t, ctx, high, f, 0)
	return a, b, f
}

// TestHandoffNeverOverlaps: a higher key asks the leader for the lock; the
// leader stops its work (which takes a while), runs OnStoppedLeading, and
// only then writes the lock over, so that the two never lead at once. It
// holds for every lock kind, on both fakes, watching or polling.
func TestHandoffNeverOverlaps(t *testing.T) {
	const windDown = 3 * time.Second // longer than a RetryPeriod: the leader renews meanwhile
	eachFakeModeAndCase(t, modes, lockKinds, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		a, b, f := handoffPair(t, ctx, cs, kind, mode.apply, windDown, nil)
		b.leading(t)
		f.check(t)
		took := time.Since(b.startAt)
		if mode.name == "watch" && took != windDown {
			t.Errorf("b led %v after it asked, want exactly the leader's wind-down (%v)", took, windDown)
		}
		// Polling: the leader sees the request at its next renewal,
		// the requester the handover at its next attempt.
		if took > retryPeriod+windDown+maxAcquireWait {
			t.Errorf("b led %v after it asked, want within a renewal, the wind-down and an attempt", took)
		}
		if want := []string{"a started", "a ended", "a stopped", "b started"}; !slices.Equal(f.history(), want) {
			t.Errorf("history %q, want %q", f.history(), want)
		}
		a.finished(t)
		rec := readRecord(t, cs, kind)
		if rec.HolderIdentity != "b" || rec.HolderKey != "stable" || rec.LeaderTransitions != 1 || rec.LeaseDurationSeconds != 15 {
			t.Errorf("record after the handoff: %+v; want b, stable, 1 transition, 15s", rec)
		}
		if rec.HandoffRequest != (rl.HandoffRequest{}) || rec.Handoff.Holder != "b" {
			t.Errorf("record after the handoff keeps request %+v, offer %+v; want no request, b's offer", rec.HandoffRequest, rec.Handoff)
		}
	})
}

// TestHandoffCarriesTheSuccessorsOffer: the record a leader writes to hand
// the lock over already carries the successor's handoff offer, so that a key
// above the successor asks it for the lock, as it would once the successor
// has renewed, instead of stealing it in between.
func TestHandoffCarriesTheSuccessorsOffer(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		states := leaseStates(t, cs)
		_, b, _ := handoffPair(t, ctx, cs, rl.LeasesResourceLock, mode.apply, 0, nil)
		b.leading(t)
		cancel()
		b.finished(t)
		for _, lease := range states() {
			if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "b" {
				continue
			}
			// RetryPeriod + StopTimeout (RenewDeadline) + RenewDeadline
			if got, want := lease.Annotations[rl.HandoffAnnotationKey], `{"holder":"b","withinSeconds":22}`; got != want {
				t.Fatalf("the handoff to b carries the offer %q, want b's: %q", got, want)
			}
			return
		}
		t.Fatal("no state of the lock named b")
	})
}

// TestHandoffFromAHangingLeaderIsASteal: a leader whose work never returns
// does not hand the lock over while it may still run; the requester takes
// it once the time the leader offered has run out.
func TestHandoffFromAHangingLeaderIsASteal(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// A requester asks once per term of the holder: one whose
		// wait ran out and that kept asking would spin on its own
		// writes, which its watch delivers, without time passing.
		const maxAsks = 5
		var asks atomic.Int32
		countAsks := func(lec *LeaderElectionConfig) {
			lec.Lock = watchedHookedLock{&hookedLock{Interface: lec.Lock,
				beforeWrite: func(_ context.Context, r rl.LeaderElectionRecord) error {
					if r.HandoffRequest.HolderIdentity != "b" || r.HolderIdentity == "b" {
						return nil
					}
					if n := asks.Add(1); n > maxAsks {
						return fmt.Errorf("ask %d of the same holder: want at most %d", n, maxAsks)
					}
					return nil
				}}}
		}
		_, b, _ := handoffPair(t, ctx, cs, rl.LeasesResourceLock, func(*LeaderElectionConfig) {}, -1, countAsks)
		b.leading(t)
		if n := asks.Load(); n > maxAsks {
			t.Fatalf("b asked the holder %d times, want at most %d: it went on asking after its wait ran out", n, maxAsks)
		}
		offered := retryPeriod + renewDeadline + renewDeadline // RetryPeriod + StopTimeout + RenewDeadline
		if took := time.Since(b.startAt); took < offered || took > offered+time.Second {
			t.Fatalf("b took the lock %v after asking, want once the offered %v ran out", took, offered)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "b" || rec.LeaderTransitions != 1 {
			t.Fatalf("record after the steal: %+v", rec)
		}
	})
}

// TestHangingLeaderThatRejoinsWaitsForItsWork: a leader whose work does
// not stop gives up waiting after StopTimeout and lets its term end; run
// again (as a controller's main loop does), it does not compete, nor hand
// the lock over, while its last term's work still runs: the requester takes
// the lock once the offer has run out, as from any hanging holder.
func TestHangingLeaderThatRejoinsWaitsForItsWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var wg sync.WaitGroup
		var terms atomic.Int32
		low := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary"))
		low.Callbacks.OnStartedLeading = func(context.Context) { terms.Add(1); <-ctx.Done() } // never stops while the test runs
		low.Callbacks.OnStoppedLeading = func() {}
		le := newTestElector(t, low, nil)
		wg.Go(func() {
			for ctx.Err() == nil {
				le.Run(ctx)
			}
		})
		time.Sleep(retryPeriod / 2)
		high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		b := runCandidate(t, ctx, high, nil)
		b.leading(t)
		offered := retryPeriod + renewDeadline + renewDeadline // RetryPeriod + StopTimeout + RenewDeadline
		if took := time.Since(b.startAt); took < offered || took > offered+time.Second {
			t.Fatalf("b led %v after asking, want once the offered %v ran out: a, its work still running, neither competes nor hands over", took, offered)
		}
		if n := terms.Load(); n != 1 {
			t.Fatalf("a started %d terms, want 1: a second while the first one's work still ran", n)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "b" || rec.LeaderTransitions != 1 {
			t.Fatalf("record: %+v", rec)
		}
		cancel()
		wg.Wait()
	})
}

// TestNoHandoffWithoutAnOffer: a holder that makes no offer (handoffs off
// here; Istio's fork and client-go never make one) has the lock taken at
// once, as before.
func TestNoHandoffWithoutAnOffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		off := func(lec *LeaderElectionConfig) { lec.DisableHandoff = true }
		a, b, _ := handoffPair(t, ctx, cs, rl.LeasesResourceLock, off, 0, func(lec *LeaderElectionConfig) { lec.DisableHandoff = false })
		b.leading(t)
		if took := time.Since(b.startAt); took != 0 {
			t.Fatalf("b took %v to take the lock from a holder without an offer, want its first attempt", took)
		}
		a.finished(t)
	})
}

// TestHandoffToADeadRequester: the requester dies right after asking. The
// leader hands over to it all the same, and the election recovers within
// one lease: the next candidate takes the lock once the dead one's lease
// has run out.
func TestHandoffToADeadRequester(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var wg sync.WaitGroup
		f := newFleet()
		low := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary"))
		low.KeyComparison = outranksAllBut("canary")
		member(t, ctx, &wg, low, f)
		time.Sleep(retryPeriod / 2)
		// b asks, and is gone before it sees the answer (it polls). A
		// dead process sends nothing more, not even the withdrawal a
		// candidate that stops campaigning makes, so every write after
		// its request fails.
		bCtx, killB := context.WithCancel(ctx)
		var asked atomic.Bool
		high := testConfig(&hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"),
			beforeWrite: func(_ context.Context, r rl.LeaderElectionRecord) error {
				if asked.Load() {
					return errors.New("b is dead")
				}
				asked.Store(r.HandoffRequest.HolderIdentity == "b")
				return nil
			}})
		high.KeyComparison = outranksAllBut("stable")
		b := runCandidate(t, bCtx, high, f)
		for !asked.Load() {
			time.Sleep(time.Millisecond)
		}
		killB()
		b.finished(t)
		askedAt := time.Now()
		time.Sleep(leaseDuration + maxAcquireWait)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "a" {
			t.Fatalf("the lock names %q one lease after the dead requester's turn, want a back", rec.HolderIdentity)
		}
		if waited := f.history(); len(waited) < 3 {
			t.Fatalf("history %q", waited)
		}
		if _, most := f.count(); most != 1 {
			t.Fatalf("%d leaders at once", most)
		}
		t.Logf("recovered %v after the request", time.Since(askedAt))
		cancel()
		wg.Wait()
	})
}

// TestStoppedRequesterWithdrawsItsRequest: a candidate that stops while its
// request is pending takes it out of the lock, so that the holder does not
// hand the lock to a candidate that will never lead, and nobody would lead
// for the lease it asked for. The holder, whose work had begun to stop,
// releases the lock once it has stopped, since nobody asks for it any more.
func TestStoppedRequesterWithdrawsItsRequest(t *testing.T) {
	const windDown = 5 * time.Second
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		states := leaseStates(t, cs)
		bCtx, stopB := context.WithCancel(ctx)
		a, b, f := handoffPair(t, bCtx, cs, rl.LeasesResourceLock, mode.apply, windDown, nil)
		// b asked at once; the holder winds down by now, watching
		// or polling.
		time.Sleep(retryPeriod)
		stopB()
		b.finished(t)
		a.finished(t)
		// b's Run runs OnStoppedLeading as it returns, as always.
		if want := []string{"a started", "b stopped", "a ended", "a stopped"}; !slices.Equal(f.history(), want) {
			t.Errorf("history %q, want %q", f.history(), want)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" || rec.HandoffRequest != (rl.HandoffRequest{}) {
			t.Errorf("record %+v once the holder stopped, want it released, with no request", rec)
		}
		for _, lease := range states() {
			if holder := lease.Spec.HolderIdentity; holder != nil && *holder == "b" {
				t.Fatalf("the lock was handed to b, which had stopped, at %v", lease.Spec.AcquireTime)
			}
		}
	})
}

// TestHandoffGoesToTheHighestRequester: a candidate asks the leader for the
// lock, and while the leader's work winds down (renewing meanwhile) a
// candidate that outranks the first asks too. The lock goes to the later,
// higher one, in one handoff: the lower one never leads, and the term goes up
// by one. It holds on both fakes, watching or polling.
func TestHandoffGoesToTheHighestRequester(t *testing.T) {
	const windDown = 5 * time.Second // the leader renews twice while it winds down
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		start := func(key string, windDown time.Duration) *candidate {
			lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, key, key))
			lec.KeyComparison = outranksAllBut(key)
			mode.apply(&lec)
			return startCandidate(t, ctx, lec, f, windDown)
		}
		states := leaseStates(t, cs)
		old := start("old", windDown)
		old.leading(t)
		time.Sleep(retryPeriod / 2)
		start("canary", 0)
		// Asked by canary, the leader winds down: watching, from
		// now on; polling, from its next renewal.
		time.Sleep(retryPeriod + retryPeriod/4)
		stable := start("stable", 0)
		stable.leading(t)
		time.Sleep(2 * leaseDuration)
		f.check(t)
		if want := []string{"old started", "old ended", "old stopped", "stable started"}; !slices.Equal(f.history(), want) {
			t.Errorf("history %q, want %q: one handoff, to the highest requester", f.history(), want)
		}
		rec := readRecord(t, cs, rl.LeasesResourceLock)
		if rec.HolderIdentity != "stable" || rec.LeaderTransitions != 1 {
			t.Errorf("record %+v, want stable after one transition", rec)
		}
		// The leader's renewals never put the lower request back
		// over the higher one.
		stableAsked := false
		for _, lease := range states() {
			request := lease.Annotations[rl.HandoffRequestAnnotationKey]
			stableAsked = stableAsked || strings.Contains(request, `"holderIdentity":"stable"`)
			if stableAsked && strings.Contains(request, `"holderIdentity":"canary"`) {
				t.Fatalf("after stable asked, the lock carried canary's request again: %s", request)
			}
		}
	})
}

// leaseStates records every state of the test Lease from now on, as a watch
// delivers them, and returns a function that stops recording and returns
// them in order.
func leaseStates(t *testing.T, cs clientset) func() []*coordinationv1.Lease {
	t.Helper()
	w, err := cs.CoordinationV1().Leases(testNamespace).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch leases: %v", err)
	}
	var states []*coordinationv1.Lease
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if lease, ok := ev.Object.(*coordinationv1.Lease); ok && lease.Name == testLockName {
				states = append(states, lease)
			}
		}
	}()
	return func() []*coordinationv1.Lease {
		w.Stop()
		receive(t, done, "the watch of the Lease to end")
		return states
	}
}

// TestWaitForReady: a higher key preempts only once its WaitForReady has
// returned nil; until then the leader keeps working. An error is retried.
func TestWaitForReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ready := make(chan struct{})
		var calls atomic.Int32
		_, b, f := handoffPair(t, ctx, cs, rl.LeasesResourceLock, func(*LeaderElectionConfig) {}, 0, func(lec *LeaderElectionConfig) {
			lec.WaitForReady = func(ctx context.Context) error {
				if calls.Add(1) == 1 {
					return errors.New("informers not synced")
				}
				select {
				case <-ready:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		})
		time.Sleep(time.Minute)
		if len(b.started) != 0 || calls.Load() != 2 {
			t.Fatalf("b leads %v after a minute not ready, WaitForReady called %d times; want no and 2", len(b.started) != 0, calls.Load())
		}
		close(ready)
		readyAt := time.Now()
		b.leading(t)
		if took := time.Since(readyAt); took != 0 {
			t.Fatalf("b led %v after it was ready, want at once (a handoff with a watch)", took)
		}
		f.check(t)
	})
}

// deafLock is a lock whose watch opens but never delivers anything, as a
// watch that opened just after the write it waits for does on a fake
// clientset that does not replay what a new watch missed (client-go v0.35's).
type deafLock struct{ rl.Interface }

// Key passes the lock's key on, so that the elector competes with it.
func (l deafLock) Key() string { return lockKey(l.Interface) }

func (l deafLock) Watch(ctx context.Context) (watch.Interface, error) { return watch.NewFake(), nil }

func (l deafLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}

// TestHandoffSeenWithoutTheWatch: a requester whose watch misses the
// holder's answer still leads within a polling period of it, not after a
// whole lease with nobody leading.
func TestHandoffSeenWithoutTheWatch(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		deaf := func(lec *LeaderElectionConfig) { lec.Lock = deafLock{lec.Lock} }
		a, b, f := handoffPair(t, ctx, cs, rl.LeasesResourceLock, func(*LeaderElectionConfig) {}, 0, deaf)
		receive(t, a.stopped, "the leader to hand over")
		handedAt := time.Now()
		b.leading(t)
		if waited := time.Since(handedAt); waited > maxAcquireWait {
			t.Fatalf("b led %v after the handover it could not see, want at most one polling period (%v)", waited, maxAcquireWait)
		}
		f.check(t)
	})
}

// unversionedNoOps makes cs answer an update that changes nothing as the API
// server does: with the object as stored, under the resourceVersion it had.
func unversionedNoOps(cs *fakekube.Clientset) {
	cs.PrependReactor("update", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		update := action.(k8stesting.UpdateAction)
		sent, err := meta.Accessor(update.GetObject())
		if err != nil {
			return false, nil, nil
		}
		stored, err := cs.Tracker().Get(update.GetResource(), update.GetNamespace(), sent.GetName())
		if err != nil {
			return false, nil, nil
		}
		storedMeta, err := meta.Accessor(stored)
		if err != nil || storedMeta.GetResourceVersion() != sent.GetResourceVersion() {
			return false, nil, nil
		}
		if !apiequality.Semantic.DeepEqual(stored, update.GetObject()) {
			return false, nil, nil
		}
		return true, stored.DeepCopyObject(), nil
	})
}

// TestRestartedRequesterKeepsTrustingResourceVersions: a requester that
// restarts while its request is pending asks again with the very same
// request. The API server does not give such a write a new resourceVersion;
// that is no sign that the clientset does not version objects, so the
// elector goes on writing conditionally, without a read before each write.
func TestRestartedRequesterKeepsTrustingResourceVersions(t *testing.T) {
	for _, kind := range []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock} {
		t.Run(kind, func(t *testing.T) {
			cs := fakekube.New()
			unversionedNoOps(cs)
			held := otherHolds("canary", 2)
			held.Handoff = rl.HandoffOffer{Holder: "other", WithinSeconds: 22}
			writeRecord(t, cs, kind, held)
			newWorld(t, cs, kind, true).expect(false, verdictRequestHandoff)
			before := readRecord(t, cs, kind)

			restarted := newWorld(t, cs, kind, true)
			restarted.expect(false, verdictRequestHandoff)
			if after := readRecord(t, cs, kind); after.HandoffRequest != before.HandoffRequest {
				t.Fatalf("the restarted requester asked with %+v, want the same request as before, %+v", after.HandoffRequest, before.HandoffRequest)
			}
			if !restarted.le.seen.versioned() {
				t.Fatal("after a write that changed nothing, the elector takes resourceVersions for useless: it would read before every write for good")
			}
		})
	}
}

// TestHandoffAskIsForOneTermOfOneHolder: what we asked of a holder counts
// only in the term we asked it in. Counted in a later term of the same
// holder (it restarted, or was handed the lock back), a wait that ran out
// long ago would stop us asking it, and a lock handed to the holder we
// asked would read as handed to us.
func TestHandoffAskIsForOneTermOfOneHolder(t *testing.T) {
	ask := handoffAsk{to: "a", term: 3, deadline: t0}
	for _, tc := range []struct {
		name   string
		ask    handoffAsk
		holder string
		term   int
		want   bool
	}{
		{"the holder asked, in the term asked", ask, "a", 3, true},
		{"the same holder, a later term", ask, "a", 4, false},
		{"the same holder, an earlier term", ask, "a", 2, false},
		{"another holder, the same term number", ask, "b", 3, false},
		{"nothing asked", handoffAsk{}, "", 0, false},
	} {
		if got := tc.ask.of(&rl.LeaderElectionRecord{HolderIdentity: tc.holder, LeaderTransitions: tc.term}); got != tc.want {
			t.Errorf("%s: of = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHandoffWaitsForWorkWithTheLongestStopTimeout(t *testing.T) {
	const windDown = 2 * time.Minute // longer than any lease or wait of the election
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		longest := func(lec *LeaderElectionConfig) {
			mode.apply(lec)
			lec.StopTimeout = math.MaxInt64
		}
		a, b, f := handoffPair(t, ctx, cs, rl.LeasesResourceLock, longest, windDown, nil)
		b.leading(t)
		f.check(t)
		if took := time.Since(b.startAt); took < windDown {
			t.Errorf("b led %v after it asked, before a's work returned (%v)", took, windDown)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "b" || rec.LeaderTransitions != 1 {
			t.Errorf("record after the handoff: %+v; want b, 1 transition", rec)
		}
		a.finished(t)
	})
}

// TestWithdrawalRacingTheHoldersRenewalStands: a requester that stops
// between the holder's read (which shows its request) and the holder's
// renewal withdraws its request; the holder, its work stopped, must still not
// hand the lock to the requester that has stopped (nobody would lead for its
// lease), as the README promises. The interleaving is forced: the holder's
// first renewal that carries the request waits until the requester's Run has
// returned. On a strict clientset the renewal then conflicts; on client-go's
// stock fake it lands and puts the request back, and the holder's watch
// shows the withdrawal before the renewal. A holder that polls a clientset
// accepting stale writes cannot see it: there the documented exception
// holds: the lock may go to the stopped requester, never two lead, and the
// lock is free again once the requester's lease has run out.
func TestWithdrawalRacingTheHoldersRenewalStands(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		exception := fk.name == "stock" && mode.name == "poll"
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		states := leaseStates(t, cs)
		f := newFleet()
		aboutToWrite, withdrawn := make(chan struct{}), make(chan struct{})
		var once sync.Once
		hooked := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary")}
		hooked.beforeWrite = func(_ context.Context, record rl.LeaderElectionRecord) error {
			if record.HolderIdentity == "a" && record.HandoffRequest.HolderIdentity == "b" {
				once.Do(func() {
					close(aboutToWrite)
					<-withdrawn
				})
			}
			return nil
		}
		low := testConfig(watchedHookedLock{hooked})
		low.KeyComparison = outranksAllBut("canary")
		mode.apply(&low)
		a := startCandidate(t, ctx, low, f, 5*time.Second)
		a.leading(t)
		bCtx, stopB := context.WithCancel(ctx)
		high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		mode.apply(&high)
		b := startCandidate(t, bCtx, high, f, 0)
		receive(t, aboutToWrite, "the holder to renew carrying b's request")
		stopB()
		b.finished(t)
		close(withdrawn)
		a.finished(t)
		stoppedAt := time.Now()
		// Whatever the holder did, a newcomer leads within the stopped
		// requester's lease, and never beside anyone.
		c := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "c", "old"))
		mode.apply(&c)
		startCandidate(t, ctx, c, f, 0).leading(t)
		if took := time.Since(stoppedAt); took > leaseDuration+maxAcquireWait {
			t.Errorf("a newcomer led %v after the holder stopped, want at most the stopped requester's lease (%v) and a retry", took, leaseDuration)
		}
		f.check(t)
		if slices.Contains(f.history(), "b started") {
			t.Errorf("history %q: b led after its Run had returned", f.history())
		}
		recorded := states()
		if exception {
			return
		}
		for _, lease := range recorded {
			if holder := lease.Spec.HolderIdentity; holder != nil && *holder == "b" {
				t.Fatalf("the lock was handed to b, whose Run had returned after withdrawing its request, at %v", lease.Spec.AcquireTime)
			}
		}
	})
}

// TestHandoffRequestIsForOneTermOfOneHolder: a request asks the holder it
// names, in the term it names; once the lock has changed hands, or the same
// holder leads a later term, it no longer counts. An offer stands only while
// the one who made it holds the lock.
func TestHandoffRequestIsForOneTermOfOneHolder(t *testing.T) {
	request := rl.HandoffRequest{To: "a", Term: 3, HolderIdentity: "b", HolderKey: "stable"}
	for _, tc := range []struct {
		name    string
		request rl.HandoffRequest
		holder  string
		term    int
		want    bool
	}{
		{"the holder asked, in the term asked", request, "a", 3, true},
		{"the same holder, a later term", request, "a", 4, false},
		{"the same holder, an earlier term", request, "a", 2, false},
		{"another holder, the same term number", request, "c", 3, false},
		{"no requester", rl.HandoffRequest{To: "a", Term: 3}, "a", 3, false},
	} {
		record := &rl.LeaderElectionRecord{HolderIdentity: tc.holder, LeaderTransitions: tc.term, HandoffRequest: tc.request}
		if got := requestPending(record); got != tc.want {
			t.Errorf("%s: requestPending = %v, want %v", tc.name, got, tc.want)
		}
		// What tools read through must say the same.
		if got, pending := PendingHandoff(record); pending != tc.want || (pending && got != tc.request) {
			t.Errorf("%s: PendingHandoff = %+v, %v; want %v", tc.name, got, pending, tc.want)
		}
	}
	if _, pending := PendingHandoff(nil); pending {
		t.Error("PendingHandoff(nil) reports a pending request")
	}
	offer := rl.HandoffOffer{Holder: "a", WithinSeconds: 22}
	for _, tc := range []struct {
		record *rl.LeaderElectionRecord
		want   bool
	}{
		{&rl.LeaderElectionRecord{HolderIdentity: "a", Handoff: offer}, true},
		{&rl.LeaderElectionRecord{HolderIdentity: "b", Handoff: offer}, false},
		{&rl.LeaderElectionRecord{}, false},
	} {
		if offerStands(tc.record) != tc.want {
			t.Errorf("offer %+v held by %q: offerStands = %v; an offer stands only while the one who made it holds the lock", tc.record.Handoff, tc.record.HolderIdentity, !tc.want)
		}
		if got, stands := StandingOffer(tc.record); stands != tc.want || (stands && got != offer) {
			t.Errorf("offer %+v held by %q: StandingOffer = %+v, %v; want %v", tc.record.Handoff, tc.record.HolderIdentity, got, stands, tc.want)
		}
	}
	if _, stands := StandingOffer(nil); stands {
		t.Error("StandingOffer(nil) reports an offer")
	}
}

// TestHandoffRequestIsReplacedOnlyByAHigherOne: a candidate that outranks
// the holder takes the place of another pending requester only if it
// outranks that one too, so the request in the lock is always the highest
// made (and two requesters never take turns replacing each other).
func TestHandoffRequestIsReplacedOnlyByAHigherOne(t *testing.T) {
	h := handoff{me: "us"}
	pendingBy := func(identity, key string) *rl.LeaderElectionRecord {
		return &rl.LeaderElectionRecord{HolderIdentity: "holder", LeaderTransitions: 2,
			HandoffRequest: rl.HandoffRequest{To: "holder", Term: 2, HolderIdentity: identity, HolderKey: key}}
	}
	below := func(key string) bool { return key == "low" } // we outrank "low" only
	for _, tc := range []struct {
		name   string
		record *rl.LeaderElectionRecord
		want   bool
	}{
		{"no request pending", &rl.LeaderElectionRecord{HolderIdentity: "holder"}, true},
		{"a lower requester asked first", pendingBy("other", "low"), true},
		{"a higher requester asked first", pendingBy("other", "high"), false},
		{"a requester with our key asked first", pendingBy("other", "ours"), false},
		{"our own request is pending", pendingBy("us", "ours"), true},
		{"a lapsed request of a higher one", &rl.LeaderElectionRecord{HolderIdentity: "holder", LeaderTransitions: 3,
			HandoffRequest: rl.HandoffRequest{To: "holder", Term: 2, HolderIdentity: "other", HolderKey: "high"}}, true},
	} {
		if got := h.mayReplace(tc.record, "ours", below); got != tc.want {
			t.Errorf("%s: mayReplace = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHolderHonoursTheLatestRequestSeen: a holder winding down for a
// handoff writes, with each renewal, the request last seen pending in a
// state another candidate wrote (the highest, since only a higher one
// replaces it), not the one it first honoured, and none once it was
// withdrawn. A state of its own writing, or one with the content of its last
// write (a clientset that does not version objects), says nothing new,
// unless the lock was seen in another state since: then a requester put it
// back by withdrawing. The watch's event for our last write is ours too,
// even after a withdrawal it delivered first.
func TestHolderHonoursTheLatestRequestSeen(t *testing.T) {
	first := rl.HandoffRequest{To: "us", Term: 4, HolderIdentity: "canary", HolderKey: "canary"}
	higher := rl.HandoffRequest{To: "us", Term: 4, HolderIdentity: "stable", HolderKey: "stable"}
	state := func(request rl.HandoffRequest) rl.LeaderElectionRecord {
		return rl.LeaderElectionRecord{HolderIdentity: "us", LeaderTransitions: 4, HandoffRequest: request}
	}
	seen := func(request rl.HandoffRequest, written bool) *observation {
		return &observation{known: true, written: written, record: state(request)}
	}
	honouring := func() *handoff {
		h := &handoff{me: "us"}
		h.honour(&rl.LeaderElectionRecord{HandoffRequest: first}, time.Time{})
		return h
	}
	for _, tc := range []struct {
		name string
		do   func(h *handoff)
		want rl.HandoffRequest
	}{
		{"a higher one replaced it", func(h *handoff) { h.sawRead(seen(higher, false)) }, higher},
		{"still the first", func(h *handoff) { h.sawRead(seen(first, false)) }, first},
		{"withdrawn", func(h *handoff) { h.sawRead(seen(rl.HandoffRequest{}, false)) }, rl.HandoffRequest{}},
		{"our own write, last seen", func(h *handoff) { h.sawRead(seen(higher, true)) }, first},
		{"the lock as we last wrote it", func(h *handoff) {
			h.wroteRecord(state(first), 0)
			h.sawRead(seen(first, false))
		}, first},
		{"put back as we wrote it, after a request", func(h *handoff) {
			h.wroteRecord(state(rl.HandoffRequest{}), 0)
			h.sawRead(seen(first, false))
			h.sawRead(seen(rl.HandoffRequest{}, false))
		}, rl.HandoffRequest{}},
		{"delivered: a withdrawal, then our write's event", func(h *handoff) {
			h.wroteRecord(state(first), 1)
			h.sawDelivered(seen(rl.HandoffRequest{}, false), 1)
			h.sawDelivered(seen(first, false), 1)
		}, rl.HandoffRequest{}},
		{"delivered: our write's event, then the same content again", func(h *handoff) {
			h.wroteRecord(state(rl.HandoffRequest{}), 1)
			h.sawDelivered(seen(rl.HandoffRequest{}, false), 1)
			h.sawDelivered(seen(first, false), 1)
			h.sawDelivered(seen(rl.HandoffRequest{}, false), 1)
		}, rl.HandoffRequest{}},
		{"delivered by a watch started after our write: a request, then withdrawn to our content", func(h *handoff) {
			h.wroteRecord(state(rl.HandoffRequest{}), 0)
			h.sawDelivered(seen(first, false), 1)
			h.sawDelivered(seen(rl.HandoffRequest{}, false), 1)
		}, rl.HandoffRequest{}},
		{"delivered by a later watch than the one running as we wrote", func(h *handoff) {
			h.wroteRecord(state(rl.HandoffRequest{}), 1)
			h.sawDelivered(seen(first, false), 2)
			h.sawDelivered(seen(rl.HandoffRequest{}, false), 2)
		}, rl.HandoffRequest{}},
		{"delivered after our write, then read back as we wrote it", func(h *handoff) {
			h.wroteRecord(state(rl.HandoffRequest{}), 0)
			h.sawDelivered(seen(first, false), 1)
			h.sawRead(seen(rl.HandoffRequest{}, false))
		}, rl.HandoffRequest{}},
	} {
		h := honouring()
		tc.do(h)
		if got := h.honouring(); got != tc.want {
			t.Errorf("%s: honouring = %+v, want %+v", tc.name, got, tc.want)
		}
		current := state(first)
		if _, ok := h.answer(&current); ok != (tc.want != rl.HandoffRequest{}) {
			t.Errorf("%s: answer over a lock carrying the first request reports %v; it counts only while honoured", tc.name, ok)
		}
	}
	h := &handoff{me: "us"}
	h.sawRead(seen(first, false))
	if got := h.honouring(); got != (rl.HandoffRequest{}) {
		t.Errorf("a holder honouring nothing writes %+v, want no request", got)
	}
}

// askStepDown writes an operator's step-down request into the lock, as
// kubectl election does: to the holder of the record as it reads it, in its
// term, valid for valid from now.
func askStepDown(t *testing.T, cs clientset, kind, to string, out, valid time.Duration) rl.StepDownRequest {
	t.Helper()
	// Into one object, as kubectl election writes it: a MultiLock holder
	// reads it from either (here from its Lease).
	one := kind
	if kind == rl.ConfigMapsLeasesResourceLock || kind == rl.EndpointsLeasesResourceLock {
		one = rl.LeasesResourceLock
	}
	lock := newTestLock(t, cs, one, "operator", "")
	ctx := context.Background()
	// Written while every candidate waits: a renewal in flight would
	// write over the request on client-go's stock fake, which accepts
	// stale writes (the exception the package doc states), and a
	// MultiLock's two objects would be written in between.
	synctest.Wait()
	var asked *rl.LeaderElectionRecord
	for range 10 {
		rec, _, err := lock.Get(ctx)
		if err != nil {
			t.Fatalf("read %s lock: %v", kind, err)
		}
		if asked == nil {
			asked = rec
		}
		if rec.HolderIdentity != asked.HolderIdentity || rec.LeaderTransitions != asked.LeaderTransitions {
			t.Fatalf("the %s lock changed hands while asking: %+v", kind, rec)
		}
		now := time.Now()
		rec.StepDown = rl.StepDownRequest{
			Holder: rec.HolderIdentity, Term: rec.LeaderTransitions, To: to, ForSeconds: int(out / time.Second),
			RequestedAt: now.UTC().Format(time.RFC3339), ExpiresAt: now.Add(valid).UTC().Format(time.RFC3339),
		}
		err = lock.Update(ctx, *rec)
		if err == nil {
			return rec.StepDown
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("write the step-down request into the %s lock: %v", kind, err)
		}
	}
	t.Fatalf("write the step-down request into the %s lock: ten conflicts in a row", kind)
	return rl.StepDownRequest{}
}

// rejoining is a candidate that runs RunAndRejoin, so that it competes again
// after each term; every term's start is sent on started.
type rejoining struct {
	le      *LeaderElector
	started chan context.Context
	done    chan struct{}
}

func startRejoining(t *testing.T, ctx context.Context, lec LeaderElectionConfig, f *fleet) *rejoining {
	t.Helper()
	c := &rejoining{started: make(chan context.Context, 8), done: make(chan struct{})}
	id := lec.Lock.Identity()
	lec.Callbacks.OnStartedLeading = func(workCtx context.Context) {
		f.begin(id)
		c.started <- workCtx
		<-workCtx.Done()
		f.end(id)
	}
	lec.Callbacks.OnStoppedLeading = func() { f.note(id + " stopped") }
	c.le = newTestElector(t, lec, nil)
	go func() {
		defer close(c.done)
		c.le.RunAndRejoin(ctx)
	}()
	return c
}

// stepDownFleet starts "a" (key stable, the highest) as a rejoining leader,
// then the followers named by keys, each a plain candidate, all in mode.
func stepDownFleet(t *testing.T, ctx context.Context, cs clientset, kind string, mode func(*LeaderElectionConfig), keys map[string]string) (*rejoining, map[string]*candidate, *fleet) {
	t.Helper()
	f := newFleet()
	lec := testConfig(newTestLock(t, cs, kind, "a", "stable"))
	lec.KeyComparison = outranksAllBut("stable")
	mode(&lec)
	a := startRejoining(t, ctx, lec, f)
	receive(t, a.started, "a to lead")
	followers := map[string]*candidate{}
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		lec := testConfig(newTestLock(t, cs, kind, id, keys[id]))
		lec.KeyComparison = outranksAllBut(keys[id])
		mode(&lec)
		followers[id] = runCandidate(t, ctx, lec, f)
	}
	time.Sleep(retryPeriod) // every follower has seen a lead
	return a, followers, f
}

// TestStepDownHandsOverWithoutOverlapAndStaysOut: a leader asked to step
// down, with no candidate asking for the lock, stops its work, then releases
// the lock, which a follower takes at once (watching) or at its next look
// (polling); the leader, whose key outranks everyone's, stays out for the
// time asked, and then competes as before: it asks for the lock back.
func TestStepDownHandsOverWithoutOverlapAndStaysOut(t *testing.T) {
	const out = time.Minute
	eachFakeModeAndCase(t, modes, lockKinds, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		a, followers, f := stepDownFleet(t, ctx, cs, kind, mode.apply, map[string]string{"b": "canary"})
		asked := time.Now()
		askStepDown(t, cs, kind, "", out, time.Minute)
		followers["b"].leading(t)
		took := time.Since(asked)
		if limit := 2 * maxAcquireWait; mode.name == "poll" && took > limit || mode.name == "watch" && took != 0 {
			t.Errorf("b led %v after the request; want at once watching, within %v polling", took, limit)
		}
		f.check(t)
		if want := []string{"a started", "a ended", "a stopped", "b started"}; !slices.Equal(f.history(), want) {
			t.Fatalf("history %q, want %q", f.history(), want)
		}
		rec := readRecord(t, cs, kind)
		if _, pending := PendingStepDown(&rec, time.Now()); pending || rec.StepDown.Holder != "a" || rec.StepDown.OutUntil == "" {
			t.Errorf("after the step-down the lock carries %+v (pending %v); want a's request, carried out, with the time a stays out until", rec.StepDown, pending)
		}
		select {
		case <-a.started:
			t.Fatalf("a led again %v after stepping down, within the %v it was asked to stay out", time.Since(asked), out)
		case <-time.After(out - maxAcquireWait - time.Since(asked)):
		}
		receive(t, a.started, "a to ask for the lock back once its time out had run")
		f.check(t)
		if back := time.Since(asked); back > out+maxAcquireWait+leaseDuration {
			t.Errorf("a led again %v after the request, want soon after the %v out", back, out)
		}
	})
}

// TestHandoffToTheNamedCandidate: a step-down request that names a
// candidate moves the lock to it, not to another follower, with zero
// overlap, even though its key is below the holder's; the holder stays out
// for the time asked instead of taking the lock back at once, and then asks
// for it back.
func TestHandoffToTheNamedCandidate(t *testing.T) {
	const out = time.Minute
	eachFakeModeAndCase(t, modes, []string{rl.LeasesResourceLock, rl.ConfigMapsLeasesResourceLock}, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		a, followers, f := stepDownFleet(t, ctx, cs, kind, mode.apply, map[string]string{"b": "canary", "c": "old"})
		// A MultiLock writes its two objects one after the other: b's
		// request can reach the second after the holder read it, and
		// the holder, finding the halves in disagreement, leaves the
		// lock to expire; c may take it then, and b asks c for it. The
		// move takes a lease longer, and never overlaps on a clientset
		// that refuses stale writes.
		detour := kind != rl.LeasesResourceLock
		if detour && fk.name == "stock" {
			// The stock fake also takes a request written over a state
			// its writer never saw: a requester's write (b's, and a's
			// once its time out has run) can land on the second object
			// after the holder handed both over to it, which leaves the
			// two naming different holders. Every follower then sees
			// that lease run out at the same instant and takes the
			// lock, and that fake accepts both writes (the promised
			// exception): the takers lead until they find the lock not
			// theirs, at the latest at their next renewal.
			f.raceAllowance = retryPeriod
		}
		// settled lets a race for the lock run its course before the
		// fleet is checked.
		settled := func() {
			if f.raceAllowance > 0 {
				time.Sleep(f.raceAllowance)
				synctest.Wait()
			}
		}
		asked := time.Now()
		askStepDown(t, cs, kind, "b", out, time.Minute)
		followers["b"].leading(t)
		settled()
		f.check(t)
		if want := []string{"a started", "a ended", "a stopped", "b started"}; !slices.Equal(f.history(), want) && !detour {
			t.Fatalf("history %q, want %q", f.history(), want)
		}
		select {
		case <-a.started:
			t.Fatalf("a led again %v after it was asked to stay out for %v", time.Since(asked), out)
		case <-time.After(out - 2*maxAcquireWait - time.Since(asked)):
		}
		receive(t, a.started, "a to ask for the lock back once its time out had run")
		settled()
		f.check(t)
		time.Sleep(2 * retryPeriod)
		if rec := readRecord(t, cs, kind); rec.StepDown != (rl.StepDownRequest{}) {
			t.Errorf("the lock still carries the step-down %+v once its time out has run", rec.StepDown)
		}
	})
}

// TestStepDownRequestsThatDoNothing: a step-down request that has expired,
// that asks another term or holder, or that names a candidate that never
// answers, leaves the leader leading; so does any request to a leader that
// does not offer handoffs.
func TestStepDownRequestsThatDoNothing(t *testing.T) {
	type tc struct {
		name    string
		tweak   func(*LeaderElectionConfig)
		request func(r *rl.StepDownRequest)
	}
	cases := []tc{
		{"expired", nil, func(r *rl.StepDownRequest) { r.ExpiresAt = time.Now().Add(-time.Second).UTC().Format(time.RFC3339) }},
		{"no expiry", nil, func(r *rl.StepDownRequest) { r.ExpiresAt = "" }},
		{"another term", nil, func(r *rl.StepDownRequest) { r.Term-- }},
		{"another holder", nil, func(r *rl.StepDownRequest) { r.Holder = "z" }},
		{"no such candidate", nil, func(r *rl.StepDownRequest) { r.To = "nobody" }},
		{"handoffs off", func(lec *LeaderElectionConfig) { lec.DisableHandoff = true }, func(*rl.StepDownRequest) {}},
	}
	eachFakeModeAndCase(t, modes, cases, func(c tc) string { return c.name }, func(t *testing.T, fk fakeClientset, mode followMode, c tc) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "stable"))
		lec.KeyComparison = outranksAllBut("stable")
		mode.apply(&lec)
		if c.tweak != nil {
			c.tweak(&lec)
		}
		a := startRejoining(t, ctx, lec, f)
		receive(t, a.started, "a to lead")
		lock := newTestLock(t, cs, rl.LeasesResourceLock, "operator", "")
		rec, _, err := lock.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		rec.StepDown = rl.StepDownRequest{Holder: "a", Term: rec.LeaderTransitions, ForSeconds: 60,
			RequestedAt: now.UTC().Format(time.RFC3339), ExpiresAt: now.Add(time.Minute).UTC().Format(time.RFC3339)}
		c.request(&rec.StepDown)
		if err := lock.Update(ctx, *rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		if want := []string{"a started"}; !a.le.IsLeader() || !slices.Equal(f.history(), want) {
			t.Fatalf("a step-down request that should do nothing: history %q, want %q", f.history(), want)
		}
	})
}

// TestSteppedDownIdentityStaysOutInANewElector: a controller that makes a
// new elector for each Run (as Istio's does) stays out for the time asked
// too: the lock carries, until then, who stepped down, and every holder's
// writes keep it there.
func TestSteppedDownIdentityStaysOutInANewElector(t *testing.T) {
	const out = time.Minute
	eachFakeModeAndCase(t, modes, []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock}, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		config := func(id, key string) LeaderElectionConfig {
			lec := testConfig(newTestLock(t, cs, kind, id, key))
			lec.KeyComparison = outranksAllBut(key)
			mode.apply(&lec)
			return lec
		}
		a := runCandidate(t, ctx, config("a", "stable"), f)
		a.leading(t)
		b := runCandidate(t, ctx, config("b", "canary"), f)
		time.Sleep(retryPeriod)
		asked := time.Now()
		askStepDown(t, cs, kind, "", out, time.Minute)
		b.leading(t)
		a.finished(t)
		again := runCandidate(t, ctx, config("a", "stable"), f)
		select {
		case <-again.started:
			t.Fatalf("a new elector of a led %v after a stepped down, within the %v it was asked to stay out", time.Since(asked), out)
		case <-time.After(out - maxAcquireWait - time.Since(asked)):
		}
		again.leading(t)
		f.check(t)
		if back := time.Since(asked); back > out+retryPeriod+3*maxAcquireWait {
			t.Errorf("a led again %v after the request, want soon after the %v out", back, out)
		}
		time.Sleep(2 * retryPeriod)
		if rec := readRecord(t, cs, kind); rec.StepDown != (rl.StepDownRequest{}) {
			t.Errorf("the lock still carries the step-down %+v once its time out has run", rec.StepDown)
		}
	})
}

// TestWithdrawalBeforeTheWindDownsFirstRenewalStands: a requester asks a
// watching holder for the lock and withdraws at once, before the holder has
// written the lock again. Its withdrawal puts back the very record the
// holder last wrote, which the holder must not take for the echo of its own
// write: the lock is released, never handed to the stopped requester. It
// holds on both fakes.
func TestWithdrawalBeforeTheWindDownsFirstRenewalStands(t *testing.T) {
	const windDown = 5 * time.Second // the holder renews while it winds down
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		states := leaseStates(t, cs)
		f := newFleet()
		low := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary"))
		low.KeyComparison = outranksAllBut("canary")
		a := startCandidate(t, ctx, low, f, windDown)
		workCtx := a.leading(t)
		time.Sleep(retryPeriod / 2)
		bCtx, stopB := context.WithCancel(ctx)
		high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		b := startCandidate(t, bCtx, high, f, 0)
		// The holder takes the request up at once; b withdraws before
		// the holder's first renewal of its wind-down.
		receive(t, workCtx.Done(), "the holder to take b's request up")
		stopB()
		b.finished(t)
		a.finished(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" || rec.HandoffRequest != (rl.HandoffRequest{}) {
			t.Errorf("record %+v once the holder stopped, want it released, with no request", rec)
		}
		for _, lease := range states() {
			if holder := lease.Spec.HolderIdentity; holder != nil && *holder == "b" {
				t.Fatalf("the lock was handed to b, which had withdrawn its request and stopped, at %v", lease.Spec.AcquireTime)
			}
		}
	})
}

// TestSteppedDownIdentityStaysOutWhateverTheNextHolderDoes: the lock keeps
// who stepped down until its time out has run, not only through the next
// holder's renewals but through whatever that holder does next: handing
// the lock on to a higher requester, or releasing it. A new elector of the
// identity that stepped down stays out either way.
func TestSteppedDownIdentityStaysOutWhateverTheNextHolderDoes(t *testing.T) {
	const out = 5 * time.Minute
	cases := []string{"handed on", "released"}
	eachFakeModeAndCase(t, byDefault, cases, itself, func(t *testing.T, fk fakeClientset, _ followMode, next string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		config := func(id, key string) LeaderElectionConfig {
			lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, id, key))
			lec.KeyComparison = outranksAllBut(key)
			lec.ReleaseOnCancel = true
			return lec
		}
		a := runCandidate(t, ctx, config("a", "stable"), f)
		a.leading(t)
		bCtx, stopB := context.WithCancel(ctx)
		defer stopB()
		b := runCandidate(t, bCtx, config("b", "old"), f)
		time.Sleep(retryPeriod)
		asked := time.Now()
		askStepDown(t, cs, rl.LeasesResourceLock, "", out, time.Minute)
		b.leading(t)
		a.finished(t)
		switch next {
		case "handed on":
			c := runCandidate(t, ctx, config("c", "canary"), f)
			c.leading(t)
		case "released":
			stopB()
			b.finished(t)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.StepDown.Holder != "a" {
			t.Errorf("once b %s the lock, it carries the step-down %+v; want a's, with the time a stays out until", next, rec.StepDown)
		}
		again := runCandidate(t, ctx, config("a", "stable"), f)
		select {
		case <-again.started:
			t.Fatalf("a new elector of a led %v after a stepped down, within the %v it was asked to stay out (b %s the lock)", time.Since(asked), out, next)
		case <-time.After(out - maxAcquireWait - time.Since(asked)):
		}
		f.check(t)
	})
}

// TestStepDownReachesAMigratingHolderOverALapsedNote: on a migration's two
// objects, a step-down request written into one of them (as kubectl
// election writes it) is taken up even when the other still carries the
// note of an earlier step-down whose time out has just run, which the
// holder has not yet written away.
func TestStepDownReachesAMigratingHolderOverALapsedNote(t *testing.T) {
	kinds := []string{rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock}
	eachFakeModeAndCase(t, byDefault, kinds, itself, func(t *testing.T, fk fakeClientset, _ followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, followers, f := stepDownFleet(t, ctx, cs, kind, func(*LeaderElectionConfig) {}, map[string]string{"b": "canary"})
		// An earlier holder x stepped down; its time out runs for one
		// more second. Both objects carry the note, as every writer
		// of ours leaves it.
		synctest.Wait()
		lock := newTestLock(t, cs, kind, "operator", "")
		rec, _, err := lock.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		earlier := time.Now().Add(-time.Minute)
		rec.StepDown = rl.StepDownRequest{Holder: "x", Term: rec.LeaderTransitions - 1, ForSeconds: 61,
			RequestedAt: earlier.UTC().Format(time.RFC3339), ExpiresAt: earlier.Add(time.Minute).UTC().Format(time.RFC3339),
			OutUntil: time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)}
		if err := lock.Update(ctx, *rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		askStepDown(t, cs, kind, "", time.Minute, time.Minute)
		select {
		case <-followers["b"].started:
		case <-time.After(2 * time.Minute):
			rec := readRecord(t, cs, kind)
			t.Fatalf("a did not step down in 2m after a request written into the Lease while the %s carried x's lapsed note; the lock holds %+v", kind, rec)
		}
		f.check(t)
	})
}

// FuzzStepDownRequest: whatever a step-down annotation holds (a hand-written
// or garbled request: any times, any numbers), reading it as the elector
// does never panics, and neither keeps anyone out beyond MaxStepDownOut nor
// lets a request act once it expired.
func FuzzStepDownRequest(f *testing.F) {
	f.Add("a", 3, 3, 60, "2026-12-06T08:00:00Z", "2026-12-06T08:01:00Z", "2026-12-06T08:05:00Z")
	f.Add("a", 3, 3, -1, "", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z")
	f.Add("a", 0, 0, math.MaxInt, "x", "0000-01-01T00:00:00Z", "2026-12-06T08:00:00.999999999+14:00")
	f.Add("", math.MinInt, 0, math.MinInt, "\x00", "2026-13-40T99:99:99Z", "-")
	f.Fuzz(func(t *testing.T, holder string, term, transitions, forSeconds int, requestedAt, expiresAt, outUntil string) {
		now := time.Date(2026, 12, 6, 8, 0, 30, 0, time.UTC)
		step := rl.StepDownRequest{Holder: holder, Term: term, ForSeconds: forSeconds,
			RequestedAt: requestedAt, ExpiresAt: expiresAt, OutUntil: outUntil}
		record := rl.LeaderElectionRecord{HolderIdentity: "a", LeaderTransitions: transitions, StepDown: step}
		if out := StepDownOut(step); out < 0 || out > MaxStepDownOut {
			t.Fatalf("StepDownOut(%+v) = %v, want within 0 and %v", step, out, MaxStepDownOut)
		}
		if _, pending := PendingStepDown(&record, now); pending {
			expires, err := time.Parse(time.RFC3339, expiresAt)
			if err != nil || !now.Before(expires) {
				t.Fatalf("request %+v pending at %v though its expiry cannot be read or has passed", step, now)
			}
		}
		if _, until, ok := SteppedDown(&record, now); ok && (!until.After(now) || until.After(now.Add(MaxStepDownOut))) {
			t.Fatalf("note %+v keeps %q out until %v at %v: want within (now, now+%v]", step, holder, until, now, MaxStepDownOut)
		}
		h := &handoff{me: "a"}
		h.honour(&record, now)
		if h.outUntil.After(now.Add(MaxStepDownOut)) {
			t.Fatalf("honouring %+v keeps us out until %v, beyond %v", step, h.outUntil, MaxStepDownOut)
		}
		left := h.leftBehind(&record, now)
		if left.OutUntil != "" {
			if _, err := time.Parse(time.RFC3339, left.OutUntil); err != nil {
				t.Fatalf("the note left behind has an OutUntil %q nobody can read: %v", left.OutUntil, err)
			}
		}
		_ = h.excluded(&record, now)
		_ = h.carriedStepDown(&record, now)
	})
}

// TestStepDownDuringAHandoffStillKeepsTheHolderOut: a step-down request
// that reaches a holder already winding down to hand the lock to a
// requester is carried out with that handoff: the holder stays out for the
// time asked, so that when the lock comes free again (its new holder
// releases it) a new elector of the old holder does not take it.
func TestStepDownDuringAHandoffStillKeepsTheHolderOut(t *testing.T) {
	const out = 5 * time.Minute
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		config := func(id, key string) LeaderElectionConfig {
			lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, id, key))
			lec.KeyComparison = outranksAllBut(key)
			lec.ReleaseOnCancel = true
			mode.apply(&lec)
			return lec
		}
		a := startCandidate(t, ctx, config("a", "canary"), f, 5*time.Second)
		workCtx := a.leading(t)
		bCtx, stopB := context.WithCancel(ctx)
		defer stopB()
		b := runCandidate(t, bCtx, config("b", "stable"), f)
		receive(t, workCtx.Done(), "a to take b's request up")
		asked := time.Now()
		askStepDown(t, cs, rl.LeasesResourceLock, "", out, time.Minute)
		b.leading(t)
		a.finished(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.StepDown.Holder != "a" || rec.StepDown.OutUntil == "" {
			t.Errorf("once a handed over to b, the lock carries the step-down %+v; want a's request, with the time a stays out until", rec.StepDown)
		}
		again := runCandidate(t, ctx, config("a", "canary"), f)
		stopB()
		b.finished(t)
		select {
		case <-again.started:
			t.Fatalf("a new elector of a led %v after a was asked to step down for %v (b released the lock)", time.Since(asked), out)
		case <-time.After(out - maxAcquireWait - time.Since(asked)):
		}
		f.check(t)
	})
}

// A holder whose handoff request was withdrawn releases the lock instead,
// but only within the time left to its renew deadline, as the handoff
// itself: past it a successor may hold the lock, and a release read before
// would be written over its term.
func TestReleaseInsteadOfAHandoffEndsAtTheRenewDeadline(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ours := otherHolds("", 0)
		ours.HolderIdentity = "us"
		writeRecord(t, cs, rl.LeasesResourceLock, ours)
		gets := 0
		var lateWrite time.Time
		start := time.Now()
		deadline := start.Add(time.Second)
		lock := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""),
			beforeGet: func(ctx context.Context) error {
				if gets++; gets == 1 {
					return nil
				}
				// The release's read is slow to answer; like a client,
				// it ends with its context.
				select {
				case <-time.After(2 * time.Second):
					return nil
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			},
			beforeWrite: func(ctx context.Context, record rl.LeaderElectionRecord) error {
				if now := time.Now(); now.After(deadline) {
					lateWrite = now
				}
				return nil
			}}
		lec := testConfig(lock)
		lec.DisableWatch = true
		le := newTestElector(t, lec, nil)
		le.handOverBy(t.Context(), deadline)
		if !lateWrite.IsZero() {
			t.Fatalf("the release wrote the lock %v after the renew deadline", lateWrite.Sub(deadline))
		}
		if got := readRecord(t, cs, rl.LeasesResourceLock); got.HolderIdentity != "us" {
			t.Fatalf("holder %q, want the lock left to run out", got.HolderIdentity)
		}
	})
}
