package k8sleaderelection

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// These tests run the real loop inside a synctest bubble: time is virtual,
// advances only when every goroutine of the test is blocked, and so every
// duration measured here is exact and repeatable.

// candidate is one running elector and what its callbacks have seen.
type candidate struct {
	le      *LeaderElector
	started chan context.Context // receives the leading context
	stopped chan struct{}        // closed by OnStoppedLeading
	done    chan struct{}        // closed when Run returns
	startAt time.Time
}

func runCandidate(t *testing.T, ctx context.Context, lec LeaderElectionConfig) *candidate {
	t.Helper()
	c := &candidate{
		started: make(chan context.Context, 1),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		startAt: time.Now(),
	}
	lec.Callbacks.OnStartedLeading = func(ctx context.Context) { c.started <- ctx }
	lec.Callbacks.OnStoppedLeading = func() { close(c.stopped) }
	c.le = newTestElector(t, lec, nil)
	go func() {
		defer close(c.done)
		c.le.Run(ctx)
	}()
	return c
}

// leading waits until c leads and returns its leading context.
func (c *candidate) leading(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-c.started:
		return ctx
	case <-c.done:
		t.Fatal("Run returned without leading")
		return nil
	}
}

func outranksAllBut(own string) KeyComparisonFunc {
	rank := map[string]int{"": 0, "old": 1, "canary": 2, "stable": 3}
	return func(existing string) bool { return rank[own] > rank[existing] }
}

func TestRunLeadsThenReleasesOnCancel(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				lec := testConfig(newTestLock(t, cs, kind, "a", "stable"))
				lec.ReleaseOnCancel = true
				lec.Name = "release-" + kind + "-" + uniqueName()
				a := runCandidate(t, ctx, lec)
				leadCtx := a.leading(t)
				if !a.le.IsLeader() || a.le.GetLeader() != "a" {
					t.Fatalf("IsLeader %v, GetLeader %q after acquiring", a.le.IsLeader(), a.le.GetLeader())
				}
				time.Sleep(5 * retryPeriod) // several renewals
				if rec := readRecord(t, cs, kind); rec.HolderIdentity != "a" || rec.LeaderTransitions != 0 {
					t.Fatalf("record while leading: %+v", rec)
				}
				cancel()
				<-a.done
				if leadCtx.Err() == nil {
					t.Fatal("leading context not cancelled when Run returned")
				}
				select {
				case <-a.stopped:
				default:
					t.Fatal("OnStoppedLeading not called")
				}
				rec := readRecord(t, cs, kind)
				if rec.HolderIdentity != "" || rec.HolderKey != "" || rec.LeaseDurationSeconds != 1 || rec.LeaderTransitions != 0 {
					t.Fatalf("record after release: %+v; want no holder, no key, 1s lease, transitions kept", rec)
				}
				if a.le.IsLeader() {
					t.Fatal("IsLeader after Run returned")
				}
				if got := testMetrics.calls(lec.Name); len(got) != 3 || got[1] != "on" || got[2] != "off" {
					t.Fatalf("metric calls %v, want off, on, off", got)
				}
			})
		})
	}
}

func TestRunWithoutReleaseLeavesTheRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")))
		a.leading(t)
		cancel()
		<-a.done
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "a" {
			t.Fatalf("holder after cancel without ReleaseOnCancel = %q, want a", rec.HolderIdentity)
		}
	})
}

func TestRunCancelledBeforeLeadingCallsOnStoppedLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 0))
		ctx, cancel := context.WithCancel(t.Context())
		a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")))
		synctest.Wait()
		cancel()
		<-a.done
		select {
		case <-a.stopped:
		default:
			t.Fatal("OnStoppedLeading not called by a Run that never led")
		}
		if len(a.started) != 0 {
			t.Fatal("OnStartedLeading called though the lock was held")
		}
	})
}

