package crelection

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

// warmupFunc is a warmer made of a function.
type warmupFunc func(context.Context) error

func (f warmupFunc) Warmup(ctx context.Context) error { return f(ctx) }

func TestWarmupsReadyOnceEveryWarmupReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWarmups()
		release := make(chan struct{})
		slow := w.of(warmupFunc(func(context.Context) error { <-release; return nil }), t.Context())
		quick := w.of(warmupFunc(func(context.Context) error { return nil }), t.Context())
		theirsAsked := false
		ready := make(chan error, 1)
		go func() {
			ready <- w.waitForReady(func(context.Context) error { theirsAsked = true; return nil })(t.Context())
		}()
		go func() { _ = slow.Warmup(t.Context()) }()
		_ = quick.Warmup(t.Context())
		synctest.Wait()
		if len(ready) != 0 || theirsAsked {
			t.Fatal("ready, or the caller's WaitForReady asked, while a warmup still ran")
		}
		close(release)
		if err := <-ready; err != nil || !theirsAsked {
			t.Fatalf("WaitForReady = %v, caller's asked %v; want nil and asked", err, theirsAsked)
		}
	})
}

func TestWarmupsFailedWarmupIsNotReady(t *testing.T) {
	w := newWarmups()
	boom := errors.New("boom")
	_ = w.of(warmupFunc(func(context.Context) error { return boom }), t.Context()).Warmup(t.Context())
	if err := w.wait(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("wait = %v; want the warmup's error", err)
	}
}

func TestWarmupsWaitEndsWithItsContext(t *testing.T) {
	w := newWarmups()
	_ = w.of(warmupFunc(func(context.Context) error { return nil }), t.Context()) // never called
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v; want context.Canceled", err)
	}
}

func TestWarmupContextEndsWithTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWarmups()
		termOver, endTerm := context.WithCancel(t.Context())
		var got context.Context
		warmup := w.of(warmupFunc(func(ctx context.Context) error { got = ctx; return nil }), termOver)
		_ = warmup.Warmup(t.Context())
		synctest.Wait()
		if got.Err() != nil {
			t.Fatal("the Warmup context ended when Warmup returned; a controller goes on using it")
		}
		endTerm()
		synctest.Wait() // the context ends from a goroutine of its own
		if got.Err() == nil {
			t.Fatal("the Warmup context outlived the term")
		}
	})
}
