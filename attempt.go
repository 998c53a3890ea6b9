package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// tryAcquireOrRenew makes one attempt to hold the lock and returns what it
// decided; a non-nil error means the decision could not be carried out. A
// leader first tries the fast path: it writes over the state it last wrote,
// one request and no read. Only if that fails (someone else wrote the lock,
// or the request failed) does it read the lock and decide again.
func (le *LeaderElector) tryAcquireOrRenew(ctx context.Context, leading bool) (verdict, error) {
	logger := klog.FromContext(ctx)
	lock := le.config.Lock
	now := le.clock.Now()
	desired := rl.LeaderElectionRecord{
		HolderIdentity:       lock.Identity(),
		HolderKey:            lock.Key(),
		LeaseDurationSeconds: le.leaseSeconds,
		AcquireTime:          metav1.NewTime(now),
		RenewTime:            metav1.NewTime(now),
	}

	fastPath := leading && le.seen.heldBy(lock.Identity(), now, le.config.LeaseDuration)
	if fastPath {
		desired.AcquireTime, desired.LeaderTransitions = le.seen.record.AcquireTime, le.seen.record.LeaderTransitions
		err := le.write(ctx, lock.Update, desired)
		if err == nil {
			return verdictRenew, nil
		}
		logger.V(4).Info("Optimistic renewal failed; reading the lock", "err", err)
	}

	exists, err := le.read(ctx)
	if err != nil {
		return verdictWait, err
	}
	s := situation{
		exists:  exists,
		ours:    le.seen.names(lock.Identity()),
		free:    le.seen.free(),
		leading: leading,
		expired: le.seen.expired(le.clock.Now(), le.config.LeaseDuration),
	}
	if holderKey, ok := le.seen.rankableKey(lock.Key()); ok && s.rankMatters() {
		s.outranks = le.outranks(logger, holderKey)
	}
	v := decide(s)
	current := le.seen.record
	switch {
	case v == verdictCreate:
		if err := le.write(ctx, lock.Create, desired); err != nil {
			return v, fmt.Errorf("create lock: %w", err)
		}
	case v == verdictRenew:
		desired.AcquireTime, desired.LeaderTransitions = current.AcquireTime, current.LeaderTransitions
		if fastPath {
			le.metrics.slowpathExercised(le.config.Name)
		}
		if err := le.write(ctx, lock.Update, desired); err != nil {
			return v, fmt.Errorf("renew lock: %w", err)
		}
	case v.changesHands():
		desired.LeaderTransitions = current.LeaderTransitions + 1
		if err := le.write(ctx, lock.Update, desired); err != nil {
			return v, fmt.Errorf("%s: %w", v, err)
		}
		if v == verdictPreempt {
			logger.Info("Preempted the leader: our key outranks its key",
				"previousHolder", current.HolderIdentity, "previousKey", current.HolderKey, "key", desired.HolderKey)
		}
	}
	return v, nil
}

// write carries out one write of record with op (the lock's Create or
// Update) and, if it succeeds, notes the state it left.
func (le *LeaderElector) write(ctx context.Context, op func(context.Context, rl.LeaderElectionRecord) error, record rl.LeaderElectionRecord) error {
	start := le.clock.Now()
	if err := op(ctx, record); err != nil {
		return err
	}
	le.seen.wrote(le.writtenVersion(), record, start)
	le.publishLeader()
	return nil
}

// read gets the lock and notes what it saw. exists is false when the object
// is absent. A record that cannot be decoded is noted as unreadable, which
// is not an error: the election goes on around it.
func (le *LeaderElector) read(ctx context.Context) (exists bool, err error) {
	record, raw, err := le.config.Lock.Get(ctx)
	now := le.clock.Now()
	switch {
	case err == nil && record != nil:
		le.seen.sawRecord(le.readVersion(raw), *record, now)
	case err == nil:
		return false, errors.New("read lock: Get returned neither a record nor an error")
	case errors.Is(err, rl.ErrInvalidRecord):
		wasUnreadable := le.seen.unreadable
		le.seen.sawUnreadable(le.readVersion(raw), now)
		if !wasUnreadable {
			klog.FromContext(ctx).Error(err, "Lock holds a record that cannot be decoded; treating it as held by an unknown holder until it has not changed for our lease duration",
				"leaseDuration", le.config.LeaseDuration)
		}
	case apierrors.IsNotFound(err):
		le.seen.sawAbsent(now)
	default:
		return false, fmt.Errorf("read lock: %w", err)
	}
	le.publishLeader()
	return !le.seen.absent, nil
}

// readVersion names the state a read returned: the lock's resourceVersion if
// it has one, else the record's bytes. The prefixes keep the two apart.
func (le *LeaderElector) readVersion(raw []byte) string {
	if rv := le.resourceVersion(); rv != "" {
		return "rv:" + rv
	}
	return "raw:" + string(raw)
}

// writtenVersion names the state our write left: its resourceVersion, or ""
// if the lock cannot tell, which no read matches.
func (le *LeaderElector) writtenVersion() string {
	if rv := le.resourceVersion(); rv != "" {
		return "rv:" + rv
	}
	return ""
}

func (le *LeaderElector) resourceVersion() string {
	if v, ok := le.config.Lock.(rl.Versioned); ok {
		return v.ResourceVersion()
	}
	return ""
}

// outranks asks KeyComparison whether our key outranks holderKey. A panic in
// it is logged and read as false, so that a faulty comparison cannot stop the
// election.
func (le *LeaderElector) outranks(logger klog.Logger, holderKey string) (ours bool) {
	if le.config.KeyComparison == nil {
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			logger.Error(fmt.Errorf("panic: %v", r), "KeyComparison panicked; not preempting", "holderKey", holderKey)
			ours = false
		}
	}()
	return le.config.KeyComparison(holderKey)
}
