package k8sleaderelection

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/watch"

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
	for _, fk := range fakes {
		for _, mode := range modes {
			for _, kind := range lockKinds {
				t.Run(fk.name+"/"+mode.name+"/"+kind, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
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
				})
			}
		}
	}
}

// TestHandoffFromAHangingLeaderIsASteal: a leader whose work never returns
// does not hand the lock over while it may still run; the requester takes
// it once the time the leader offered has run out.
func TestHandoffFromAHangingLeaderIsASteal(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fk.new()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				_, b, _ := handoffPair(t, ctx, cs, rl.LeasesResourceLock, func(*LeaderElectionConfig) {}, -1, nil)
				b.leading(t)
				offered := retryPeriod + renewDeadline + renewDeadline // RetryPeriod + StopTimeout + RenewDeadline
				if took := time.Since(b.startAt); took < offered || took > offered+time.Second {
					t.Fatalf("b took the lock %v after asking, want once the offered %v ran out", took, offered)
				}
				if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "b" || rec.LeaderTransitions != 1 {
					t.Fatalf("record after the steal: %+v", rec)
				}
			})
		})
	}
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
		// b asks, and is gone before it sees the answer (it polls).
		bCtx, killB := context.WithCancel(ctx)
		var asked atomic.Bool
		high := testConfig(&hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"),
			beforeWrite: func(_ context.Context, r rl.LeaderElectionRecord) error {
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

// TestHandoffGoesToTheHighestRequester: two candidates outrank the leader
// and ask; the higher one's request replaces the lower one's, and the lower
// one never replaces the higher one's.
func TestHandoffGoesToTheHighestRequester(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var wg sync.WaitGroup
		f := newFleet()
		for _, key := range []string{"old", "canary", "stable"} {
			lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, key, key))
			lec.KeyComparison = outranksAllBut(key)
			member(t, ctx, &wg, lec, f)
			if key == "old" {
				time.Sleep(retryPeriod)
			}
		}
		time.Sleep(3 * leaseDuration)
		cancel()
		wg.Wait()
		f.check(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "stable" {
			t.Fatalf("holder %q, want stable", rec.HolderIdentity)
		}
		if acquisitions, _ := f.count(); acquisitions > 3 {
			t.Fatalf("%d acquisitions: the lock went back and forth: %q", acquisitions, f.history())
		}
	})
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

func (l deafLock) Watch(ctx context.Context) (watch.Interface, error) { return watch.NewFake(), nil }

func (l deafLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}

// TestHandoffSeenWithoutTheWatch: a requester whose watch misses the
// holder's answer still leads within a polling period of it, not after a
// whole lease with nobody leading.
func TestHandoffSeenWithoutTheWatch(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
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
		})
	}
}

// TestHandoffWaitsForWorkWithTheLongestStopTimeout: StopTimeout at its
// largest ("wait as long as it takes") makes the offer as long as a
// duration can be, not one that wraps around: the requester never takes
// the lock while the holder's work still runs, however long it takes to
// stop, and gets it by the handoff once the work has returned.
func TestHandoffWaitsForWorkWithTheLongestStopTimeout(t *testing.T) {
	const windDown = 2 * time.Minute // longer than any lease or wait of the election
	for _, fk := range fakes {
		for _, mode := range modes {
			t.Run(fk.name+"/"+mode.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
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
			})
		}
	}
}
