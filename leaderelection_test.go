package k8sleaderelection

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func TestRunLeadsThenReleasesOnCancel(t *testing.T) {
	eachFakeModeAndCase(t, byDefault, lockKinds, itself, func(t *testing.T, fk fakeClientset, _ followMode, kind string) {
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

// TestRunAndRejoin: a leader whose lock is stolen goes back to competing,
// but only once its last term's work has returned; it then leads again with
// a fresh context, each term ending with its own OnStoppedLeading, and two
// terms' work never runs at once.
func TestRunAndRejoin(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var running, most, stops atomic.Int32
		terms := make(chan context.Context, 4)
		windDown := make(chan struct{})
		endWindDown := sync.OnceFunc(func() { close(windDown) })
		defer endWindDown()
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary"))
		lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
			if n := running.Add(1); n > most.Load() {
				most.Store(n)
			}
			defer running.Add(-1)
			terms <- ctx
			<-ctx.Done()
			<-windDown // the first term's work takes a while to stop
		}
		lec.Callbacks.OnStoppedLeading = func() { stops.Add(1) }
		le := newTestElector(t, lec, nil)
		done := make(chan struct{})
		go func() { defer close(done); le.RunAndRejoin(ctx) }()
		first := receive(t, terms, "the first term")

		thiefCtx, stopThief := context.WithCancel(ctx)
		thief := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
		thief.KeyComparison = outranksAllBut("stable")
		thief.DisableHandoff = true
		thief.ReleaseOnCancel = true
		b := runCandidate(t, thiefCtx, thief, nil)
		b.leading(t)
		receive(t, first.Done(), "the first term's context to end after the steal")
		stopThief()
		b.finished(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
			t.Fatalf("the thief did not release: %+v", rec)
		}

		// The lock is free, but the first term's work still runs:
		// a must not lead again yet.
		time.Sleep(3 * leaseDuration)
		synctest.Wait()
		if le.IsLeader() || len(terms) != 0 || most.Load() > 1 {
			t.Fatalf("a led again while its last term's work was still running (%d terms' work at once)", most.Load())
		}
		if got := stops.Load(); got != 1 {
			t.Fatalf("OnStoppedLeading ran %d times after the first term, want 1", got)
		}

		endWindDown()
		second := receive(t, terms, "the second term, once the first term's work returned")
		if second.Err() != nil || second == first {
			t.Fatal("the second term did not get a fresh context")
		}
		cancel()
		receive(t, done, "RunAndRejoin to return when its context ends")
		if got := stops.Load(); got != 2 || most.Load() > 1 {
			t.Fatalf("OnStoppedLeading ran %d times for two terms, want 2; at most %d terms' work ran at once, want 1", got, most.Load())
		}
	})
}

// TestRunAndRejoinOnARunningElector returns at once, calling nothing.
func TestRunAndRejoinOnARunningElector(t *testing.T) {
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
		le.RunAndRejoin(ctx)
		if stops.Load() != 0 {
			t.Fatal("RunAndRejoin on a running elector ran OnStoppedLeading")
		}
		cancel()
		receive(t, done, "Run to return")
	})
}

// TestClockFromTheConfig: an elector given a fake clock in its config
// waits on it, and on nothing else: it takes a held lock once the holder's
// lease has run out on that clock, while the real clock (virtual here)
// never moves.
func TestClockFromTheConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		t0 := time.Unix(1_000_000, 0)
		clk := clocktesting.NewFakeClock(t0)
		writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("other", 0))
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
		lec.Clock = clk
		led := make(chan struct{})
		lec.Callbacks.OnStartedLeading = func(context.Context) { close(led) }
		le, err := NewLeaderElector(lec)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); le.Run(ctx) }()
		defer func() { cancel(); <-done }()
		start := time.Now()
		for steps := 0; ; steps++ {
			synctest.Wait()
			select {
			case <-led:
				if passed := clk.Since(t0); passed < leaseDuration {
					t.Fatalf("took the lock after %v of the fake clock, before the holder's lease (%v) ran out", passed, leaseDuration)
				}
				if real := time.Since(start); real != 0 {
					t.Fatalf("the elector waited %v on the real clock", real)
				}
				return
			default:
			}
			if steps == 100 {
				t.Fatalf("never took the lock in %v of its fake clock", clk.Since(t0))
			}
			clk.Step(retryPeriod / 2)
		}
	})
}

