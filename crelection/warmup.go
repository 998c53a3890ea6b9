package crelection

import (
	"context"
	"errors"
	"sync"
)

// warmer is a runnable that can prepare before it leads: controller-runtime
// calls Warmup on every replica as the manager starts (a controller with
// warmup enabled starts its sources then, and waits for them to sync), and
// Start only on the leader.
type warmer interface {
	Warmup(context.Context) error
}

// warmups counts the Warmup calls of kept runnables that have not returned,
// so that this replica asks a lower key's leader for the lock only once it
// is warm: the old leader keeps working meanwhile, and the handoff leaves
// the shortest gap.
type warmups struct {
	mu      sync.Mutex
	pending int
	failed  error
	changed chan struct{} // closed, and replaced, whenever one returns
}

func newWarmups() *warmups { return &warmups{changed: make(chan struct{})} }

// of returns the runnable that carries r's Warmup to the inner manager,
// counted as pending until it returns, with a context that ends at the
// latest when until does.
func (w *warmups) of(r warmer, until context.Context) warmupOnly {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending++
	return warmupOnly{w: r, done: w.done, until: until}
}

// done notes that one Warmup returned err.
func (w *warmups) done(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending--
	if err != nil && w.failed == nil {
		w.failed = err
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// wait returns once every Warmup counted so far has returned, or ctx is
// done. A Warmup that failed is an error: the manager stops on it anyway.
func (w *warmups) wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		pending, failed, changed := w.pending, w.failed, w.changed
		w.mu.Unlock()
		switch {
		case failed != nil:
			return errors.Join(errors.New("crelection: a runnable's warmup failed"), failed)
		case pending == 0:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// waitForReady is the election's WaitForReady: our warmups first, then the
// caller's own, if set.
func (w *warmups) waitForReady(theirs func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := w.wait(ctx); err != nil {
			return err
		}
		if theirs != nil {
			return theirs(ctx)
		}
		return nil
	}
}

// warmupOnly carries a kept runnable's Warmup to the inner manager, which
// calls Warmup as it would for the runnable itself, and starts nothing
// else: its Start returns at once and it needs no leader election.
type warmupOnly struct {
	w     warmer
	done  func(error)
	until context.Context
}

// Warmup calls the kept runnable's Warmup with a context that also ends
// when the term does. A runnable may go on using its Warmup's context once
// started: a controller with warmup enabled ties its work queue to it, so
// that its workers stop only when that context ends, not when Start's does.
// Left to the manager's context, such a controller would go on reconciling
// after handing the lock over.
//
// Once the term is over the Warmup is not called, and an error it returns
// because the term ended is not a failure: the manager is winding down, and
// Start reports the end of the term (ErrLeadershipLost), not that error.
func (w warmupOnly) Warmup(ctx context.Context) error {
	if w.until.Err() != nil {
		w.done(nil)
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(w.until, cancel)
	err := w.w.Warmup(ctx)
	if w.until.Err() != nil {
		err = nil
	}
	w.done(err)
	return err
}

// Start does nothing: the kept runnable starts when this manager leads.
func (w warmupOnly) Start(context.Context) error { return nil }

// NeedLeaderElection reports false, so that the manager runs Warmup on every
// replica.
func (w warmupOnly) NeedLeaderElection() bool { return false }
