package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// lockWatch is one watch of the lock. A goroutine of its own reads the
// watch and queues its events, so that the watch never waits for the
// elector (client-go's stock fake panics when a watcher falls behind);
// Run's goroutine takes them from the queue.
type lockWatch struct {
	gen     int
	w       watch.Interface
	cancel  context.CancelFunc // ends the watch's request
	started time.Time
	// skipBelow, when not zero, is the resourceVersion of the state read
	// or written after the watch was asked for: an event of an older
	// version is one the candidate has already seen surpassed (see
	// watcher.settle), and is dropped.
	skipBelow uint64

	mu     sync.Mutex
	queue  []watch.Event
	ended  bool
	ready  chan struct{} // holds one token while there is news
	exited chan struct{} // closed when the goroutine has exited
}

func startLockWatch(w watch.Interface, cancel context.CancelFunc, now time.Time) *lockWatch {
	lw := &lockWatch{w: w, cancel: cancel, started: now, ready: make(chan struct{}, 1), exited: make(chan struct{})}
	go func() {
		defer close(lw.exited)
		for ev := range w.ResultChan() {
			lw.mu.Lock()
			lw.queue = append(lw.queue, ev)
			lw.mu.Unlock()
			lw.signal()
		}
		lw.mu.Lock()
		lw.ended = true
		lw.mu.Unlock()
		lw.signal()
	}()
	return lw
}

func (lw *lockWatch) signal() {
	select {
	case lw.ready <- struct{}{}:
	default:
	}
}

// take returns the events queued since the last take, and whether the
// watch has ended after them.
func (lw *lockWatch) take() ([]watch.Event, bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	events := lw.queue
	lw.queue = nil
	return events, lw.ended
}

// stop ends the watch and waits for its goroutine.
func (lw *lockWatch) stop() {
	lw.w.Stop()
	if lw.cancel != nil {
		lw.cancel()
	}
	<-lw.exited
}

// watcher keeps the lock watched for Run's goroutine: it starts a watch,
// restarts it when it ends or breaks (with backoff), and gives up for good,
// saying so once, where the lock or the API server cannot be watched. Only
// Run's goroutine uses it.
type watcher struct {
	lock    rl.Watcher // nil: never watch
	clock   clock.WithDelayedExecution
	current *lockWatch
	// pending is the watch being opened, if any: at most one at a time.
	pending *pendingWatch
	// looks counts the reads and writes of the lock, so that a watch that
	// opens late can tell whether the candidate has seen newer states than
	// the one it starts from. Only Run's goroutine adds to it; a watch
	// being opened reads it as its request returns.
	looks    atomic.Int64
	failures int
	// early counts watches in a row that ended soon after they started,
	// without an error: the sign of a client whose timeout ends them.
	early   int
	retryAt time.Time
	// relist is set when the watch can no longer resume from the state
	// last read (it expired): the next look must read the lock first.
	relist bool
	// echoRV and echoRecord are the state our last renewal left the lock
	// in, and echoSeen whether the watch has delivered it since (see
	// echoed).
	echoRV     string
	echoRecord *rl.LeaderElectionRecord
	echoSeen   bool
	// started counts the watches started, so that each has a generation
	// of its own (see generation).
	started int
}

const (
	// minWatchBackoff and maxWatchBackoff bound the wait before a watch
	// that failed or ended early is started again.
	minWatchBackoff = 500 * time.Millisecond
	maxWatchBackoff = 30 * time.Second
	// healthyWatch is how long a watch must have lasted for its end to
	// count as the server's routine timeout rather than a failure.
	healthyWatch = 10 * time.Second
	// maxEarlyEnds is how many watches in a row may end early, without an
	// error, before the candidate gives up watching and polls.
	maxEarlyEnds = 5
	// maxWatchStart bounds how long a watch may take to open before it
	// is called off and, after backoff, asked for again: long enough for
	// a shared watch's first list of many locks under a burst, short
	// enough that a request lost on a dead connection is not waited for
	// for good. The candidate polls meanwhile.
	maxWatchStart = time.Minute
)

// pendingWatch is a watch being opened on a goroutine of its own, so that
// Run's goroutine goes on polling, or renewing, while the API server (or
// something on the way) is slow to answer. The watcher that started it
// waits for the goroutine when it stops.
type pendingWatch struct {
	// cancel ends the request, and the watch's stream once it is open.
	cancel context.CancelFunc
	// done is closed when the request has returned, with w or err.
	done chan struct{}
	w    watch.Interface
	err  error
	// looks is watcher.looks when the watch was asked for, and
	// looksAtOpen when its request returned.
	looks, looksAtOpen int64
	// fromNow: the lock had no resourceVersion to resume from (none read
	// yet, or a clientset that versions nothing, as client-go's stock
	// fake), so the watch starts from the state current when it opens.
	fromNow bool
	// abandoned: the watcher no longer wants it (it restarted or
	// stopped); its watch, if it opens, is stopped unread.
	abandoned bool
}

