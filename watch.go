package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

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
	lock     rl.Watcher // nil: never watch
	clock    clock.WithDelayedExecution
	current  *lockWatch
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
)

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

// ready is the channel that has a token when the watch has news; nil (never
// ready) without a watch.
func (w *watcher) ready() <-chan struct{} {
	if w.current == nil {
		return nil
	}
	return w.current.ready
}

// ensure starts a watch if none runs, the lock can be watched and the
// backoff allows. Starting one may take at most limit, and is not tried
// when limit is not positive: client-go retries a watch request that times
// out, and a leader must not be held past its renew deadline by a watch it
// merely wanted. It logs, once, when watching is impossible and the elector
// polls instead.
func (w *watcher) ensure(ctx context.Context, now time.Time, limit time.Duration) {
	if w.lock == nil || w.current != nil || now.Before(w.retryAt) || w.relist || limit <= 0 {
		return
	}
	// The context outlives the call (it carries the watch's stream), so
	// the limit cancels it only if the call has not returned by then.
	watchCtx, cancel := context.WithCancel(ctx)
	timer := w.clock.AfterFunc(limit, cancel)
	wi, err := w.lock.Watch(watchCtx)
	if !timer.Stop() {
		if err == nil {
			wi.Stop()
		}
		err = fmt.Errorf("starting a watch took longer than %v: %w", limit, context.DeadlineExceeded)
	}
	if err == nil {
		w.current = startLockWatch(wi, cancel, now)
		w.started++
		w.current.gen = w.started
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

// failed notes a failed or short-lived watch and backs off.
func (w *watcher) failed(now time.Time) {
	w.failures++
	backoff := min(minWatchBackoff<<min(w.failures-1, 16), maxWatchBackoff)
	w.retryAt = now.Add(backoff)
}

// take returns the events the watch queued. If the watch has ended it is
// stopped, and started again later by ensure.
func (w *watcher) take(ctx context.Context, now time.Time) []watch.Event {
	if w.current == nil {
		return nil
	}
	events, ended := w.current.take()
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
// one from the state last read or written.
func (w *watcher) restart() {
	if w.current != nil {
		w.current.stop()
		w.current = nil
	}
}

// stop ends the watch for good.
func (w *watcher) stop() {
	w.restart()
}

// unwatchable reports errors that will not go away by retrying: the lock or
// the API server does not support watching it, or RBAC forbids it.
func unwatchable(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err)
}

// watchStartLimit bounds how long starting a watch may take: half a
// RetryPeriod, so that a leader's next renewal is never late for it, and
// for a leader never past until, its renew deadline (zero: no deadline).
func (le *LeaderElector) watchStartLimit(until time.Time) time.Duration {
	limit := le.config.RetryPeriod / 2
	if !until.IsZero() {
		limit = min(limit, until.Sub(le.clock.Now()))
	}
	return limit
}
