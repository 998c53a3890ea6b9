package k8sleaderelection

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// readiness runs WaitForReady, once it is first needed, in a goroutine of
// its own, and remembers when it has succeeded.
type readiness struct {
	wait    func(context.Context) error
	ctx     context.Context
	cancel  context.CancelFunc
	retry   time.Duration
	clock   clock.Clock
	mu      sync.Mutex
	started bool
	ready   bool
	signal  chan struct{} // holds a token when readiness changed
	exited  chan struct{}
}

func newReadiness(ctx context.Context, wait func(context.Context) error, retry time.Duration, clk clock.Clock) *readiness {
	ctx, cancel := context.WithCancel(ctx)
	return &readiness{wait: wait, ctx: ctx, cancel: cancel, retry: retry, clock: clk,
		ready: wait == nil, signal: make(chan struct{}, 1), exited: make(chan struct{})}
}

// isReady reports whether WaitForReady has returned nil, starting it the
// first time it is asked.
func (r *readiness) isReady() bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready || r.started {
		return r.ready
	}
	r.started = true
	go r.run()
	return false
}

func (r *readiness) run() {
	defer close(r.exited)
	logger := klog.FromContext(r.ctx)
	for r.ctx.Err() == nil {
		err := r.wait(r.ctx)
		if err == nil {
			r.mu.Lock()
			r.ready = true
			r.mu.Unlock()
			select {
			case r.signal <- struct{}{}:
			default:
			}
			return
		}
		if r.ctx.Err() == nil {
			logger.Error(err, "WaitForReady failed; not preempting yet", "retryIn", r.retry)
			select {
			case <-r.ctx.Done():
			case <-r.clock.After(r.retry):
			}
		}
	}
}

// changed has a token when readiness has changed; nil if it never will.
func (r *readiness) changed() <-chan struct{} {
	if r == nil || r.wait == nil {
		return nil
	}
	return r.signal
}

// stop cancels WaitForReady and waits for it to return.
func (r *readiness) stop() {
	if r == nil {
		return
	}
	r.cancel()
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if started {
		<-r.exited
	}
}
