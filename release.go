package k8sleaderelection

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// release gives the lock up, if it still names us, by writing an empty holder
// and key with a one-second lease, so that others can take over at once. It
// reads the lock first and writes over what it read, so a lock someone else
// has taken meanwhile is left alone; on a conflict it reads again. It gives up
// after RenewDeadline. It reports whether the lock no longer names us.
func (le *LeaderElector) release(logger klog.Logger) bool {
	// Run's context is done by now; release gets a context of its own.
	return le.releaseWithin(context.Background(), logger)
}

// releaseWithin is release, given up also when ctx ends: a holder whose
// term ends at a deadline (handing over) must not write after it, when a
// successor may hold the lock.
func (le *LeaderElector) releaseWithin(ctx context.Context, logger klog.Logger) bool {
	ctx, cancel := le.withTimeout(rl.WithLeaderPriority(klog.NewContext(ctx, logger)), le.config.RenewDeadline)
	defer cancel()
	lock := le.config.Lock
	backoff, retries := 10*time.Millisecond, 0
	for {
		current, _, err := lock.Get(ctx)
		switch {
		case apierrors.IsNotFound(err):
			logger.Info("Lock is gone; nothing to release")
			return true
		case err != nil:
			logger.Error(err, "Could not read the lock to release it")
			return false
		case current == nil:
			logger.Error(nil, "Could not read the lock to release it: Get returned neither a record nor an error")
			return false
		case current.HolderIdentity != lock.Identity():
			logger.V(2).Info("Lock is held by another candidate; not releasing it", "holder", current.HolderIdentity)
			return true
		}
		now := metav1.NewTime(le.clock.Now())
		released := rl.LeaderElectionRecord{
			LeaseDurationSeconds: 1,
			AcquireTime:          now,
			RenewTime:            now,
			LeaderTransitions:    current.LeaderTransitions,
			// A coordinated election's strategy is the control plane's.
			Strategy: current.Strategy,
			// Stepping down, we stay out for a while: the lock says so to
			// a new elector of ours (or, for an earlier holder that
			// stepped down, to one of its).
			StepDown: le.handoff.leftBehind(current, now.Time),
		}
		if le.config.Coordinated {
			endCoordinatedTerm(&released)
		}
		err = le.write(ctx, lock.Update, released)
		if err == nil {
			logger.Info("Released the lease")
			return true
		}
		if !apierrors.IsConflict(err) {
			logger.Error(err, "Could not release the lease")
			return false
		}
		// The usual conflict is with our own renewal that was still in
		// flight when we stopped, so the first retry goes at once; a
		// conflict after that means a busy lock, and we back off.
		logger.V(4).Info("Conflict while releasing the lease; reading it again", "retry", retries)
		if retries > 0 && !le.sleep(ctx, backoff) {
			logger.Error(context.Cause(ctx), "Gave up releasing the lease")
			return false
		}
		if retries > 0 {
			backoff = min(2*backoff, le.config.RetryPeriod)
		}
		retries++
	}
}