// TestNegativeStopTimeoutOverlapsByDesign: the one exception to "a handoff
// never makes two leaders" that the package doc states. With a negative
// StopTimeout the holder does not wait for its work, so the requester starts
// while that work still winds down, for at most the wind-down.
func TestNegativeStopTimeoutOverlapsByDesign(t *testing.T) {
	// Longer than the requester may take to see the handover (a watch
	// still starting sees it only at its next attempt).
	const windDown = 10 * retryPeriod
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		noWait := func(lec *LeaderElectionConfig) { lec.StopTimeout = -1 }
		a, b, f := handoffPair(t, ctx, cs, rl.LeasesResourceLock, noWait, windDown, nil)
		b.leading(t)
		started := time.Now()
		history := f.history()
		if !slices.Contains(history, "a stopped") || slices.Contains(history, "a ended") {
			t.Fatalf("history %q when b started: want a's OnStoppedLeading run and its work still running", history)
		}
		a.finished(t)
		for !slices.Contains(f.history(), "a ended") {
			if time.Since(started) > windDown {
				t.Fatalf("a's work still runs %v after b started, beyond its wind-down (%v)", time.Since(started), windDown)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// upstreamLock is a lock written against client-go's resourcelock.Interface,
// as controller-runtime's fake and cert-manager's test lock are: the six
// methods it has, and neither a key nor any of the optional interfaces.
type upstreamLock struct{ inner rl.Interface }

func (l upstreamLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	return l.inner.Get(ctx)
}
func (l upstreamLock) Create(ctx context.Context, ler rl.LeaderElectionRecord) error {
	return l.inner.Create(ctx, ler)
}
func (l upstreamLock) Update(ctx context.Context, ler rl.LeaderElectionRecord) error {
	return l.inner.Update(ctx, ler)
}
func (l upstreamLock) RecordEvent(s string) { l.inner.RecordEvent(s) }
func (l upstreamLock) Identity() string     { return l.inner.Identity() }
func (l upstreamLock) Describe() string     { return l.inner.Describe() }

// keyedLock is an upstreamLock with a key of its own, as a lock written
// against Istio's fork has.
type keyedLock struct {
	upstreamLock
	key string
}

func (l keyedLock) Key() string { return l.key }

func TestLockWithoutKeyLeadsWithTheEmptyKey(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		for _, c := range []struct {
			name string
			lock func(inner rl.Interface) rl.Interface
			want string
		}{
			// The lock underneath has the key "stable", which a
			// lock without Key hides: the elector asks the Lock itself.
			{"without Key", func(inner rl.Interface) rl.Interface { return upstreamLock{inner} }, ""},
			{"with Key", func(inner rl.Interface) rl.Interface { return keyedLock{upstreamLock{inner}, "canary"} }, "canary"},
		} {
			cs := fk.new()
			ctx, cancel := context.WithCancel(t.Context())
			lec := testConfig(c.lock(newTestLock(t, cs, rl.LeasesResourceLock, "a", "stable")))
			a := runCandidate(t, ctx, lec, nil)
			a.leading(t)
			if got := readRecord(t, cs, rl.LeasesResourceLock).HolderKey; got != c.want {
				t.Errorf("%s: record's holder key %q, want %q", c.name, got, c.want)
			}
			cancel()
			a.finished(t)
		}
	})
}

func TestLockKeyOfNilOrKeylessLockIsEmpty(t *testing.T) {
	var typedNil *rl.LeaseLock
	for _, c := range []struct {
		name string
		lock rl.Interface
		want string
	}{
		{"nil", nil, ""},
		{"typed nil", typedNil, ""},
		{"without Key", upstreamLock{}, ""},
		{"with Key", keyedLock{key: "stable"}, "stable"},
		{"lease lock", &rl.LeaseLock{LockConfig: rl.ResourceLockConfig{Key: "canary"}}, "canary"},
	} {
		if got := lockKey(c.lock); got != c.want {
			t.Errorf("lockKey(%s) = %q, want %q", c.name, got, c.want)
		}
	}
}
