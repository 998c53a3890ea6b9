package electiontest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestTheStoryOfATerm drives one replica through every turn the package
// offers: it leads, a higher key takes the lock, the holder releases it, it
// leads again, it loses its lease while cut off, and it sees each leader.
func TestTheStoryOfATerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := e.Config("me", "canary")
		r, err := e.Start(ctx, lec, true)
		if err != nil {
			t.Fatal(err)
		}
		first, err := r.WaitLeading(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if holder, key, _ := e.Holder(ctx); holder != "me" || key != "canary" {
			t.Fatalf("the lock names %s/%s, want me/canary", holder, key)
		}

		if err := e.Hold(ctx, "stable-1", "stable"); err != nil {
			t.Fatal(err)
		}
		// A watching leader sees it at once; one whose watch was still
		// starting (the stock fake does not replay what it missed, in
		// some versions) at its next renewal.
		if err := e.AdvanceUntil(ctx, func() bool { return first.Err() != nil }); err != nil {
			t.Fatal(err)
		}
		if err := r.WaitNewLeader(ctx, "stable-1"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if first.Err() == nil || r.Elector.IsLeader() {
			t.Fatal("the replica leads on after another holder took the lock")
		}
		if err := r.WaitStopped(ctx, 1); err != nil {
			t.Fatal(err)
		}

		if err := e.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// Taken at once, or at the next poll if the replica's watch was
		// still starting.
		if err := e.AdvanceUntil(ctx, func() bool { return r.Terms() == 2 }); err != nil {
			t.Fatal(err)
		}
		second, err := r.WaitLeading(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}

		if err := e.LoseLease(ctx, r); err != nil {
			t.Fatal(err)
		}
		if second.Err() == nil || r.Elector.IsLeader() {
			t.Fatal("a replica cut off for longer than RenewDeadline still leads")
		}
		if holder, _, _ := e.Holder(ctx); holder != "me" {
			t.Fatalf("after losing its lease the lock names %q, want the lost leader me until someone takes it", holder)
		}
		if err := r.WaitStopped(ctx, 2); err != nil {
			t.Fatal(err)
		}
		// Reconnected, and still in the race: it leads again at its next
		// attempt.
		if err := e.AdvanceUntil(ctx, func() bool { return r.Terms() == 3 }); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-r.Done()
	})
}

// TestCutOffReplicaTakesNothing: a follower cut off from the API server
// does not take a released lock until it is reconnected.
func TestCutOffReplicaTakesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		if err := e.Hold(ctx, "other", "x"); err != nil {
			t.Fatal(err)
		}
		r, err := e.Start(ctx, e.Config("me", ""), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.WaitNewLeader(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		e.CutOff("me")
		if err := e.Release(ctx); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			e.Advance(electiontest.RetryPeriod)
			synctest.Wait()
		}
		if r.Terms() != 0 {
			t.Fatal("a cut-off replica took the lock")
		}
		e.Reconnect("me")
		if err := e.AdvanceUntil(ctx, func() bool { return r.Terms() == 1 }); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-r.Done()
	})
}

// TestBadInput: every misuse is an error naming it, never a panic or a hang.
func TestBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		expect := func(err error, want string) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got error %v, want one mentioning %q", err, want)
			}
		}
		lec := e.Config("me", "")
		lec.Clock = clocktesting.NewFakeClock(time.Now())
		_, err := e.Start(ctx, lec, false)
		expect(err, "clock")
		lec = e.Config("me", "")
		lec.Lock = nil
		_, err = e.Start(ctx, lec, false)
		expect(err, "Lock")
		lec = e.Config("me", "")
		lec.RetryPeriod = time.Millisecond
		_, err = e.Start(ctx, lec, false)
		expect(err, "retryPeriod")
		expect(e.Hold(ctx, "", "x"), "identity")

		r, err := e.Start(ctx, e.Config("me", ""), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WaitLeading(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := e.Hold(ctx, "other", ""); err != nil {
			t.Fatal(err)
		}
		// Run returns after losing the lock (at once, or at its next
		// renewal if its watch was still starting).
		if err := e.AdvanceUntil(ctx, func() bool {
			select {
			case <-r.Done():
				return true
			default:
				return false
			}
		}); err != nil {
			t.Fatal(err)
		}
		expect(e.LoseLease(ctx, r), "not leading")
		_, err = r.WaitLeading(ctx, 2)
		expect(err, "Run returned")
		waitCtx, stop := context.WithTimeout(ctx, 100*time.Millisecond)
		defer stop()
		expect(e.AdvanceUntil(waitCtx, func() bool { return false }), "deadline")
		if !errors.Is(waitCtx.Err(), context.DeadlineExceeded) {
			t.Fatal("AdvanceUntil returned before its context ended")
		}
		// Without a deadline, a condition that never holds still ends.
		expect(e.AdvanceUntil(ctx, func() bool { return false }), "still does not hold")
	})
}

