package k8sleaderelection

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// ending says why a leader stopped holding the lock.
type ending struct {
	why string
	// lost: the lock is someone else's, or we could not renew it in time;
	// there is nothing left to hand over or release.
	lost bool
	// cancelled: the context we held it for is done.
	cancelled bool
	// handOver: a candidate that outranks us asked for the lock.
	handOver bool
	// until: the channel hold was told to stop at was closed.
	until bool
	// stolen: another candidate took the lock while our lease still ran,
	// which only one whose key outranks ours may do (see steppedDown).
	stolen bool
}

// lead is one term of leadership, from the moment we hold the lock. It runs
// OnStartedLeading, renews the lock until the term ends, then stops the work
// and, depending on why the term ended, hands the lock over, releases it, or
// just lets it go. stopped runs OnStoppedLeading (once).
func (le *LeaderElector) lead(ctx context.Context, stopped func()) {
	logger := klog.FromContext(ctx)
	term, _ := le.currentTerm()
	le.termUID = term.UID
	workCtx, stopWork := context.WithCancel(le.withTerm(ctx))
	defer stopWork()
	workDone := make(chan struct{})
	le.lastWork = workDone
	le.cutAtDeadline(logger, stopWork)
	go func() {
		defer close(workDone)
		le.config.Callbacks.OnStartedLeading(workCtx)
	}()

	end := le.hold(ctx, nil)
	le.stopLeading()
	if end.handOver || end.stolen {
		le.metrics.preempted(le.config.Name, end.handOver)
	}
	stopWork()
	logger.Info("Stopped leading", "reason", end.why)
	le.config.Lock.RecordEvent("stopped leading")

	// Whatever happens next must not depend on Run's context, which may be
	// done: each step below is bounded on its own.
	rest := context.WithoutCancel(ctx)
	switch {
	case end.handOver:
		if le.finishWork(rest, workDone, "hand the lock over") {
			stopped()
			le.handOverBy(rest, le.renewalTime().Add(le.config.RenewDeadline))
		}
	case le.config.ReleaseOnCancel && end.cancelled:
		// Told to stop: we keep the lock, renewing it, until our work
		// has stopped, and only then release it.
		if le.finishWork(rest, workDone, "release the lock") {
			le.release(logger)
		}
	case le.config.ReleaseOnCancel && (le.seen.names(le.config.Lock.Identity()) || !le.seen.known):
		// Our renewals failed until RenewDeadline, and the lock may
		// still name us. We cannot renew it, but released now it would
		// go to a successor while our work still winds down: release it
		// only once the work has returned.
		if le.awaitWork(logger, workDone) {
			le.release(logger)
		}
	}
	le.honoring = rl.HandoffRequest{}
	le.reportLeader()
	le.watch.stop()
}

// finishWork waits, at most StopTimeout, for OnStartedLeading to return,
// renewing the lock meanwhile so that no one takes it while our work still
// runs. It reports whether we may now give the lock up on purpose (to do
// what says): the lock is still ours and the work has returned. If the work
// has not returned in time, we keep the lock no longer but do not give it
// away either: it expires, or a requester takes it when its wait runs out.
func (le *LeaderElector) finishWork(ctx context.Context, workDone <-chan struct{}, what string) bool {
	timeout := le.stopTimeout()
	if timeout < 0 {
		return true
	}
	logger := klog.FromContext(ctx)
	waitCtx, cancel := le.withTimeout(ctx, timeout)
	defer cancel()
	le.stopping = true
	defer func() { le.stopping = false }()
	end := le.hold(waitCtx, workDone)
	switch {
	case end.until:
		return true
	case end.lost:
		logger.Info("Lost the lock while waiting for OnStartedLeading to return", "reason", end.why)
	default:
		logger.Error(nil, "OnStartedLeading did not return within StopTimeout after its context was cancelled; leaving the lock to expire instead of giving it up while our work may still run",
			"stopTimeout", timeout, "wanted", what)
	}
	return false
}

// awaitWork waits, at most StopTimeout, for OnStartedLeading to return,
// without renewing the lock, and reports whether it did.
func (le *LeaderElector) awaitWork(logger klog.Logger, workDone <-chan struct{}) bool {
	timeout := le.stopTimeout()
	if timeout < 0 {
		return true
	}
	timer := le.clock.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-workDone:
		return true
	case <-timer.C():
		logger.Error(nil, "OnStartedLeading did not return within StopTimeout after we lost the lock; not releasing it, so that it expires instead", "stopTimeout", timeout)
		return false
	}
}

