package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
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
	if leading || le.seen.names(lock.Identity()) {
		// A renewal that waits behind candidates' reads may cost the
		// term; a candidate that waits loses only time. A lock that
		// names us (a write that took it was answered too late to
		// lead) keeps every other candidate out, so our next write is
		// a holder's too: behind candidates' reads it could be late
		// again, and the election would go on without a leader.
		ctx = rl.WithLeaderPriority(ctx)
	}
	now := le.clock.Now()
	fastPath := leading && le.seen.heldBy(lock.Identity(), now)
	if fastPath {
		desired := le.ourRecord(now)
		desired.AcquireTime, desired.LeaderTransitions = le.seen.record.AcquireTime, le.seen.record.LeaderTransitions
		err := le.write(ctx, lock.Update, desired)
		if err == nil {
			return verdictRenew, nil
		}
		logger.V(4).Info("Optimistic renewal failed; reading the lock", "err", err)
	}

	if _, err := le.read(ctx); err != nil {
		return verdictWait, err
	}
	// Before we act on it: a lease that ran out, or a release, is seen
	// before we take the lock, so the time without a leader is counted.
	le.observeLeader()
	v := le.judge(ctx, leading)
	if v == verdictRenew && fastPath {
		le.metrics.slowpathExercised(le.config.Name)
	}
	return v, le.act(ctx, v)
}

// judgeSeen decides from the state the lock was last seen in (read or
// delivered by the watch), and carries the decision out. A write is made
// over that state only if it has a resourceVersion, which makes it
// conditional; otherwise the lock is read again first, so that an
// unconditional write never lands over a state nobody looked at.
func (le *LeaderElector) judgeSeen(ctx context.Context, leading bool) (verdict, error) {
	le.observeLeader()
	v := le.judge(ctx, leading)
	if !v.writesLock() || le.seen.versioned() {
		return v, le.act(ctx, v)
	}
	return le.tryAcquireOrRenew(ctx, leading)
}

// judge applies the election rule to the state last seen. KeyComparison is
// asked only when its answer can change the verdict.
func (le *LeaderElector) judge(ctx context.Context, leading bool) verdict {
	lock := le.config.Lock
	expired := le.seen.expired(le.clock.Now())
	// A lock whose holder was wiped out while its lease ran is held, by
	// nobody we know, until that lease has run out.
	heldOn := le.seen.wiped && !expired
	s := situation{
		exists:  !le.seen.absent || heldOn,
		ours:    le.seen.names(lock.Identity()),
		free:    le.seen.free() && !heldOn,
		leading: leading,
		expired: expired,

		coordinated: le.config.Coordinated,
	}
	now := le.clock.Now()
	s.excluded = le.handoff.excluded(&le.seen.record, now)
	holderKey, rankable := le.seen.rankableKey(le.key())
	if rankable && s.rankMatters() {
		logger := klog.FromContext(ctx)
		s.outranks = le.outranks(logger, holderKey)
		if s.outranks {
			s.outranks = le.handoff.mayReplace(&le.seen.record, le.key(), func(key string) bool { return le.outranks(logger, key) })
		}
		if s.outranks && !le.readiness.isReady() {
			s.outranks = false
		}
	}
	if s.rankMatters() {
		s.nominated = le.handoff.nominated(&le.seen.record, now) && le.readiness.isReady()
	}
	if rankable && s.rankMatters() || s.nominated {
		s.asked, s.mayAsk = le.handoff.askState(&le.seen.record, now)
	}
	if s.ours && !s.coordinated {
		s.handoffAsked = le.handoff.askedOfUs(&le.seen.record, now)
	}
	if s.ours && s.coordinated {
		s.endOfTerm = le.endOfTerm()
	}
	if s.ours {
		_, s.termed = lock.(rl.TermLock)
		s.handedToUs = le.handoff.handedToUs(&le.seen.record)
	}
	return decide(s)
}

