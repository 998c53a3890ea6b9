package k8sleaderelection

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// acquire tries to take the lock, right away and then after each jittered
// RetryPeriod, until it leads (true) or ctx is done (false).
func (le *LeaderElector) acquire(ctx context.Context) bool {
	logger := klog.FromContext(ctx)
	logger.Info("Trying to acquire the lease", "identity", le.config.Lock.Identity(), "key", le.config.Lock.Key())
	for ctx.Err() == nil {
		start := le.clock.Now()
		// One attempt may not outlast a renewal: a request the API server
		// never answers must not hold up the next try.
		attemptCtx, cancel := le.withTimeout(ctx, le.config.RenewDeadline)
		v, err := le.tryAcquireOrRenew(attemptCtx, false)
		cancel()
		le.reportLeader()
		switch {
		case err != nil:
			le.logFailure(logger, err, "Could not acquire the lease; will retry")
		case v.writes():
			le.startLeading(start)
			logger.Info("Acquired the lease", "how", v.String(), "transitions", le.seen.record.LeaderTransitions)
			return true
		default:
			le.lastFailure = ""
			logger.V(4).Info("Lease is held by another candidate", "holder", le.GetLeader())
		}
		if !le.sleep(ctx, wait.Jitter(le.config.RetryPeriod, JitterFactor)) {
			break
		}
	}
	return false
}

// renew keeps the lock while we lead: every RetryPeriod it writes the lock
// again. It returns after it stopped leading, which it does when ctx is
// done, when no renewal has succeeded for RenewDeadline, or as soon as a
// renewal finds someone else holding the lock. stopLeading cancels the
// context OnStartedLeading runs with.
func (le *LeaderElector) renew(ctx context.Context, stopLeading context.CancelFunc) {
	logger := klog.FromContext(ctx)
	lastRenewal := le.renewalTime()
	var why string
	for {
		deadline := lastRenewal.Add(le.config.RenewDeadline)
		if !le.sleep(ctx, min(le.config.RetryPeriod, deadline.Sub(le.clock.Now()))) {
			why = "context done"
			break
		}
		start := le.clock.Now()
		if !start.Before(deadline) {
			why = fmt.Sprintf("no successful renewal for renewDeadline (%v)", le.config.RenewDeadline)
			break
		}
		attemptCtx, cancel := le.withTimeout(ctx, deadline.Sub(start))
		v, err := le.tryAcquireOrRenew(attemptCtx, true)
		cancel()
		le.reportLeader()
		if v == verdictStepDown {
			why = le.lostBecause()
			break
		}
		if err != nil {
			le.logFailure(logger, err, "Could not renew the lease; will retry until the renew deadline")
			continue
		}
		le.lastFailure = ""
		lastRenewal = start
		le.markRenewed(start)
		logger.V(4).Info("Renewed the lease")
	}

	le.stopLeading()
	stopLeading()
	logger.Info("Stopped leading", "reason", why)
	le.config.Lock.RecordEvent("stopped leading")
	if le.config.ReleaseOnCancel {
		le.release(logger)
	}
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

// sleep waits for d on the elector's clock. It returns false, at once, if
// ctx is done first.
func (le *LeaderElector) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := le.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// withTimeout is context.WithTimeout on the elector's clock: with a fake
// clock in tests, the fake time moves request deadlines too.
func (le *LeaderElector) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, real := le.clock.(clock.RealClock); real {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := le.clock.AfterFunc(d, func() {
		cancel(fmt.Errorf("attempt took longer than %v: %w", d, context.DeadlineExceeded))
	})
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
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
// since the last call.
func (le *LeaderElector) reportLeader() {
	holder := le.GetLeader()
	if holder == le.reportedLeader {
		return
	}
	le.reportedLeader = holder
	le.notifier.notify(holder)
}

func (le *LeaderElector) startLeading(at time.Time) {
	le.mu.Lock()
	le.leading, le.renewedAt = true, at
	le.mu.Unlock()
	le.config.Lock.RecordEvent("became leader")
	le.metrics.leaderOn(le.config.Name)
}

func (le *LeaderElector) markRenewed(at time.Time) {
	le.mu.Lock()
	le.renewedAt = at
	le.mu.Unlock()
}

func (le *LeaderElector) renewalTime() time.Time {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.renewedAt
}

func (le *LeaderElector) stopLeading() {
	le.mu.Lock()
	le.leading = false
	le.mu.Unlock()
	le.metrics.leaderOff(le.config.Name)
}
