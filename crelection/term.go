package crelection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// errTermOver is what Add returns once the term has ended: the runnable
// could never start, since a controller cannot be started a second time and
// so a manager leads at most once.
var errTermOver = errors.New("crelection: this manager's term as leader is over; it no longer starts runnables that need leader election")

// phase is where a term stands. It only moves forward.
type phase int

const (
	waiting phase = iota // not led yet
	leading
	over
)

// term holds the runnables that need leader election and runs them during
// the one term this manager leads: from the moment the election makes it
// leader until the election takes leadership away, or one of them fails.
type term struct {
	mu      sync.Mutex
	phase   phase
	kept    []manager.Runnable
	ctx     context.Context // the term's, once leading
	end     context.CancelFunc
	failure error
	// abort ends the election's Run when a runnable fails, so that the
	// lock is released (or left to expire) rather than held by a leader
	// that no longer works.
	abort func()

	running  sync.WaitGroup
	elected  chan struct{}
	finished chan struct{} // closed once every runnable started has returned
	// ended is done once the term is over, or will never come.
	ended    context.Context
	markOver context.CancelFunc
}

func newTerm() *term {
	ended, markOver := context.WithCancel(context.Background())
	return &term{elected: make(chan struct{}), finished: make(chan struct{}), ended: ended, markOver: markOver}
}

// add keeps r until the term starts, or starts it at once if the term is
// running.
func (t *term) add(r manager.Runnable) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.phase {
	case over:
		return errTermOver
	case leading:
		if t.ctx.Err() != nil {
			// The election has ended the term; lead is about to see it.
			return errTermOver
		}
		t.startLocked(r)
		return nil
	}
	t.kept = append(t.kept, r)
	return nil
}

// onAbort sets what a failing runnable calls to end the election.
func (t *term) onAbort(abort func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.abort = abort
}

// lead is the election's OnStartedLeading. It starts every runnable kept so
// far, and returns only once the term is over (ctx is done, or a runnable
// failed) and every runnable has returned: the elector hands the lock over,
// or releases it, only after that, so no other manager's runnables start
// while ours still run.
func (t *term) lead(ctx context.Context) {
	logger := klog.FromContext(ctx)
	t.mu.Lock()
	if t.phase != waiting {
		// A manager leads once: its controllers cannot start again.
		t.mu.Unlock()
		logger.Error(nil, "Elected a second time; not starting runnables again")
		return
	}
	t.ctx, t.end = context.WithCancel(ctx)
	t.phase = leading
	logger.Info("Leading: starting the runnables that need leader election", "count", len(t.kept))
	for _, r := range t.kept {
		t.startLocked(r)
	}
	t.mu.Unlock()
	close(t.elected)

	<-t.ctx.Done()
	t.mu.Lock()
	t.phase = over
	t.mu.Unlock()
	t.end()
	// Runnables that warmed up may run on their Warmup's context too.
	t.markOver()
	logger.Info("Term over: waiting for the runnables that need leader election to return")
	t.running.Wait()
	close(t.finished)
	logger.Info("Every runnable that needs leader election has returned")
}

// startLocked runs r in the term; t.mu is held.
func (t *term) startLocked(r manager.Runnable) {
	t.running.Add(1)
	go func() {
		defer t.running.Done()
		if err := r.Start(t.ctx); err != nil {
			t.fail(r, err)
		}
	}()
}

// fail ends the term for a runnable that returned err. An error returned
// once the term was ending is only logged: the term ended for another
// reason, which is what Start reports.
func (t *term) fail(r manager.Runnable, err error) {
	t.mu.Lock()
	first := t.failure == nil && t.ctx.Err() == nil
	if first {
		t.failure = err
	}
	abort := t.abort
	t.mu.Unlock()
	logger := klog.FromContext(t.ctx)
	if !first {
		logger.Error(err, "Runnable failed while the term was ending", "runnable", fmt.Sprintf("%T", r))
		return
	}
	logger.Error(err, "Runnable failed: ending the term", "runnable", fmt.Sprintf("%T", r))
	t.end()
	if abort != nil {
		abort()
	}
}

// err returns the error of the first runnable that failed during the term.
func (t *term) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failure
}

// led reports whether the term has started.
func (t *term) led() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctx != nil
}

// close ends a term that never started, so that later runnables are
// refused rather than kept for a term that will not come.
func (t *term) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase == waiting {
		t.phase = over
		t.markOver()
	}
}

// awaitRunnables waits, at most timeout on clk, for the runnables of a term
// that has ended to return, and reports whether they did. A term that never
// started has nothing to wait for; a negative timeout means not to wait.
func (t *term) awaitRunnables(clk clock.Clock, timeout time.Duration) bool {
	if !t.led() {
		return true
	}
	select {
	case <-t.finished:
		return true
	default:
	}
	if timeout < 0 {
		return false
	}
	timer := clk.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.finished:
		return true
	case <-timer.C():
		return false
	}
}
