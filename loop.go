package k8sleaderelection

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
)

// maxAcquireAttempt bounds one attempt to acquire the lock: long enough for
// an API server under a burst to answer (client-go's elector does not bound
// its attempts at all), short enough that a request lost on a dead
// connection does not keep a candidate out of the election for long.
const maxAcquireAttempt = time.Minute

// acquire tries to take the lock until it leads (true) or ctx is done
// (false). It reads the lock, then, while a watch of the lock runs, decides
// from what the watch delivers: it takes a released lock as soon as it sees
// the release and an expired one as soon as the lease runs out, and sends
// nothing while nothing changes. Without a watch, or after a failed attempt,
// it reads the lock again after a jittered RetryPeriod.
func (le *LeaderElector) acquire(ctx context.Context) bool {
	logger := klog.FromContext(ctx)
	logger.Info("Trying to acquire the lease", "identity", le.config.Lock.Identity(), "key", le.key())
	read := !le.lookShared(ctx)
	for ctx.Err() == nil {
		// An attempt takes as long as the API server needs: under a
		// burst (every replica of a controller with many elections
		// starting at once) cancelling a slow request only sends it
		// again behind the same queue, and adds to the load that made
		// it slow. It is bounded only so that a request the server never
		// answers does not stop the candidate for good.
		attemptCtx, cancel := le.withTimeout(ctx, max(maxAcquireAttempt, le.config.RenewDeadline))
		var v verdict
		var err error
		if read || le.watch.relist {
			v, err = le.tryAcquireOrRenew(attemptCtx, false)
		} else {
			v, err = le.judgeSeen(attemptCtx, false)
		}
		cancel()
		le.reportLeader()
		switch {
		case err != nil:
			le.logFailure(logger, err, "Could not acquire the lease; will retry")
		case v == verdictHandOver:
			// The lock names us from before, and a higher key asked for
			// it: we run no work, so it goes over at once.
			le.handoff.honour(&le.seen.record, le.clock.Now())
			le.handOver(ctx)
			le.handoff.honoured()
			le.reportLeader()
		case v.writes() && !le.clock.Now().Before(le.seen.since.Add(le.config.RenewDeadline)):
			// The write took the lock, but its answer came after the
			// term it began was over (an attempt may wait up to a
			// minute): work started now would run past its renew
			// deadline. The lock names us, so the next attempt, at
			// once, renews it, and the term runs from that write.
			logger.Info("Took the lock, but the answer came after the term's renew deadline; renewing it before leading",
				"answeredAfter", le.clock.Since(le.seen.since), "renewDeadline", le.config.RenewDeadline)
			read = true
			continue
		case v.writes():
			// The term runs from when the write that took the lock
			// was sent: no other candidate can have seen it earlier,
			// so its lease on us runs from later still. A read before
			// it that the API server was slow to answer (a burst)
			// does not eat into the term.
			le.startLeading(le.seen.since)
			le.handoff.forgetAsk()
			// The leader's watch starts from its own write, so that every
			// event it sees comes after it.
			le.watch.restart()
			logger.Info("Acquired the lease", "how", v.String(), "transitions", le.seen.record.LeaderTransitions)
			return true
		default:
			le.lastFailure = ""
			le.tellNoLease(logger)
			logger.V(4).Info("Lease is held by another candidate", "holder", le.GetLeader())
		}

		awaiting, deadline := le.handoff.awaiting(&le.seen.record)
		gen := le.watch.generation()
		le.watch.ensure(ctx, le.clock.Now(), le.watchStartLimit(time.Time{}))
		if le.newWatchNeedsARead(gen) {
			read = true
			continue
		}
		pause := wait.Jitter(le.config.RetryPeriod, JitterFactor)
		if err == nil && le.watch.watching() {
			// Nothing to do until the watch shows a change, the lease runs
			// out, or the holder's time to answer our request does.
			pause = le.seen.since.Add(le.seen.lease()).Sub(le.clock.Now())
		}
		if answerBy := deadline.Sub(le.clock.Now()); awaiting && answerBy > 0 {
			pause = min(pause, answerBy)
		}
		if awaiting && err == nil {
			// The answer may be a write our watch never shows (a watch
			// that opened just after it, on a fake clientset that does
			// not replay what it missed): while it is due, look at the
			// lock at the polling pace too, or nobody would lead until
			// the lease ran out.
			pause = min(pause, wait.Jitter(le.config.RetryPeriod, JitterFactor))
		}
		if err == nil && pause <= 0 {
			// Nothing left to wait for in what we saw (a case the rule
			// should not leave): look again at the polling pace rather
			// than spin.
			logger.V(4).Info("Nothing to wait for; polling", "verdict", v.String())
			pause = wait.Jitter(le.config.RetryPeriod, JitterFactor)
		}
		switch le.waitFor(ctx, pause, le.readiness.changed()) {
		case wokeByContext:
			return false
		case wokeByWatch:
			gen := le.watch.generation()
			le.applyWatch(ctx)
			read = le.newWatchNeedsARead(gen)
		case wokeByOther:
			read = !le.watch.watching()
		case wokeByTimer:
			read = err != nil || !le.watch.watching() || awaiting
		}
	}
	return false
}

// newWatchNeedsARead reports whether a watch opened since the watch of
// generation gen ran, where a coordinated candidate must read the lock once
// more: a watch that opened after our read may not show what changed in
// between (a clientset that replays nothing to a new watch), and a
// coordinated candidate writes nothing until the lock names it, so no
// conflict would tell it: a Lease the control plane created or gave us
// meanwhile would go unseen for good. One read closes the gap.
func (le *LeaderElector) newWatchNeedsARead(gen int) bool {
	return le.config.Coordinated && le.watch.watching() && le.watch.generation() != gen
}