// stopTimeout is StopTimeout, or RenewDeadline when it is zero.
func (le *LeaderElector) stopTimeout() time.Duration {
	if le.config.StopTimeout == 0 {
		return le.config.RenewDeadline
	}
	return le.config.StopTimeout
}

// hold keeps the lock: every RetryPeriod it writes the lock again. It
// returns when ctx is done, when until is closed, when no renewal has
// succeeded for RenewDeadline, as soon as the watch or a renewal shows the
// lock in any state but ours, or when a candidate asks for the lock.
func (le *LeaderElector) hold(ctx context.Context, until <-chan struct{}) ending {
	logger := klog.FromContext(ctx)
	lastRenewal := le.renewalTime()
	next := le.clock.Now().Add(le.config.RetryPeriod)
	for {
		deadline := lastRenewal.Add(le.config.RenewDeadline)
		le.watch.ensure(ctx, le.clock.Now(), le.watchStartLimit(deadline))
		wake := next
		if deadline.Before(wake) {
			wake = deadline
		}
		switch le.waitFor(ctx, wake.Sub(le.clock.Now()), until) {
		case wokeByContext:
			return ending{why: "context done", cancelled: true}
		case wokeByOther:
			return ending{why: "done waiting", until: true}
		case wokeByWatch:
			foreign := le.applyWatch(ctx)
			le.reportLeader()
			switch v := le.judge(ctx, true); {
			case v == verdictStepDown:
				return le.steppedDown(logger)
			case foreign:
				return ending{why: "the lock changed hands since our last write", lost: true}
			case v == verdictHandOver:
				return le.askedToHandOver(logger)
			}
			continue
		}
		start := le.clock.Now()
		if !start.Before(deadline) {
			return ending{why: fmt.Sprintf("no successful renewal for renewDeadline (%v)", le.config.RenewDeadline), lost: true}
		}
		attemptCtx, cancel := le.withTimeout(ctx, deadline.Sub(start))
		v, err := le.tryAcquireOrRenew(attemptCtx, true)
		cancel()
		if v == verdictRenew || err != nil {
			le.metrics.renewalAttempted(le.config.Name, le.clock.Since(start), err)
		}
		le.reportLeader()
		next = le.clock.Now().Add(le.config.RetryPeriod)
		switch {
		case v == verdictStepDown:
			return le.steppedDown(logger)
		case v == verdictHandOver:
			return le.askedToHandOver(logger)
		case err != nil:
			le.logFailure(logger, err, "Could not renew the lease; will retry until the renew deadline")
		case le.termMoved():
			// The Lease we renewed names us, but it is not the one our
			// term began in: it was deleted and created again (restored
			// from a backup, re-applied) between two renewals. No write
			// stamped in our term can pass a fence any more.
			return ending{why: "the Lease was deleted and created again since our term began (its UID changed)", lost: true}
		case !le.markRenewed(start):
			return ending{why: fmt.Sprintf("the renewal returned after the renew deadline (%v)", le.config.RenewDeadline), lost: true}
		default:
			le.lastFailure = ""
			lastRenewal = start
			logger.V(4).Info("Renewed the lease")
		}
	}
}

// steppedDown is the end of a term whose lock we found in a state not ours.
// It counts as stolen only if the lock names a holder whose key differs from
// ours and that we do not outrank: only such a candidate may take a running
// lease. One we outrank, or share a key with, took it as expired (we froze,
// or were cut off), and a lock that is free, gone, unreadable, or whose
// halves disagree does not say who took it.
func (le *LeaderElector) steppedDown(logger klog.Logger) ending {
	holderKey, rankable := le.seen.rankableKey(le.config.Lock.Key())
	stolen := rankable && !le.outranks(logger, holderKey)
	return ending{why: le.lostBecause(), lost: true, stolen: stolen}
}

// askedToHandOver notes the request we will honour: our renewals from now
// on carry it, so that the requester sees it is still pending.
func (le *LeaderElector) askedToHandOver(logger klog.Logger) ending {
	if le.config.Coordinated {
		preferred := le.seen.record.PreferredHolder
		logger.Info("The control plane ended our term; stopping our work, then releasing the lease", "preferredHolder", preferred)
		return ending{why: "the control plane prefers " + preferred, handOver: true}
	}
	le.honoring = le.seen.record.HandoffRequest
	logger.Info("Asked to hand the lease over; stopping our work first",
		"to", le.honoring.HolderIdentity, "key", le.honoring.HolderKey)
	return ending{why: "handing over to " + le.honoring.HolderIdentity, handOver: true}
}

