package crelection

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// probe is a runnable that shows a test what is done to it.
type probe struct {
	name    string
	events  *timeline
	started chan struct{} // closed when Start is first called
	// hold, if set, keeps Start from returning after its context ends
	// until it is closed: work that takes its time to stop.
	hold chan struct{}
	// takes, if set, is how long Start takes to return once its context
	// ends: work that winds down (virtual time, in a synctest bubble).
	takes time.Duration
	// fail makes Start return the error sent on it: at once, or once it
	// has stopped.
	fail     chan error
	returned chan struct{}

	starts atomic.Int32
	mu     sync.Mutex
	ctx    context.Context
}

func newProbe(name string, events *timeline) *probe {
	return &probe{name: name, events: events, started: make(chan struct{}), fail: make(chan error, 1), returned: make(chan struct{})}
}

// Start records the call and blocks as the probe is set to.
func (p *probe) Start(ctx context.Context) error {
	if p.starts.Add(1) > 1 {
		return errors.New(p.name + " started twice")
	}
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	p.events.add(p.name + " started")
	close(p.started)
	var err error
	select {
	case <-ctx.Done():
		if p.hold != nil {
			<-p.hold
		}
		time.Sleep(p.takes)
		// An error queued while stopping is what stopping returned.
		select {
		case err = <-p.fail:
		default:
		}
	case err = <-p.fail:
	}
	p.events.add(p.name + " returned")
	close(p.returned)
	return err
}

// context returns the context Start was called with, or nil.
func (p *probe) context() context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ctx
}

// isStarted reports whether Start has been called.
func (p *probe) isStarted() bool { return p.starts.Load() > 0 }

// everywhere is a probe that needs no leader election.
type everywhere struct{ *probe }

func (everywhere) NeedLeaderElection() bool { return false }

// warming is a probe that needs leader election and has a Warmup.
type warming struct {
	*probe
	warmed chan struct{} // closed when Warmup has been called
	// slow, if set, keeps Warmup from returning until it is closed.
	slow chan struct{}
}

func (w warming) NeedLeaderElection() bool { return true }

func (w warming) Warmup(ctx context.Context) error {
	close(w.warmed)
	if w.slow != nil {
		select {
		case <-w.slow:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.events.add(w.name + " warmed up")
	return nil
}

// timeline is the order in which things happened, across runnables and
// electors.
type timeline struct {
	mu     sync.Mutex
	events []string
}

func (tl *timeline) add(event string) {
	if tl == nil {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, event)
}

// index returns the position of event, or -1.
func (tl *timeline) index(event string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i, e := range tl.events {
		if e == event {
			return i
		}
	}
	return -1
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	s := ""
	for i, e := range tl.events {
		if i > 0 {
			s += ", "
		}
		s += e
	}
	return s
}

// warmBound behaves as a controller with warmup enabled does: it works on
// its Warmup's context, and its Start returns only once that has ended,
// whatever becomes of Start's own.
type warmBound struct {
	*probe
	warmCtx chan context.Context // Warmup's, once called
}

func newWarmBound(name string, events *timeline) warmBound {
	return warmBound{probe: newProbe(name, events), warmCtx: make(chan context.Context, 1)}
}

func (w warmBound) NeedLeaderElection() bool { return true }

func (w warmBound) Warmup(ctx context.Context) error {
	w.warmCtx <- ctx
	return nil
}

func (w warmBound) Start(ctx context.Context) error {
	work := <-w.warmCtx
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	w.events.add(w.name + " started")
	close(w.started)
	<-work.Done()
	w.events.add(w.name + " returned")
	close(w.returned)
	return nil
}

// syncing is a cache that has not synced until synced is closed: the
// manager starts its other runnables, the election among them, only once
// its caches have synced.
type syncing struct {
	cache.Cache               // nil: the manager only asks whether it has synced
	asked       chan struct{} // closed when the manager first asks
	synced      chan struct{}
	once        sync.Once
}

func (s *syncing) GetCache() cache.Cache { return s }

func (s *syncing) WaitForCacheSync(ctx context.Context) bool {
	s.once.Do(func() { close(s.asked) })
	select {
	case <-s.synced:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *syncing) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