// applyWatch notes every state the watch has delivered since it was last
// asked, in order. It reports whether any of them did not name us: for a
// leader, a sign that the lock changed hands since its last write, even if
// a later state names it again (a write of ours that landed over another's
// on a clientset that does not version objects).
func (le *LeaderElector) applyWatch(ctx context.Context) (foreign bool) {
	// take forgets a watch that ended; its events are still its own.
	gen := le.watch.generation()
	events := le.watch.take(ctx, le.clock.Now())
	for _, ev := range events {
		if ev.Type == watch.Bookmark || le.watch.lock == nil {
			continue
		}
		record, raw, err := le.watch.lock.Apply(ev)
		if err := le.note(ctx, record, raw, err); err != nil {
			klog.FromContext(ctx).V(4).Info("Ignoring a watch event", "type", ev.Type, "err", err)
			continue
		}
		le.handoff.sawDelivered(&le.seen, gen)
		le.watch.delivered(le.resourceVersion(), record)
		if !le.seen.names(le.config.Lock.Identity()) {
			foreign = true
		}
	}
	return foreign
}

// lostBecause says what a leader that must step down found in its lock.
func (le *LeaderElector) lostBecause() string {
	switch {
	case le.seen.absent:
		return "the lock was deleted"
	case le.seen.unreadable:
		return "the lock holds a record that cannot be decoded, so someone else may hold it"
	case le.seen.free():
		return "the lock was taken and released by another candidate"
	}
	return "the lock is held by " + le.seen.holder()
}

// logFailure logs an error the loop survives once at error level, and the
// same error again only at V(4), so that a long outage does not flood the log.
func (le *LeaderElector) logFailure(logger klog.Logger, err error, msg string) {
	if text := err.Error(); text != le.lastFailure {
		le.lastFailure = text
		logger.Error(err, msg)
		return
	}
	logger.V(4).Info(msg, "err", err)
}

// reportLeader queues an OnNewLeader call if the holder we see has changed
// since the last call, and tells the metrics who leads.
func (le *LeaderElector) reportLeader() {
	le.observeLeader()
	holder := le.GetLeader()
	if holder == le.announcedLeader {
		return
	}
	le.announcedLeader = holder
	le.notifier.notify(holder)
}

// observeLeader tells the metrics whose lease runs as the state last seen
// shows, if that changed since it last told them. The time it gives never
// goes back, so that a consumer never sees a stretch of negative length.
func (le *LeaderElector) observeLeader() {
	if !le.seen.known {
		return
	}
	identity, at := le.seen.runningHolder(le.clock.Now())
	if le.metricsLeader.known && identity == le.metricsLeader.identity {
		return
	}
	if at.Before(le.metricsLeader.at) {
		at = le.metricsLeader.at
	}
	le.metricsLeader = sighting{known: true, identity: identity, at: at}
	le.metrics.leaderObserved(le.config.Name, identity, at)
}

// sighting is the leader last reported to LeaderObserved.
type sighting struct {
	known    bool
	identity string
	at       time.Time
}

func (le *LeaderElector) startLeading(at time.Time) {
	le.mu.Lock()
	le.leading, le.renewedAt = true, at
	le.mu.Unlock()
	le.config.Lock.RecordEvent("became leader")
	le.metrics.leaderOn(le.config.Name)
}

// markRenewed notes a renewal that started at at and succeeded. It reports
// false if the term was already cut off at its renew deadline (a step that
// ignored its bound returned late): the work has been told to stop, and the
// term is over whatever the renewal says.
func (le *LeaderElector) markRenewed(at time.Time) bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.cutOff {
		return false
	}
	le.renewedAt = at
	return true
}

func (le *LeaderElector) renewalTime() time.Time {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.renewedAt
}

func (le *LeaderElector) stopLeading() {
	le.mu.Lock()
	le.leading, le.cutOff = false, false
	if le.cutoff != nil {
		le.cutoff.Stop()
		le.cutoff = nil
	}
	le.mu.Unlock()
	le.metrics.leaderOff(le.config.Name)
}

// cutAtDeadline makes sure that a term's work stops at the term's renew
// deadline (its last successful renewal plus RenewDeadline) even while the
// leader is held up in a step that does not return by then: user code (a
// metric, KeyComparison) or a lock that ignores its context. At the
// deadline, unless a renewal has moved it, it cancels the work with
// stopWork and IsLeader turns false; stopLeading disarms it. Every step of
// hold is bounded by the deadline too; this is the backstop for those that
// do not honour their bound.
func (le *LeaderElector) cutAtDeadline(logger klog.Logger, stopWork context.CancelFunc) {
	var check, fired func()
	// A fake clock runs an AfterFunc while it holds its own lock: asking
	// it the time from there would never return.
	fired = func() { go check() }
	check = func() {
		le.mu.Lock()
		if !le.leading || le.cutoff == nil {
			le.mu.Unlock()
			return
		}
		if left := le.renewedAt.Add(le.config.RenewDeadline).Sub(le.clock.Now()); left > 0 {
			le.cutoff = le.clock.AfterFunc(left, fired)
			le.mu.Unlock()
			return
		}
		le.leading, le.cutoff, le.cutOff = false, nil, true
		le.mu.Unlock()
		logger.Error(nil, "Still busy in a step at the renew deadline; cancelling the work's context now", "renewDeadline", le.config.RenewDeadline)
		stopWork()
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	le.cutoff = le.clock.AfterFunc(le.renewedAt.Add(le.config.RenewDeadline).Sub(le.clock.Now()), fired)
}