// newWatcher returns a watcher for lock, or one that never watches if the
// lock cannot be watched or watching is switched off.
func newWatcher(lock rl.Interface, off bool, clk clock.WithDelayedExecution) *watcher {
	w, ok := lock.(rl.Watcher)
	if off || !ok {
		return &watcher{clock: clk}
	}
	return &watcher{lock: w, clock: clk}
}

// watching reports whether a watch is running.
func (w *watcher) watching() bool { return w.current != nil }

// generation names the watch running now, 0 if none: the events a write
// made now brings are delivered by it alone, if by any.
func (w *watcher) generation() int {
	if w == nil || w.current == nil {
		return 0
	}
	return w.current.gen
}

// watchingSince reports whether a watch runs that started before t.
func (w *watcher) watchingSince(t time.Time) bool {
	return w.current != nil && w.current.started.Before(t)
}

// awaitEcho notes that our write left the lock at resourceVersion rv,
// holding record: the watch has not shown it back yet. A clientset that
// does not version objects (client-go's stock fake) shows it by the record,
// whose times differ at each renewal. Without a record (none written yet)
// there is nothing to wait for.
func (w *watcher) awaitEcho(rv string, record *rl.LeaderElectionRecord) {
	w.echoRV, w.echoRecord, w.echoSeen = rv, record, record == nil
}

// delivered notes that the watch delivered the lock at resourceVersion rv,
// holding record (nil if it held none).
func (w *watcher) delivered(rv string, record *rl.LeaderElectionRecord) {
	switch {
	case w.echoSeen || w.echoRecord == nil:
	case w.echoRV != "":
		w.echoSeen = rv == w.echoRV
	case record != nil:
		w.echoSeen = sameRecord(*record, *w.echoRecord)
	}
}

// echoed reports whether the watch has shown back the state our last
// renewal left. A watch that has not may have died without a word (a
// stream dropped on the way, an API server gone behind a load balancer)
// while our requests reach a live server: it would not show a steal
// either, so until it shows our write a leader renews at RetryPeriod, as
// one that polls does.
func (w *watcher) echoed() bool { return w.echoSeen }

// ready is the channel that has a token when the watch has news, or that is
// closed when a watch being opened has opened or failed; nil (never ready)
// with neither.
func (w *watcher) ready() <-chan struct{} {
	switch {
	case w.current != nil:
		return w.current.ready
	case w.pending != nil:
		return w.pending.done
	}
	return nil
}

// sawState notes that the lock was read or written.
func (w *watcher) sawState() {
	if w != nil {
		w.looks.Add(1)
	}
}

// ensure starts a watch if none runs or is being opened, the lock can be
// watched and the backoff allows. A lock that is a WatchStarter (every lock
// kind of package k8sresourcelock) has its watch opened on a goroutine of
// its own: the candidate polls, or renews, at RetryPeriod meanwhile, as one
// that cannot watch does, and never waits for a request that may hang (a
// proxy that accepts the connection and never answers). Another lock's Watch
// must be called from Run's goroutine: it may take at most limit, and is not
// tried when limit is not positive, since client-go retries a watch request
// that times out, and a leader must not be held past its renew deadline by a
// watch it merely wanted. It logs, once, when watching is impossible and the
// elector polls instead.
func (w *watcher) ensure(ctx context.Context, now time.Time, limit time.Duration) {
	w.settle(ctx, now)
	if w.lock == nil || w.current != nil || w.pending != nil || now.Before(w.retryAt) || w.relist {
		return
	}
	if starter, ok := w.lock.(rl.WatchStarter); ok {
		if open := starter.PrepareWatch(); open != nil {
			w.begin(ctx, open, versionOf(w.lock) == "")
			return
		}
	}
	if limit <= 0 {
		return
	}
	// The context outlives the call (it carries the watch's stream), so
	// the limit cancels it only if the call has not returned by then.
	watchCtx, cancel := context.WithCancel(ctx)
	timer := w.clock.AfterFunc(limit, cancel)
	wi, err := someWatch(w.lock.Watch(watchCtx))
	if !timer.Stop() {
		if err == nil {
			wi.Stop()
		}
		err = fmt.Errorf("starting a watch took longer than %v: %w", limit, context.DeadlineExceeded)
	}
	w.opened(ctx, now, wi, cancel, err, 0)
}

