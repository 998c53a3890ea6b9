package crelection

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/utils/clock"
)

// leadInBackground runs t.lead(ctx) as the elector would, and returns a
// channel closed when it returns.
func leadInBackground(tm *term, ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tm.lead(ctx)
	}()
	return done
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestTermStartsKeptRunnablesOnlyWhenLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		p := newProbe("p", nil)
		if err := tm.add(p); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if p.isStarted() || closed(tm.elected) {
			t.Fatal("a kept runnable started, or elected closed, before the term")
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		synctest.Wait()
		if !p.isStarted() || !closed(tm.elected) {
			t.Fatalf("leading: started %v, elected %v; want both", p.isStarted(), closed(tm.elected))
		}
		if p.context().Err() != nil {
			t.Fatal("the term's context is done while the term runs")
		}
		cancel()
		<-done
	})
}

func TestTermStartsRunnablesAddedWhileLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		<-tm.elected
		p := newProbe("late", nil)
		if err := tm.add(p); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !p.isStarted() {
			t.Fatal("a runnable added while leading did not start")
		}
		cancel()
		<-done
		if !closed(p.returned) {
			t.Fatal("the term ended before the runnable added in it returned")
		}
	})
}

func TestTermEndsOnlyOnceEveryRunnableReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		quick, slow := newProbe("quick", nil), newProbe("slow", nil)
		slow.hold = make(chan struct{})
		_ = tm.add(quick)
		_ = tm.add(slow)
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		<-tm.elected
		cancel()
		synctest.Wait()
		if slow.context().Err() == nil || !closed(quick.returned) {
			t.Fatal("ending the term did not cancel its runnables")
		}
		if closed(done) {
			t.Fatal("lead returned while a runnable of the term still ran")
		}
		close(slow.hold)
		<-done
		if tm.err() != nil {
			t.Fatalf("err = %v after a clean end; want nil", tm.err())
		}
	})
}

func TestTermFailureEndsTheTermAndTheElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		aborted := make(chan struct{})
		tm.onAbort(func() { close(aborted) })
		failing, other := newProbe("failing", nil), newProbe("other", nil)
		_ = tm.add(failing)
		_ = tm.add(other)
		done := leadInBackground(tm, t.Context())
		<-tm.elected
		boom := errors.New("boom")
		failing.fail <- boom
		<-done
		if !closed(aborted) {
			t.Fatal("a failed runnable did not end the election")
		}
		if !closed(other.returned) {
			t.Fatal("the term ended before the other runnable returned")
		}
		if !errors.Is(tm.err(), boom) {
			t.Fatalf("err = %v; want %v", tm.err(), boom)
		}
	})
}

func TestTermErrorAfterTheEndIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		p := newProbe("p", nil)
		p.hold = make(chan struct{})
		_ = tm.add(p)
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		<-tm.elected
		cancel()
		synctest.Wait()
		// The probe is stopping; an error now is part of stopping.
		p.fail <- errors.New("stopped")
		close(p.hold)
		<-done
		if tm.err() != nil {
			t.Fatalf("err = %v; an error returned as the term ended is not why it ended", tm.err())
		}
	})
}

func TestTermRefusesRunnablesOnceOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		<-tm.elected
		cancel()
		<-done
		if err := tm.add(newProbe("late", nil)); !errors.Is(err, errTermOver) {
			t.Fatalf("add after the term: %v; want errTermOver", err)
		}

		never := newTerm()
		never.close()
		if err := never.add(newProbe("late", nil)); !errors.Is(err, errTermOver) {
			t.Fatalf("add after an election that never led: %v; want errTermOver", err)
		}
	})
}

func TestTermLeadsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTerm()
		p := newProbe("p", nil)
		_ = tm.add(p)
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		<-tm.elected
		cancel()
		<-done
		tm.lead(t.Context()) // must return at once, starting nothing
		if n := p.starts.Load(); n != 1 {
			t.Fatalf("the runnable was started %d times; want 1", n)
		}
	})
}

func TestTermAwaitRunnablesIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.RealClock{} // virtual time in the bubble
		start := time.Now()
		never := newTerm()
		never.close()
		if !newTerm().awaitRunnables(clk, time.Hour) || !never.awaitRunnables(clk, time.Hour) {
			t.Fatal("a term that never led has nothing to wait for")
		}
		if time.Since(start) != 0 {
			t.Fatalf("waited %v for a term that never led", time.Since(start))
		}
		tm := newTerm()
		p := newProbe("hung", nil)
		p.hold = make(chan struct{})
		_ = tm.add(p)
		ctx, cancel := context.WithCancel(t.Context())
		done := leadInBackground(tm, ctx)
		<-tm.elected
		cancel()
		start = time.Now()
		if tm.awaitRunnables(clk, 10*time.Second) {
			t.Fatal("awaitRunnables reported a hung runnable as returned")
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Fatalf("waited %v for a hung runnable; want the 10s bound", waited)
		}
		if tm.awaitRunnables(clk, -1) {
			t.Fatal("a negative bound must not wait, nor report the runnable returned")
		}
		close(p.hold)
		<-done
		if !tm.awaitRunnables(clk, 0) {
			t.Fatal("awaitRunnables: the runnables have returned")
		}
	})
}
