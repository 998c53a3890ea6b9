package k8sleaderelection

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// handoffAsk is a handoff this candidate asked a holder for: the holder and
// its term, and until when the holder may take to answer.
type handoffAsk struct {
	to       string
	term     int
	deadline time.Time
}

// pending reports whether we have asked anyone.
func (a handoffAsk) pending() bool { return a.to != "" }

// of reports whether a was asked of the holder of record, in its term.
func (a handoffAsk) of(record *rl.LeaderElectionRecord) bool {
	return a.to != "" && a.to == record.HolderIdentity && a.term == record.LeaderTransitions
}

// offer is the handoff offer our writes carry, unless handoffs are off: it
// tells a candidate that outranks us how long we may take to hand over once
// asked. That is our time to notice the request (one RetryPeriod without a
// watch), to let OnStartedLeading return (StopTimeout), and to write the
// lock over (RenewDeadline).
func (le *LeaderElector) offer() rl.HandoffOffer {
	if le.config.DisableHandoff || le.config.Coordinated {
		return rl.HandoffOffer{}
	}
	within := addDurations(le.config.RetryPeriod, max(le.stopTimeout(), 0), le.config.RenewDeadline)
	return rl.HandoffOffer{Holder: le.config.Lock.Identity(), WithinSeconds: wholeSeconds(within)}
}

// handoffState says, for a candidate whose key outranks the holder's,
// whether a request of ours is pending and may still be answered (asked),
// and whether asking is possible at all (mayAsk): the holder offers
// handoffs, we use them, and we have not already waited one out from this
// holder in this term.
func (le *LeaderElector) handoffState(now time.Time) (asked, mayAsk bool) {
	record := &le.seen.record
	request := record.HandoffRequest
	ours := request.Pending(record) && request.HolderIdentity == le.config.Lock.Identity()
	thisTerm := le.asked.of(record)
	inTime := now.Before(le.asked.deadline)
	asked = thisTerm && ours && inTime
	mayAsk = !le.config.DisableHandoff && record.Handoff.Stands(record) && !(thisTerm && !inTime)
	return asked, mayAsk
}

// handoffAskedOfUs reports whether the lock, which names us, carries a
// request from another candidate that we have not begun to honour.
func (le *LeaderElector) handoffAskedOfUs() bool {
	record := &le.seen.record
	request := record.HandoffRequest
	return !le.config.DisableHandoff && !le.stopping && request.Pending(record) &&
		request.HolderIdentity != le.config.Lock.Identity()
}

// honouring is the request a leader that winds down for a handoff carries
// in its writes, so that requesters see it is being answered. Requesters
// replace a pending request only with one whose key outranks it, so the
// request last seen pending in the lock is the highest: a leader that has
// seen the lock since its own last write honours that one, not the one it
// first saw, and none if the requester withdrew it. Writing the first over a
// later one would hand the lock to the lower requester, and the higher one
// would have to ask again: a term more than needed.
func (le *LeaderElector) honouring() rl.HandoffRequest {
	if le.honoring == (rl.HandoffRequest{}) || le.seen.written || !le.seen.names(le.config.Lock.Identity()) {
		return le.honoring
	}
	record := &le.seen.record
	request := record.HandoffRequest
	if !request.Pending(record) || request.HolderIdentity == le.config.Lock.Identity() {
		request = rl.HandoffRequest{}
	}
	le.honoring = request
	return request
}

// requestHandoff writes a request for the lock into it, keeping the holder's
// record as we saw it; the write fails if the lock changed since.
func (le *LeaderElector) requestHandoff(ctx context.Context) error {
	lock := le.config.Lock
	current := le.seen.record
	request := rl.HandoffRequest{
		To:                   current.HolderIdentity,
		Term:                 current.LeaderTransitions,
		HolderIdentity:       lock.Identity(),
		HolderKey:            lock.Key(),
		LeaseDurationSeconds: le.leaseSeconds,
		OffersWithinSeconds:  le.offer().WithinSeconds,
	}
	asking := current
	asking.HandoffRequest = request
	start := le.clock.Now()
	if err := le.write(ctx, lock.Update, asking); err != nil {
		return err
	}
	if !le.asked.of(&current) {
		// The holder's time runs from our first request of this term.
		within := seconds(current.Handoff.WithinSeconds)
		le.asked = handoffAsk{to: current.HolderIdentity, term: current.LeaderTransitions, deadline: start.Add(within)}
	}
	klog.FromContext(ctx).Info("Asked the leader to hand the lease over: our key outranks its key",
		"holder", current.HolderIdentity, "holderKey", current.HolderKey, "key", lock.Key(), "answerBy", le.asked.deadline)
	return nil
}

// withdrawRequest takes our pending handoff request out of the lock when we
// stop campaigning, so that the holder does not hand the lock to a candidate
// that will not lead: nobody would lead until the lease we asked for ran
// out. Run's context is done by then, so it has RenewDeadline of its own. It
// writes over the lock as last seen, conditionally, or reads it first; on a
// conflict it reads again. It leaves the lock alone once it carries no
// request of ours; if it was handed to us meanwhile, it stays ours until our
// lease runs out.
func (le *LeaderElector) withdrawRequest(ctx context.Context) {
	if !le.asked.pending() {
		return
	}
	logger := klog.FromContext(ctx)
	ctx, cancel := le.withTimeout(context.WithoutCancel(ctx), le.config.RenewDeadline)
	defer cancel()
	lock := le.config.Lock
	read := !le.seen.versioned()
	for ctx.Err() == nil {
		if read {
			if _, err := le.read(ctx); err != nil {
				logger.Error(err, "Could not read the lock to withdraw our handoff request")
				return
			}
		}
		record := le.seen.record
		request := record.HandoffRequest
		if le.seen.absent || le.seen.unreadable || !request.Pending(&record) || request.HolderIdentity != lock.Identity() {
			return
		}
		record.HandoffRequest = rl.HandoffRequest{}
		err := le.write(ctx, lock.Update, record)
		if err == nil {
			logger.Info("Withdrew our handoff request: we stopped campaigning", "holder", record.HolderIdentity)
			le.asked = handoffAsk{}
			return
		}
		if !apierrors.IsConflict(err) {
			logger.Error(err, "Could not withdraw our handoff request; the holder may hand the lock to us all the same")
			return
		}
		read = true
	}
}

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