// begin opens a watch with open on a goroutine of its own, bounded by
// maxWatchStart and by ctx.
func (w *watcher) begin(ctx context.Context, open func(context.Context) (watch.Interface, error), fromNow bool) {
	startCtx, cancel := context.WithCancelCause(ctx)
	p := &pendingWatch{cancel: func() { cancel(context.Canceled) }, done: make(chan struct{}), looks: w.looks.Load(), fromNow: fromNow}
	tooLong := fmt.Errorf("starting a watch took longer than %v: %w", maxWatchStart, context.DeadlineExceeded)
	timer := w.clock.AfterFunc(maxWatchStart, func() { cancel(tooLong) })
	w.pending = p
	go func() {
		defer close(p.done)
		p.w, p.err = someWatch(open(startCtx))
		p.looksAtOpen = w.looks.Load()
		if !timer.Stop() {
			// Called off at its bound: an open watch would be one
			// whose stream is, or soon will be, cancelled. The
			// timer's function may not have run yet (its goroutine
			// runs late on a loaded machine), so the error is
			// tooLong whatever the context says now.
			if p.err == nil {
				p.w.Stop()
				p.w = nil
			}
			p.err = tooLong
		}
	}()
}

// errNoWatch is the error of a watch request answered with neither a watch
// nor an error (a lock of the caller's may): the candidate polls, as after
// any failed request, and never reads a nil watch.
var errNoWatch = errors.New("the lock's watch request returned neither a watch nor an error")

// someWatch passes on a watch request's answer, making a nil watch (typed
// nil included) without an error errNoWatch.
func someWatch(wi watch.Interface, err error) (watch.Interface, error) {
	if err == nil && nilness.Is(wi) {
		return nil, errNoWatch
	}
	return wi, err
}

// settle takes the outcome of the watch being opened, if its request has
// returned. A watch that resumes from a state older than one the candidate
// has read or written since (it polled, or renewed, while the watch opened)
// would replay the states in between as news: another holder come back, a
// lease restarted, a write over an old version. Where the lock's
// resourceVersions order its states, events older than the last one seen
// are dropped. A watch that starts from the state current when it opens
// (the lock had no version: none read yet, or client-go's stock fake
// versions nothing) is stale if a read or write ended after it opened;
// one that ended while it opened is newer than the state the watch starts
// from where that is what a shared watch last heard, so it too drops the
// states older than the one last seen, where versions order them.
// Otherwise (a read after it opened, or a MultiLock, whose two versions do
// not order its events) the watch is stopped and another asked for at
// once, from the state last seen.
func (w *watcher) settle(ctx context.Context, now time.Time) {
	p := w.pending
	if p == nil {
		return
	}
	select {
	case <-p.done:
	default:
		return
	}
	w.pending = nil
	if p.abandoned {
		if p.err == nil {
			p.w.Stop()
		}
		p.cancel()
		return
	}
	var skipBelow uint64
	looks := w.looks.Load()
	if p.err == nil && p.looks != looks {
		rv, ordered := orderedVersion(w.lock)
		switch {
		case p.fromNow && p.looksAtOpen != looks, !p.fromNow && !ordered:
			klog.FromContext(ctx).V(4).Info("Watch of the lock opened after newer states were read; asking for another from the latest")
			p.w.Stop()
			p.cancel()
			return
		case ordered:
			// Even a watch from the state current when it opened may
			// start older than a read made while it opened: a shared
			// watch starts from what it last heard, which can lag.
			skipBelow = rv
		}
	}
	w.opened(ctx, now, p.w, p.cancel, p.err, skipBelow)
}

// opened takes the outcome of a watch request: the watch runs from now on,
// or the error is logged and the watch asked for again after backoff, or
// never if it cannot succeed.
func (w *watcher) opened(ctx context.Context, now time.Time, wi watch.Interface, cancel context.CancelFunc, err error, skipBelow uint64) {
	if err == nil {
		w.current = startLockWatch(wi, cancel, now)
		w.started++
		w.current.gen = w.started
		w.current.skipBelow = skipBelow
		return
	}
	cancel()
	logger := klog.FromContext(ctx)
	if unwatchable(err) {
		logger.Info("Cannot watch the lock; polling it every RetryPeriod instead", "err", err)
		w.lock = nil
		return
	}
	w.failed(now)
	if w.failures == 1 {
		logger.Info("Could not watch the lock; polling it every RetryPeriod until a watch succeeds", "err", err)
	} else {
		logger.V(4).Info("Could not watch the lock", "err", err, "failures", w.failures)
	}
}

