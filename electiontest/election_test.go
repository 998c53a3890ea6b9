package electiontest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
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
