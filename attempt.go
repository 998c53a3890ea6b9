package k8sleaderelection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// tryAcquireOrRenew makes one attempt to hold the lock and returns what it
// decided; a non-nil error means the decision could not be carried out. A
// leader first tries the fast path: it writes over the object it last saw,
// one request and no read. Only if that fails (someone else wrote the lock,
// or our copy is stale) does it read the lock and decide again.
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

	if leading {
		if held, ok := le.heldRecord(now); ok {
			desired.AcquireTime, desired.LeaderTransitions = held.AcquireTime, held.LeaderTransitions
			err := lock.Update(ctx, desired)
			if err == nil {
				le.observeWrite(desired)
				return verdictRenew, nil
			}
			logger.V(4).Info("Optimistic renewal failed; reading the lock", "err", err)
		}
	}

	current, exists, err := le.read(ctx)
	if err != nil {
		return verdictWait, err
	}
	if leading && le.observedInvalid {
		// We renew over a record no one can read: keep our own term, as
		// we last wrote it (the observed record now names UnknownLeader).
		current = le.lastWritten
	}
	v := decide(situation{
		exists:  exists,
		holder:  current.HolderIdentity,
		self:    lock.Identity(),
		leading: leading,
		expired: !le.leaseRunning(le.clock.Now()),
		invalid: le.observedInvalid,
		outranks: func() bool {
			// An undecodable record has no key worth ranking, and when a
			// MultiLock's two locks disagree nobody knows whose key counts.
			return !le.observedInvalid && current.HolderIdentity != rl.UnknownLeader &&
				le.outranks(logger, current.HolderKey)
		},
	})
	switch {
	case v == verdictCreate:
		if err := lock.Create(ctx, desired); err != nil {
			return v, fmt.Errorf("create lock: %w", err)
		}
	case v == verdictRenew:
		desired.AcquireTime, desired.LeaderTransitions = current.AcquireTime, current.LeaderTransitions
		if leading {
			le.metrics.slowpathExercised(le.config.Name)
		}
		if err := lock.Update(ctx, desired); err != nil {
			return v, fmt.Errorf("renew lock: %w", err)
		}
	case v.changesHands():
		desired.LeaderTransitions = current.LeaderTransitions + 1
		if err := lock.Update(ctx, desired); err != nil {
			return v, fmt.Errorf("%s: %w", v, err)
		}
		if v == verdictPreempt {
			logger.Info("Preempted the leader: our key outranks its key",
				"previousHolder", current.HolderIdentity, "previousKey", current.HolderKey, "key", desired.HolderKey)
		}
	default:
		return v, nil
	}
	le.observeWrite(desired)
	return v, nil
}

// read gets the lock and notes what it saw. exists is false when the object
// is absent. A record that cannot be decoded reads as held by UnknownLeader;
// see observeInvalid.
func (le *LeaderElector) read(ctx context.Context) (record rl.LeaderElectionRecord, exists bool, err error) {
	got, raw, err := le.config.Lock.Get(ctx)
	switch {
	case err == nil && got != nil:
		le.observeRead(got, raw)
		return *got, true, nil
	case err == nil:
		return record, false, errors.New("read lock: Get returned neither a record nor an error")
	case errors.Is(err, rl.ErrInvalidRecord):
		return le.observeInvalid(ctx, raw, err), true, nil
	case apierrors.IsNotFound(err):
		return record, false, nil
	default:
		return record, false, fmt.Errorf("read lock: %w", err)
	}
}

// observeRead notes record as last seen. Only a change of its bytes counts as
// a renewal by the holder and restarts the holder's lease on our clock.
func (le *LeaderElector) observeRead(record *rl.LeaderElectionRecord, raw []byte) {
	if !le.observedInvalid && le.observedRaw != nil && bytes.Equal(raw, le.observedRaw) {
		return
	}
	le.observedRaw = bytes.Clone(raw)
	if le.observedRaw == nil {
		le.observedRaw = []byte{}
	}
	le.observedInvalid = false
	le.mu.Lock()
	le.observed, le.observedAt = *record, le.clock.Now()
	le.mu.Unlock()
}

// observeInvalid notes a record that cannot be decoded. It is treated as held
// by UnknownLeader for our LeaseDuration, counted from when we first saw it
// invalid; later changes to it do not restart that lease, since nothing in
// it shows that a live holder wrote them. Once the lease runs out we write a
// good record over it, so a corrupt lock cannot block the election forever.
func (le *LeaderElector) observeInvalid(ctx context.Context, raw []byte, err error) rl.LeaderElectionRecord {
	le.observedRaw = bytes.Clone(raw)
	record := rl.LeaderElectionRecord{HolderIdentity: rl.UnknownLeader, LeaseDurationSeconds: le.leaseSeconds}
	if le.observedInvalid {
		return record
	}
	le.observedInvalid = true
	klog.FromContext(ctx).Error(err, "Lock holds a record that cannot be decoded; treating it as held by an unknown holder until our lease duration has passed, then overwriting it",
		"leaseDuration", le.config.LeaseDuration)
	le.mu.Lock()
	le.observed, le.observedAt = record, le.clock.Now()
	le.mu.Unlock()
	return record
}

// observeWrite notes a record we have just written. observedRaw is left as
// it was: the next read then sees a change, which is true.
func (le *LeaderElector) observeWrite(record rl.LeaderElectionRecord) {
	le.observedInvalid = false
	le.lastWritten = record
	le.mu.Lock()
	le.observed, le.observedAt = record, le.clock.Now()
	le.mu.Unlock()
}

func (le *LeaderElector) observedRecord() rl.LeaderElectionRecord {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.observed
}

// heldRecord returns the record we last wrote, if it names us and its lease
// is still running: the precondition for a renewal without a read.
func (le *LeaderElector) heldRecord(now time.Time) (rl.LeaderElectionRecord, bool) {
	le.mu.RLock()
	defer le.mu.RUnlock()
	held := le.observed.HolderIdentity == le.config.Lock.Identity() &&
		le.observedAt.Add(le.holdDuration(le.observed)).After(now)
	return le.observed, held
}

// leaseRunning reports whether the lease of the record last seen is still
// running at now by our clock.
func (le *LeaderElector) leaseRunning(now time.Time) bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.observedAt.Add(le.holdDuration(le.observed)).After(now)
}

// holdDuration is how long the holder of record may go without changing it.
// A duration that is not positive, or too large to be a time.Duration, is
// not a lease anyone can have meant; our own LeaseDuration stands in for it,
// so that such a record can neither be taken at once nor block forever.
func (le *LeaderElector) holdDuration(record rl.LeaderElectionRecord) time.Duration {
	secs := record.LeaseDurationSeconds
	if secs < 1 || secs > math.MaxInt32 {
		return le.config.LeaseDuration
	}
	return time.Duration(secs) * time.Second
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