// act carries out v over the state last seen: it creates the lock, or
// writes our record over that state, keeping the term when we renew it and
// starting a new one when the lock changes hands or decide says so.
func (le *LeaderElector) act(ctx context.Context, v verdict) error {
	lock := le.config.Lock
	desired := le.ourRecord(le.clock.Now())
	current := le.seen.record
	switch {
	case v == verdictCreate:
		if err := le.write(ctx, lock.Create, desired); err != nil {
			return fmt.Errorf("create lock: %w", err)
		}
	case v == verdictRenew, v == verdictNewTerm:
		desired.AcquireTime, desired.LeaderTransitions = current.AcquireTime, current.LeaderTransitions
		if v == verdictNewTerm {
			desired.AcquireTime, desired.LeaderTransitions = metav1.NewTime(le.clock.Now()), current.LeaderTransitions+1
		}
		if err := le.write(ctx, lock.Update, desired); err != nil {
			return fmt.Errorf("renew lock: %w", err)
		}
	case v == verdictRequestHandoff:
		if err := le.requestHandoff(ctx); err != nil {
			return fmt.Errorf("request handoff: %w", err)
		}
	case v.changesHands():
		desired.LeaderTransitions = current.LeaderTransitions + 1
		if err := le.write(ctx, lock.Update, desired); err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
		if v == verdictPreempt {
			klog.FromContext(ctx).Info("Preempted the leader: our key outranks its key",
				"previousHolder", current.HolderIdentity, "previousKey", current.HolderKey, "key", desired.HolderKey)
		}
	}
	return nil
}

// ourRecord is the record that names us, as of now.
func (le *LeaderElector) ourRecord(now time.Time) rl.LeaderElectionRecord {
	lock := le.config.Lock
	r := rl.LeaderElectionRecord{
		HolderIdentity:       lock.Identity(),
		HolderKey:            le.key(),
		LeaseDurationSeconds: le.leaseSeconds,
		AcquireTime:          metav1.NewTime(now),
		RenewTime:            metav1.NewTime(now),
		Handoff:              le.offer(),
		// Only while we honour a request does it stay in the lock.
		HandoffRequest: le.handoff.honouring(),
		StepDown:       le.handoff.carriedStepDown(&le.seen.record, now),
	}
	if le.config.Coordinated {
		le.keepControlPlaneFields(&r)
	}
	return r
}

// write carries out one write of record with op (the lock's Create or
// Update) and, if it succeeds, notes the state it left.
func (le *LeaderElector) write(ctx context.Context, op func(context.Context, rl.LeaderElectionRecord) error, record rl.LeaderElectionRecord) error {
	start := le.clock.Now()
	before := le.resourceVersion()
	if le.changesNothing(record) {
		// The API server keeps the resourceVersion of an object that a
		// write leaves as it was (a restarted requester asking again
		// with the very same request): an unchanged version then says
		// nothing about the clientset.
		before = ""
	}
	if err := op(ctx, record); err != nil {
		return err
	}
	le.seen.wrote(le.resourceVersion(), before, record, start)
	le.handoff.wroteRecord(record, le.watch.generation())
	if le.watch != nil {
		// The lock now holds a state a watch can resume from.
		le.watch.relist = false
		le.watch.sawState()
	}
	le.publishLeader()
	return nil
}

// changesNothing reports whether writing record over the state last seen
// would leave the lock as it was, to the microsecond every lock kind keeps
// times in.
func (le *LeaderElector) changesNothing(record rl.LeaderElectionRecord) bool {
	if !le.seen.known || le.seen.absent || le.seen.unreadable {
		return false
	}
	return sameRecord(le.seen.record, record)
}

// read gets the lock and notes what it saw. exists is false when the object
// is absent. A record that cannot be decoded is noted as unreadable, which
// is not an error: the election goes on around it.
func (le *LeaderElector) read(ctx context.Context) (exists bool, err error) {
	first := !le.seen.known
	record, raw, err := le.config.Lock.Get(ctx)
	if err := le.note(ctx, record, raw, err); err != nil {
		return false, fmt.Errorf("read lock: %w", err)
	}
	le.looked(first)
	return !le.seen.absent, nil
}

// looked notes that the state just noted is the lock as it is now (a read,
// or the shared watch's look in its place); first says it is the first
// look of this elector.
func (le *LeaderElector) looked(first bool) {
	le.handoff.sawRead(&le.seen)
	if le.watch == nil {
		return
	}
	if first {
		// A watch that runs already was opened before this first look
		// (see lookShared): what it queued up to this state is not news.
		le.watch.skipUpTo(le.config.Lock)
	}
	le.watch.relist = false
	le.watch.sawState()
}