// TestRacingFollowersNeverBothLead: two followers that see the lock
// released at the same instant both try to take it (a gate holds the first
// write until the second arrives, so that both decide on the same state);
// as on an API server, one write wins and the other conflicts, so never do
// both lead. Run many times, since which one wins varies.
func TestRacingFollowersNeverBothLead(t *testing.T) {
	for run := range 20 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			e := electiontest.New("ns", "lock")
			if err := e.Hold(ctx, "old", ""); err != nil {
				t.Fatal(err)
			}
			var active, most atomic.Int32
			var replicas []*electiontest.Replica
			gate := &updateGate{open: make(chan struct{})}
			for _, id := range []string{"a", "b"} {
				lec := e.Config(id, "")
				lock := e.Lock(id, "")
				lock.Client = gatedClient{LeasesGetter: lock.Client, gate: gate}
				lec.Lock = lock
				lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
					n := active.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					<-ctx.Done()
					active.Add(-1)
				}
				r, err := e.Start(ctx, lec, true)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.WaitNewLeader(ctx, "old"); err != nil {
					t.Fatal(err)
				}
				replicas = append(replicas, r)
			}
			synctest.Wait()
			gate.arm()
			if err := e.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := e.AdvanceUntil(ctx, func() bool { return replicas[0].Terms()+replicas[1].Terms() > 0 }); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				e.Advance(electiontest.RetryPeriod)
				synctest.Wait()
			}
			if m := most.Load(); m > 1 {
				t.Fatalf("run %d: %d replicas led at once after racing for a released lock", run, m)
			}
			cancel()
			<-replicas[0].Done()
			<-replicas[1].Done()
		})
	}
}

// TestHoldHandsOverAfterTheWorkStopped: Hold takes the lock from a replica
// that offers a handoff as a higher key of this library does: the replica's
// work has stopped, and OnStoppedLeading has run, before the lock names the
// new holder.
func TestHoldHandsOverAfterTheWorkStopped(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(map[bool]string{true: "watch", false: "poll"}[watch], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				e := electiontest.New("ns", "lock")
				lec := e.Config("me", "canary")
				lec.DisableWatch = !watch
				var workDone, stopped atomic.Bool
				lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
					<-ctx.Done()
					<-e.Clock.After(3 * time.Second) // winds down, within StopTimeout
					workDone.Store(true)
				}
				lec.Callbacks.OnStoppedLeading = func() { stopped.Store(workDone.Load()) }
				r, err := e.Start(ctx, lec, false)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.WaitLeading(ctx, 1); err != nil {
					t.Fatal(err)
				}
				if err := e.Hold(ctx, "stable-1", "stable"); err != nil {
					t.Fatal(err)
				}
				if !workDone.Load() || !stopped.Load() {
					t.Fatalf("Hold returned with the holder's work returned=%v and OnStoppedLeading run after it=%v: a steal, not a handoff", workDone.Load(), stopped.Load())
				}
				if holder, key, _ := e.Holder(ctx); holder != "stable-1" || key != "stable" {
					t.Fatalf("the lock names %s/%s, want stable-1/stable", holder, key)
				}
				<-r.Done()
			})
		})
	}
}

