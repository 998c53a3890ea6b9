package k8sleaderelection

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	le.handoff.honoured()
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
	defer le.handoff.windDown()()
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

// conflictRetries is how many times a leader whose renewal conflicted
// tries again at once, before it waits a RetryPeriod as after any failure.
// A conflict is no outage: the API server answered, and only another write landed
// between our read and ours (a controller rewriting the Lease's labels, a
// storm of them). A fresh read and write has every chance then, where
// waiting a RetryPeriod each time spends the renew deadline: three such
// conflicts in a row end a paced term. The bound keeps a writer that beats
// every write of ours to a few tries per RetryPeriod.
const conflictRetries = 3

// hold keeps the lock: it writes the lock again at the renewal pace (see
// renewPace: every renewPeriod while its watch runs and renewals succeed,
// every RetryPeriod otherwise). It returns when ctx is done, when until is
// closed, when no renewal has succeeded for RenewDeadline, as soon as the
// watch or a renewal shows the lock in any state but ours, or when a
// candidate asks for the lock.
func (le *LeaderElector) hold(ctx context.Context, until <-chan struct{}) ending {
	logger := klog.FromContext(ctx)
	lastRenewal := le.renewalTime()
	lastTry, failed := le.clock.Now(), false
	tryStart := lastTry
	// conflicts counts the renewals in a row that another writer's write
	// beat (see conflictRetries).
	conflicts := 0
	le.watch.awaitEcho("", nil)
	for {
		deadline := lastRenewal.Add(le.config.RenewDeadline)
		le.watch.ensure(ctx, le.clock.Now(), le.watchStartLimit(deadline))
		// Computed afresh on each turn: a watch that broke while we
		// waited brings the next renewal forward to RetryPeriod after
		// the last, since only a renewal can now show a steal. After a
		// success the pace runs from when its write was sent, as the
		// deadline does: a write answered late (the one that took the
		// lock may take up to a minute) must not push the next try
		// past the deadline it set.
		// After a failure it runs from when that attempt began, so that
		// one cut off at its limit (see attemptLimit) is retried at once
		// and the retry still finds the time its limit left it.
		from := tryStart
		if !failed {
			from = lastRenewal
		}
		wake := from.Add(le.renewPace(failed || !le.watch.echoed(), lastTry))
		if failed && conflicts%(conflictRetries+1) != 0 {
			// Another writer beat our renewal: try again at once, up
			// to conflictRetries times per RetryPeriod.
			wake = lastTry
		}
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
		attemptCtx, cancel := le.withTimeout(ctx, attemptLimit(deadline.Sub(start), le.config.RetryPeriod))
		v, err := le.tryAcquireOrRenew(attemptCtx, true)
		cancel()
		if v == verdictRenew || err != nil {
			le.metrics.renewalAttempted(le.config.Name, le.clock.Since(start), err)
		}
		le.reportLeader()
		tryStart, lastTry, failed = start, le.clock.Now(), err != nil
		if apierrors.IsConflict(err) {
			conflicts++
		} else {
			conflicts = 0
		}
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
		case !le.markRenewed(le.seen.since):
			return ending{why: fmt.Sprintf("the renewal returned after the renew deadline (%v)", le.config.RenewDeadline), lost: true}
		default:
			le.lastFailure = ""
			// From when the renewal's write was sent, as the term's
			// start (see acquire).
			lastRenewal = le.seen.since
			wrote := le.seen.record
			le.watch.awaitEcho(le.resourceVersion(), &wrote)
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
	holderKey, rankable := le.seen.rankableKey(le.key())
	stolen := rankable && !le.outranks(logger, holderKey)
	return ending{why: le.lostBecause(), lost: true, stolen: stolen}
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