// TestPreemptedLeaderStepsDownOnNextRenewal is the step-down guarantee: the
// old leader's context is cancelled by the first renewal after the steal, at
// most one RetryPeriod later, not after RenewDeadline.
func TestPreemptedLeaderStepsDownOnNextRenewal(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()

				low := testConfig(newTestLock(t, cs, kind, "a", "canary"))
				low.KeyComparison = outranksAllBut("canary")
				a := runCandidate(t, ctx, low)
				aLeading := a.leading(t)
				time.Sleep(retryPeriod / 2) // the steal lands between renewals

				high := testConfig(newTestLock(t, cs, kind, "b", "stable"))
				high.KeyComparison = outranksAllBut("stable")
				b := runCandidate(t, ctx, high)
				b.leading(t)
				stolenAt := time.Now()
				if stolenAt != b.startAt {
					t.Fatalf("b took %v to preempt, want its first attempt", stolenAt.Sub(b.startAt))
				}

				<-aLeading.Done()
				if overlap := time.Since(stolenAt); overlap > retryPeriod {
					t.Fatalf("a led on for %v after the steal, want at most one RetryPeriod (%v)", overlap, retryPeriod)
				}
				<-a.done
				<-a.stopped
				rec := readRecord(t, cs, kind)
				if rec.HolderIdentity != "b" || rec.HolderKey != "stable" || rec.LeaderTransitions != 1 {
					t.Fatalf("record after the steal: %+v; want b, stable, 1 transition", rec)
				}
				if a.le.IsLeader() || !b.le.IsLeader() {
					t.Fatalf("IsLeader: a %v, b %v", a.le.IsLeader(), b.le.IsLeader())
				}
			})
		})
	}
}

// TestLeaderStopsWithinRenewDeadline cuts a leader off from the API: it must
// stop leading no later than RenewDeadline after its last renewal, which is
// before anyone else may take the lock.
func TestLeaderStopsWithinRenewDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		a := runCandidate(t, t.Context(), testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")))
		leadCtx := a.leading(t)
		time.Sleep(3*retryPeriod + retryPeriod/2)
		cutAt := time.Now()
		cs.SetOutage(errors.New("connection refused"))
		<-leadCtx.Done()
		// The last renewal was at most one RetryPeriod before the cut.
		if since := time.Since(cutAt); since > renewDeadline || since < renewDeadline-retryPeriod {
			t.Fatalf("stopped %v after the cut, want between %v and %v", since, renewDeadline-retryPeriod, renewDeadline)
		}
		<-a.done
		if a.le.Check(0) != nil {
			t.Fatal("Check fails after the elector stopped leading")
		}
	})
}

func TestThreeKeysInEveryOrderEndWithTheHighest(t *testing.T) {
	orders := [][]string{
		{"old", "canary", "stable"}, {"old", "stable", "canary"}, {"canary", "old", "stable"},
		{"canary", "stable", "old"}, {"stable", "old", "canary"}, {"stable", "canary", "old"},
	}
	for _, order := range orders {
		t.Run(order[0]+"-"+order[1]+"-"+order[2], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				byKey := map[string]*candidate{}
				for _, key := range order {
					lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, key, key))
					lec.KeyComparison = outranksAllBut(key)
					byKey[key] = runCandidate(t, ctx, lec)
					time.Sleep(retryPeriod)
				}
				time.Sleep(leaseDuration)
				if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "stable" {
					t.Fatalf("leader = %q, want stable", rec.HolderIdentity)
				}
				for key, c := range byKey {
					if c.le.IsLeader() != (key == "stable") {
						t.Errorf("%s IsLeader = %v", key, c.le.IsLeader())
					}
				}
				cancel()
				for _, c := range byKey {
					<-c.done
				}
			})
		})
	}
}

// leadTracker records, across candidates, how many lead at once.
type leadTracker struct {
	mu          sync.Mutex
	now, most   int
	acquisition int
}

func (lt *leadTracker) callbacks(t *testing.T) LeaderCallbacks {
	return LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			lt.mu.Lock()
			lt.now++
			lt.acquisition++
			lt.most = max(lt.most, lt.now)
			lt.mu.Unlock()
			<-ctx.Done()
			lt.mu.Lock()
			lt.now--
			lt.mu.Unlock()
		},
		OnStoppedLeading: func() {},
	}
}