// TestHoldStealsFromWorkThatIgnoresItsContext: a holder whose work does not
// return when told has the lock taken once the time its offer states has
// run out, as a real candidate would take it; its work still runs then.
func TestHoldStealsFromWorkThatIgnoresItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := e.Config("me", "canary")
		release := make(chan struct{})
		var workDone atomic.Bool
		lec.Callbacks.OnStartedLeading = func(context.Context) {
			<-release
			workDone.Store(true)
		}
		r, err := e.Start(ctx, lec, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WaitLeading(ctx, 1); err != nil {
			t.Fatal(err)
		}
		start := e.Clock.Now()
		if err := e.Hold(ctx, "stable-1", "stable"); err != nil {
			t.Fatal(err)
		}
		// The offer: RetryPeriod + StopTimeout (RenewDeadline) + RenewDeadline.
		offered := electiontest.RetryPeriod + 2*electiontest.RenewDeadline
		if moved := e.Clock.Since(start); moved < offered || workDone.Load() {
			t.Fatalf("Hold took the lock after %v (offer %v), work returned=%v: want a steal once the offer ran out, while the work runs", moved, offered, workDone.Load())
		}
		if holder, _, _ := e.Holder(ctx); holder != "stable-1" {
			t.Fatalf("the lock names %q, want stable-1", holder)
		}
		close(release)
		if err := e.AdvanceUntil(ctx, func() bool {
			select {
			case <-r.Done():
				return true
			default:
				return false
			}
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// updateGate holds, once armed, the first lock update until a second one
// arrives (or a second of the bubble's time passes), so that two racing
// writers both write over the state they decided on.
type updateGate struct {
	mu      sync.Mutex
	armed   bool
	arrived int
	open    chan struct{}
}

func (g *updateGate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
}

func (g *updateGate) pass() {
	g.mu.Lock()
	if !g.armed {
		g.mu.Unlock()
		return
	}
	g.arrived++
	if g.arrived == 2 {
		g.armed = false
		close(g.open)
	}
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-time.After(time.Second):
	}
}

type gatedClient struct {
	coordinationv1client.LeasesGetter
	gate *updateGate
}

func (c gatedClient) Leases(namespace string) coordinationv1client.LeaseInterface {
	return gatedLeases{LeaseInterface: c.LeasesGetter.Leases(namespace), gate: c.gate}
}

type gatedLeases struct {
	coordinationv1client.LeaseInterface
	gate *updateGate
}

func (l gatedLeases) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	l.gate.pass()
	return l.LeaseInterface.Update(ctx, lease, opts)
}

// TestHoldWaitsForAHolderWhoseStopTimeoutIsEndless: a holder with
// StopTimeout math.MaxInt64 ("as long as it takes") offers the longest
// handoff time there is; Hold must read that offer as the longest, not
// wrap it around into the past and steal while the holder's work runs.
func TestHoldWaitsForAHolderWhoseStopTimeoutIsEndless(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		lec := e.Config("me", "canary")
		lec.StopTimeout = math.MaxInt64
		var workDone, stopped atomic.Bool
		lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
			<-ctx.Done()
			<-e.Clock.After(3 * time.Second) // winds down
			workDone.Store(true)
		}
		lec.Callbacks.OnStoppedLeading = func() { stopped.Store(workDone.Load()) }
		r, err := e.Start(ctx, lec, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WaitLeading(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := e.Hold(ctx, "stable-1", "stable"); err != nil {
			t.Fatal(err)
		}
		if !workDone.Load() || !stopped.Load() {
			t.Errorf("Hold returned with the holder's work returned=%v and OnStoppedLeading run after it=%v: it stole from a holder whose offer is endless", workDone.Load(), stopped.Load())
		}
		if err := e.AdvanceUntil(ctx, func() bool {
			select {
			case <-r.Done():
				return workDone.Load()
			default:
				return false
			}
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStartRefusesTypedNils: a Lock or Clock that is a nil pointer (what a
// constructor that failed returns beside its error) is an error of Start
// naming the field, never a panic.
func TestStartRefusesTypedNils(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		start := func(lec k8sleaderelection.LeaderElectionConfig) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			_, err = e.Start(ctx, lec, false)
			return err
		}
		lec := e.Config("me", "")
		lec.Lock = (*rl.LeaseLock)(nil)
		if err := start(lec); err == nil || strings.Contains(err.Error(), "panic") || !strings.Contains(err.Error(), "Lock") {
			t.Errorf("Start with a nil *LeaseLock: %v; want an error naming Lock, not a panic", err)
		}
		lec = e.Config("me", "")
		lec.Clock = (*clocktesting.FakeClock)(nil)
		if err := start(lec); err == nil || strings.Contains(err.Error(), "panic") || !strings.Contains(err.Error(), "lock") {
			t.Errorf("Start with a nil *FakeClock: %v; want an error naming the clock, not a panic", err)
		}
	})
}