// handOver writes the lock over to the candidate whose request we honour,
// once our work has stopped: to the latest requester, if a higher one has
// replaced the first. The write goes over the state just read, so it fails
// if anyone else wrote the lock meanwhile; then we read it again, and write
// once more if it is still ours with a request pending. If the requester
// withdrew its request, we release the lock instead. It gives up after
// RenewDeadline: the requester then takes the lock itself.
func (le *LeaderElector) handOver(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if le.config.Coordinated {
		// The control plane gives the lock to the holder it prefers
		// once nobody holds it.
		le.release(logger)
		return
	}
	ctx, cancel := le.withTimeout(ctx, le.config.RenewDeadline)
	defer cancel()
	request := le.honoring
	lock := le.config.Lock
	for ctx.Err() == nil {
		// Read first, so that the write goes over the lock as it is now
		// (a MultiLock's request may have reached one half before the
		// other), and over a state nobody else saw change.
		if _, err := le.read(ctx); err != nil {
			logger.V(4).Info("Could not read the lock to hand it over", "err", err)
			le.sleep(ctx, le.config.RetryPeriod/4)
			continue
		}
		current := le.seen.record
		if !le.seen.names(lock.Identity()) {
			logger.Info("Lock changed before we could hand it over; leaving it", "holder", le.seen.holder())
			return
		}
		if !current.HandoffRequest.Pending(&current) {
			// The requester withdrew: it stopped. Our work has
			// stopped, so the next candidate need not wait out our
			// lease.
			logger.Info("The handoff request was withdrawn; releasing the lock instead")
			le.release(logger)
			return
		}
		if current.HandoffRequest != request {
			// A candidate that outranks the first asked since: our work
			// has stopped either way, so the lock goes to the latest.
			request = current.HandoffRequest
			le.honoring = request
		}
		now := le.clock.Now()
		successor := rl.LeaderElectionRecord{
			HolderIdentity:       request.HolderIdentity,
			HolderKey:            request.HolderKey,
			LeaseDurationSeconds: le.successorLease(request.LeaseDurationSeconds),
			AcquireTime:          metav1.NewTime(now),
			RenewTime:            metav1.NewTime(now),
			LeaderTransitions:    current.LeaderTransitions + 1,
			Handoff:              successorOffer(request),
		}
		err := le.write(ctx, lock.Update, successor)
		if err == nil {
			logger.Info("Handed the lease over", "to", request.HolderIdentity, "transitions", successor.LeaderTransitions)
			return
		}
		logger.V(4).Info("Could not hand the lease over; trying again", "err", err)
		if !apierrors.IsConflict(err) {
			le.sleep(ctx, le.config.RetryPeriod/4)
		}
	}
	logger.Error(context.Cause(ctx), "Gave up handing the lease over; the requester will take it", "to", request.HolderIdentity)
}

// successorOffer is the handoff offer written for a successor: the one it
// makes itself, as its request says, so that the record handing the lock
// over reads as the successor's own renewal would.
func successorOffer(request rl.HandoffRequest) rl.HandoffOffer {
	if request.OffersWithinSeconds < 1 {
		return rl.HandoffOffer{}
	}
	return rl.HandoffOffer{Holder: request.HolderIdentity, WithinSeconds: request.OffersWithinSeconds}
}

// handOverBy is handOver for a leader whose term ends at deadline (its
// last successful renewal plus RenewDeadline): past it the requester may
// already have taken the lock as expired, and a write naming it could land
// over that term, so the handoff gives up then, or is not tried at all.
func (le *LeaderElector) handOverBy(ctx context.Context, deadline time.Time) {
	left := deadline.Sub(le.clock.Now())
	if left <= 0 {
		klog.FromContext(ctx).Error(nil, "No time left before the renew deadline to hand the lease over; the requester will take it",
			"to", le.honoring.HolderIdentity, "renewDeadline", le.config.RenewDeadline)
		return
	}
	ctx, cancel := le.withTimeout(ctx, left)
	defer cancel()
	le.handOver(ctx)
}

// successorLease is the lease duration written for a successor: the one it
// asked for, or ours if it asked for one nobody can mean.
func (le *LeaderElector) successorLease(seconds int) int {
	if seconds < 1 || seconds > int(MaxLeaseDuration/time.Second) {
		return le.leaseSeconds
	}
	return seconds
}

// termMoved reports whether the lock's object is no longer the one our
// term began in: a Lease whose UID changed was deleted and created again.
func (le *LeaderElector) termMoved() bool {
	lock, ok := le.config.Lock.(rl.TermLock)
	if !ok {
		return false
	}
	_, _, uid := lock.TermObject()
	return uid != le.termUID
}