func TestManyCandidatesOneLeader(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				var lt leadTracker
				var wg sync.WaitGroup
				var electors []*LeaderElector
				for _, id := range []string{"a", "b", "c", "d", "e"} {
					lec := testConfig(newTestLock(t, cs, kind, id, ""))
					lec.Callbacks = lt.callbacks(t)
					le := newTestElector(t, lec, nil)
					electors = append(electors, le)
					wg.Go(func() { le.Run(ctx) })
				}
				time.Sleep(3 * leaseDuration)
				leaders := 0
				for _, le := range electors {
					if le.IsLeader() {
						leaders++
					}
				}
				cancel()
				wg.Wait()
				synctest.Wait() // OnStartedLeading goroutines return
				lt.mu.Lock()
				defer lt.mu.Unlock()
				if leaders != 1 || lt.most != 1 || lt.acquisition != 1 {
					t.Fatalf("leaders %d, most at once %d, acquisitions %d; want 1, 1, 1", leaders, lt.most, lt.acquisition)
				}
			})
		})
	}
}

func TestRunTwiceAtOnceIgnoresTheSecondCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		var stops atomic.Int32
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
		lec.Callbacks.OnStoppedLeading = func() { stops.Add(1) }
		le := newTestElector(t, lec, nil)
		done := make(chan struct{})
		go func() { defer close(done); le.Run(ctx) }()
		synctest.Wait()
		le.Run(ctx) // returns at once
		if stops.Load() != 0 {
			t.Fatal("the ignored call ran OnStoppedLeading")
		}
		cancel()
		<-done
		if stops.Load() != 1 {
			t.Fatalf("OnStoppedLeading ran %d times, want 1", stops.Load())
		}
		// Sequential reuse works.
		ctx2, cancel2 := context.WithCancel(t.Context())
		go func() { time.Sleep(retryPeriod); cancel2() }()
		le.Run(ctx2)
		if stops.Load() != 2 {
			t.Fatalf("second Run: OnStoppedLeading ran %d times in all, want 2", stops.Load())
		}
	})
}

// TestMigratingLeaderYieldsToALeaseOnlyPreemptor: mid-migration, a leader on
// a ConfigMap+Lease MultiLock is preempted by a higher-key candidate that
// uses the Lease alone. The old leader steps down on its next renewal instead
// of writing over the Lease, and then, seeing the two locks disagree, never
// preempts back.
func TestMigratingLeaderYieldsToALeaseOnlyPreemptor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var mu sync.Mutex
		var asked []string
		low := testConfig(newTestLock(t, cs, rl.ConfigMapsLeasesResourceLock, "a", "canary"))
		low.KeyComparison = func(holder string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, holder)
			return outranksAllBut("canary")(holder)
		}
		a := runCandidate(t, ctx, low)
		aLeading := a.leading(t)
		time.Sleep(retryPeriod / 2)

		high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		b := runCandidate(t, ctx, high)
		b.leading(t)
		stolenAt := time.Now()
		select {
		case <-aLeading.Done():
		case <-time.After(renewDeadline):
			t.Fatal("a never stepped down: its renewals write over the Lease")
		}
		if overlap := time.Since(stolenAt); overlap > retryPeriod {
			t.Fatalf("a led on for %v after the steal", overlap)
		}
		time.Sleep(3 * leaseDuration)
		mu.Lock()
		defer mu.Unlock()
		if !b.le.IsLeader() || a.le.IsLeader() {
			t.Fatalf("after the steal: a leads %v, b leads %v", a.le.IsLeader(), b.le.IsLeader())
		}
		if len(asked) != 0 {
			t.Fatalf("KeyComparison was asked about a disagreeing MultiLock: %q", asked)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "b" {
			t.Fatalf("Lease holder = %q, want b", rec.HolderIdentity)
		}
	})
}