// lookShared takes the first look of a candidate that has seen nothing yet
// from the watch its process shares among its locks (see
// rl.SharedReader), instead of reading the lock, and reports whether it
// did. If that watch does not run yet, the candidate starts its own watch,
// which joins it or starts it, and waits at most a jittered RetryPeriod for
// it to open. A process that restarts as a candidate in thousands of
// elections then sends one list and one watch, not thousands of reads
// that would queue the shared watch's list behind them and leave every
// candidate polling until it opened.
//
// A lock the shared watch knows to be absent is read all the same: at a
// cold start every candidate of every election would otherwise create it
// the moment the shared watch opens, and those creates, all but one failing
// and each a write etcd must agree on, would hold up every election's
// start; a read's round trip staggers them, as it always has.
//
// A lock no shared watch serves, or whose watch is slow to open, is read as
// before: a watch that opened but cannot answer is dropped, so that its
// watch starts, as always, from the state read; one still opening is
// settled as any watch that opens after a read. A coordinated candidate
// reads as before too: it writes nothing until the lock names it, so it
// relies on reading the lock after its watch opened (see
// newWatchNeedsARead), and it is one of a few per component, not of
// thousands.
func (le *LeaderElector) lookShared(ctx context.Context) bool {
	shared, ok := le.config.Lock.(rl.SharedReader)
	if !ok || nilness.Is(shared) || le.watch.lock == nil || le.seen.known || le.config.Coordinated || !shared.MayShare() {
		return false
	}
	look := le.takeShared(ctx, shared)
	if look == sharedUnknown {
		le.watch.ensure(ctx, le.clock.Now(), le.watchStartLimit(time.Time{}))
		if !le.watch.watching() && le.waitFor(ctx, wait.Jitter(le.config.RetryPeriod, JitterFactor), nil) == wokeByWatch {
			le.watch.settle(ctx, le.clock.Now())
		}
		if !le.watch.watching() {
			// Still opening: it is settled, when it opens, as any
			// watch that opens after a read.
			return false
		}
		if look = le.takeShared(ctx, shared); look == sharedUnknown {
			le.watch.restart()
		}
	}
	return look == sharedTaken
}

// sharedLook is what the shared watch told of the lock.
type sharedLook int

const (
	// sharedUnknown: no shared watch of the lock runs.
	sharedUnknown sharedLook = iota
	// sharedAbsent: it knows of no such object; nothing was noted.
	sharedAbsent
	// sharedTaken: it knows the object, whose state is noted as read.
	sharedTaken
)

// takeShared notes the lock's state as the shared watch knows it, if it
// knows the object, as a read.
func (le *LeaderElector) takeShared(ctx context.Context, shared rl.SharedReader) sharedLook {
	record, raw, err, ok := shared.GetShared()
	switch {
	case !ok:
		return sharedUnknown
	case apierrors.IsNotFound(err):
		return sharedAbsent
	case le.note(ctx, record, raw, err) != nil:
		return sharedUnknown
	}
	le.looked(true)
	return sharedTaken
}

// note records in seen what a read of the lock, or a watch event applied to
// it, returned. It returns the error if the state could not be learned.
func (le *LeaderElector) note(ctx context.Context, record *rl.LeaderElectionRecord, raw []byte, err error) error {
	now := le.clock.Now()
	switch {
	case err == nil && record != nil:
		le.seen.sawRecord(le.resourceVersion(), rawState(raw, record), *record, now)
	case err == nil:
		return errors.New("Get returned neither a record nor an error")
	case errors.Is(err, rl.ErrInvalidRecord):
		wasUnreadable := le.seen.unreadable
		le.seen.sawUnreadable(le.resourceVersion(), string(raw), now)
		if !wasUnreadable {
			klog.FromContext(ctx).Error(err, "Lock holds a record that cannot be decoded; treating it as held by an unknown holder until it has not changed for our lease duration",
				"leaseDuration", le.config.LeaseDuration)
		}
	case apierrors.IsNotFound(err):
		le.seen.sawAbsent(now)
	default:
		return err
	}
	le.noteEndMark()
	le.publishLeader()
	return nil
}

// rawState is what tells a read state apart by its bytes: the record's
// bytes, and its handoff offer and request and step-down request, which
// live in annotations of their own.
func rawState(raw []byte, record *rl.LeaderElectionRecord) string {
	if record.Handoff == (rl.HandoffOffer{}) && record.HandoffRequest == (rl.HandoffRequest{}) && record.StepDown == (rl.StepDownRequest{}) {
		return string(raw)
	}
	return fmt.Sprintf("%s|%+v|%+v|%+v", raw, record.Handoff, record.HandoffRequest, record.StepDown)
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