// orderedVersion returns the lock's resourceVersion as a number, and
// whether it is one: the versions an API server gives one object grow with
// each change (the shared watch relies on it too). A MultiLock's joins two,
// and client-go's stock fake gives none.
func orderedVersion(lock rl.Watcher) (uint64, bool) {
	n, err := strconv.ParseUint(versionOf(lock), 10, 64)
	return n, err == nil && n > 0
}

// versionOf is the lock's resourceVersion, "" if it has none.
func versionOf(lock rl.Watcher) string {
	if v, ok := lock.(rl.Versioned); ok {
		return v.ResourceVersion()
	}
	return ""
}

// stale reports whether ev is about a state older than below (0: none is).
func stale(ev watch.Event, below uint64) bool {
	if below == 0 {
		return false
	}
	m, err := meta.Accessor(ev.Object)
	if err != nil {
		return false
	}
	n, err := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
	return err == nil && n < below
}

// skipUpTo drops, from the running watch, every event of the state lock
// was last read in or an older one: the watch opened before that look, and
// may have queued them already. Delivered after a write of ours they would
// take the lock back to a state the write has surpassed.
func (w *watcher) skipUpTo(lock rl.Interface) {
	wl, ok := lock.(rl.Watcher)
	if w.current == nil || !ok {
		return
	}
	if rv, ordered := orderedVersion(wl); ordered {
		// At the largest version nothing is newer; its own event
		// again is harmless.
		w.current.skipBelow = max(w.current.skipBelow, rv+min(1, math.MaxUint64-rv))
	}
}

// failed notes a failed or short-lived watch and backs off.
func (w *watcher) failed(now time.Time) {
	w.failures++
	backoff := min(minWatchBackoff<<min(w.failures-1, 16), maxWatchBackoff)
	w.retryAt = now.Add(backoff)
}

// take returns the events the watch queued. If the watch has ended it is
// stopped, and started again later by ensure.
func (w *watcher) take(ctx context.Context, now time.Time) []watch.Event {
	w.settle(ctx, now)
	if w.current == nil {
		return nil
	}
	events, ended := w.current.take()
	if skip := w.current.skipBelow; skip != 0 {
		events = slices.DeleteFunc(events, func(ev watch.Event) bool { return stale(ev, skip) })
	}
	broke := false
	for i, ev := range events {
		if ev.Type != watch.Error {
			continue
		}
		// The watch cannot go on: start again, from a fresh read if the
		// server no longer has the state we would resume from.
		err := apierrors.FromObject(ev.Object)
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			w.relist = true
		}
		klog.FromContext(ctx).V(4).Info("Watch of the lock broke; starting another", "err", err)
		events, ended, broke = events[:i], true, true
		break
	}
	if ended {
		lived := now.Sub(w.current.started)
		w.current.stop()
		w.current = nil
		switch {
		case lived >= healthyWatch:
			w.failures, w.early, w.retryAt = 0, 0, time.Time{}
		case broke:
			w.failed(now)
		default:
			w.early++
			w.failed(now)
			if w.early >= maxEarlyEnds {
				klog.FromContext(ctx).Info("Watches of the lock keep ending as soon as they start (a client with a Timeout ends them); polling it every RetryPeriod instead",
					"watches", w.early, "lastLasted", lived)
				w.lock = nil
			}
		}
	}
	return events
}

// restart ends the current watch, if any, so that the next ensure starts
// one from the state last read or written. A watch being opened is called
// off without waiting for its request to return (a leader must not wait for
// it); no other is asked for until it has.
func (w *watcher) restart() {
	if w.current != nil {
		w.current.stop()
		w.current = nil
	}
	if w.pending != nil && !w.pending.abandoned {
		w.pending.abandoned = true
		w.pending.cancel()
	}
}

// stop ends the watch for good, and waits for the request of one being
// opened to return.
func (w *watcher) stop() {
	w.restart()
	if p := w.pending; p != nil {
		<-p.done
		w.settle(context.Background(), time.Time{})
	}
}

// unwatchable reports errors that will not go away by retrying: the lock or
// the API server does not support watching it, or RBAC forbids it.
func unwatchable(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err)
}

// watchStartLimit bounds how long starting the watch of a lock that is not
// a WatchStarter may take, on Run's goroutine: half a RetryPeriod, so that a leader's next renewal is never late for it, and
// for a leader never past until, its renew deadline (zero: no deadline).
func (le *LeaderElector) watchStartLimit(until time.Time) time.Duration {
	limit := le.config.RetryPeriod / 2
	if !until.IsZero() {
		limit = min(limit, until.Sub(le.clock.Now()))
	}
	return limit
}
