package k8sleaderelection

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func TestRunLeadsThenReleasesOnCancel(t *testing.T) {
	for _, fk := range fakes {
		for _, kind := range lockKinds {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					cs := fk.new()
					ctx, cancel := context.WithCancel(t.Context())
					lec := testConfig(newTestLock(t, cs, kind, "a", "stable"))
					lec.ReleaseOnCancel = true
					lec.Name = "release-" + kind + "-" + uniqueName()
					a := runCandidate(t, ctx, lec, nil)
					leadCtx := a.leading(t)
					if !a.le.IsLeader() || a.le.GetLeader() != "a" {
						t.Fatalf("IsLeader %v, GetLeader %q after acquiring", a.le.IsLeader(), a.le.GetLeader())
					}
					time.Sleep(5 * retryPeriod) // several renewals
					if rec := readRecord(t, cs, kind); rec.HolderIdentity != "a" || rec.LeaderTransitions != 0 {
						t.Fatalf("record while leading: %+v", rec)
					}
					if !a.le.IsLeader() {
						t.Fatal("IsLeader false while renewing")
					}
					cancel()
					a.finished(t)
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
					if a.le.IsLeader() || a.le.GetLeader() != "" {
						t.Fatalf("after Run returned: IsLeader %v, GetLeader %q", a.le.IsLeader(), a.le.GetLeader())
					}
					if got := testMetrics.calls(lec.Name); len(got) != 3 || got[1] != "on" || got[2] != "off" {
						t.Fatalf("metric calls %v, want off, on, off", got)
					}
				})
			})
		}
	}
}

func TestRunWithoutReleaseLeavesTheRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		a.leading(t)
		cancel()
		a.finished(t)
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
		a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		synctest.Wait()
		if a.le.GetLeader() != "other" || a.le.IsLeader() {
			t.Fatalf("following: GetLeader %q, IsLeader %v", a.le.GetLeader(), a.le.IsLeader())
		}
		cancel()
		a.finished(t)
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
		receive(t, done, "the first Run to return")
		if stops.Load() != 1 {
			t.Fatalf("OnStoppedLeading ran %d times, want 1", stops.Load())
		}
		// Sequential reuse works.
		ctx2, cancel2 := context.WithTimeout(t.Context(), retryPeriod)
		defer cancel2()
		le.Run(ctx2)
		if stops.Load() != 2 {
			t.Fatalf("second Run: OnStoppedLeading ran %d times in all, want 2", stops.Load())
		}
	})
}

// TestRunOrDieWiresTheWatchDog: a leader whose renewals deadlock (its
// requests never return, context or not) is reported unhealthy, while Run
// is still stuck, by the watchdog RunOrDie was given, once LeaseDuration
// plus its timeout passed.
func TestRunOrDieWiresTheWatchDog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 5 * time.Second
		var stuck atomic.Bool
		unstick := make(chan struct{})
		wait := func(context.Context) error {
			if stuck.Load() {
				<-unstick
			}
			return nil
		}
		lock := &hookedLock{Interface: newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", ""),
			beforeGet: wait, beforeWrite: func(ctx context.Context, _ rl.LeaderElectionRecord) error { return wait(ctx) }}
		watchdog := NewLeaderHealthzAdaptor(timeout)
		lec := testConfig(lock)
		lec.WatchDog = watchdog
		leading := make(chan struct{})
		lec.Callbacks.OnStartedLeading = func(context.Context) { close(leading) }
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); RunOrDie(ctx, lec) }()
		receive(t, leading, "RunOrDie to lead")
		stuck.Store(true)
		time.Sleep(leaseDuration + timeout - time.Second)
		if err := watchdog.Check(nil); err != nil {
			t.Fatalf("unhealthy before LeaseDuration+timeout: %v", err)
		}
		time.Sleep(2 * time.Second)
		select {
		case <-done:
			t.Fatal("Run returned although its renewal is stuck")
		default:
		}
		if err := watchdog.Check(nil); err == nil {
			t.Fatal("a deadlocked leader is reported healthy")
		}
		stuck.Store(false)
		close(unstick)
		cancel()
		receive(t, done, "RunOrDie to return")
	})
}
