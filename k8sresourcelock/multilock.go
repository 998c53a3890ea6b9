package k8sresourcelock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

// UnknownLeader is the holder MultiLock.Get reports when its two locks name
// different holders: a candidate then waits for the lease to expire rather
// than trust either.
const UnknownLeader = "leaderelection.k8s.io/unknown"

// MultiLock keeps two locks in step during a migration from one lock kind to
// another: candidates on the old kind read only Primary, migrated ones read
// and write both. Once every candidate runs with MultiLock, the next rollout
// can switch them to Secondary alone.
type MultiLock struct {
	// Primary is the lock kind the fleet migrates from; it decides.
	Primary Interface
	// Secondary is the lock kind the fleet migrates to.
	Secondary Interface

	// What each half last read or was applied, so that an event about one
	// half can be judged with the other.
	primary, secondary half
}

// half is what one of a MultiLock's locks last returned.
type half struct {
	record *LeaderElectionRecord
	raw    []byte
	err    error
}

// Validate reports a MultiLock with a missing half, or a half that reports
// itself badly built.
func (ml *MultiLock) Validate() error {
	var errs []error
	for _, half := range []struct {
		name string
		lock Interface
	}{{"Primary", ml.Primary}, {"Secondary", ml.Secondary}} {
		if isNil(half.lock) {
			errs = append(errs, fmt.Errorf("multilock: %s must not be nil (got %T)", half.name, half.lock))
			continue
		}
		if v, ok := half.lock.(Validator); ok {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("multilock %s: %w", half.name, err))
			}
		}
	}
	return joinErrors(errs)
}

// Get returns Primary's record. While the Secondary does not exist, the
// Primary's record stands alone: it is either held by a candidate that has
// not migrated, or by us from before the migration, in which case our next
// Update creates the Secondary. When the two name different holders, the
// holder reads as UnknownLeader, with the longer of the two leases: nobody can
// tell whose lease or key counts, so candidates wait for it to expire and
// never preempt it. When either
// record cannot be decoded, Get returns an error wrapping ErrInvalidRecord,
// having read both, so that an Update can still write over both. The raw
// bytes cover both locks, so a renewal of either counts as a change.
func (ml *MultiLock) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	if err := ml.usable(); err != nil {
		return nil, nil, err
	}
	ml.primary = readHalf(ml.Primary.Get(ctx))
	if ml.primary.err != nil && !errors.Is(ml.primary.err, ErrInvalidRecord) {
		return nil, ml.primary.raw, ml.primary.err
	}
	ml.secondary = readHalf(ml.Secondary.Get(ctx))
	return ml.combine()
}

func readHalf(record *LeaderElectionRecord, raw []byte, err error) half {
	return half{record: record, raw: raw, err: err}
}

// combine judges the two halves as last read; see Get.
func (ml *MultiLock) combine() (*LeaderElectionRecord, []byte, error) {
	p, s := ml.primary, ml.secondary
	switch {
	case p.err != nil && !errors.Is(p.err, ErrInvalidRecord):
		return nil, p.raw, p.err
	case p.err == nil && p.record == nil:
		return nil, p.raw, fmt.Errorf("multilock %s: Primary's Get returned neither a record nor an error", ml.Describe())
	case apierrors.IsNotFound(s.err) && p.err != nil:
		return nil, p.raw, p.err
	case apierrors.IsNotFound(s.err):
		record := *p.record
		return &record, p.raw, nil
	case s.err != nil:
		return nil, ConcatRawRecord(p.raw, s.raw), s.err
	case s.record == nil:
		return nil, p.raw, fmt.Errorf("multilock %s: Secondary's Get returned neither a record nor an error", ml.Describe())
	case p.err != nil:
		return nil, ConcatRawRecord(p.raw, s.raw), p.err
	}
	record, primaryRaw := *p.record, p.raw
	if record.HandoffRequest == (HandoffRequest{}) {
		// A candidate that uses the Secondary alone asks there.
		record.HandoffRequest = s.record.HandoffRequest
	}
	// An operator may have asked on the Lease alone.
	record.StepDown = laterStepDown(record.StepDown, s.record.StepDown)
	if record.HolderIdentity != s.record.HolderIdentity {
		// Nobody can tell whose lease counts, so the longer one does:
		// a half just released (a one-second lease) must not cut short
		// the holder of the other.
		record.HolderIdentity = UnknownLeader
		record.LeaseDurationSeconds = max(record.LeaseDurationSeconds, s.record.LeaseDurationSeconds)
		var err error
		if primaryRaw, err = encodeRecord(&record); err != nil {
			return nil, nil, fmt.Errorf("multilock %s: encode leader record: %w", ml.Describe(), err)
		}
	}
	return &record, ConcatRawRecord(primaryRaw, s.raw), nil
}

// Watch watches both locks, if both can be watched; see Watcher.
func (ml *MultiLock) Watch(ctx context.Context) (watch.Interface, error) {
	if err := ml.usable(); err != nil {
		return nil, err
	}
	primary, ok1 := ml.Primary.(Watcher)
	secondary, ok2 := ml.Secondary.(Watcher)
	if !ok1 || !ok2 {
		return ml.unwatchable(ctx)
	}
	pw, err := primary.Watch(ctx)
	if err != nil {
		return nil, err
	}
	sw, err := secondary.Watch(ctx)
	if err != nil {
		pw.Stop()
		return nil, err
	}
	return newRelay(func(watch.Event) bool { return true }, pw, sw), nil
}

// PrepareWatch notes the states both locks' watches resume from and returns
// what opens them; see WatchStarter. It returns nil unless both halves are
// WatchStarters.
func (ml *MultiLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	if err := ml.usable(); err != nil {
		return func(context.Context) (watch.Interface, error) { return nil, err }
	}
	if _, ok := ml.Primary.(Watcher); !ok {
		return ml.unwatchable
	}
	if _, ok := ml.Secondary.(Watcher); !ok {
		return ml.unwatchable
	}
	primary, ok1 := ml.Primary.(WatchStarter)
	secondary, ok2 := ml.Secondary.(WatchStarter)
	if !ok1 || !ok2 {
		return nil
	}
	openPrimary, openSecondary := primary.PrepareWatch(), secondary.PrepareWatch()
	if openPrimary == nil || openSecondary == nil {
		return nil
	}
	return func(ctx context.Context) (watch.Interface, error) {
		pw, err := openPrimary(ctx)
		if err != nil {
			return nil, err
		}
		sw, err := openSecondary(ctx)
		if err != nil {
			pw.Stop()
			return nil, err
		}
		return newRelay(func(watch.Event) bool { return true }, pw, sw), nil
	}
}

// unwatchable is the error Watch gives for a MultiLock with a half that
// cannot be watched.
func (ml *MultiLock) unwatchable(context.Context) (watch.Interface, error) {
	return nil, fmt.Errorf("multilock %s: %T and %T cannot both be watched: %w", ml.Describe(), ml.Primary, ml.Secondary, errors.ErrUnsupported)
}

// Apply takes an event of Watch, about either lock, as that lock's latest
// state and judges it with the other as last seen; see Watcher.
func (ml *MultiLock) Apply(ev watch.Event) (*LeaderElectionRecord, []byte, error) {
	if err := ml.usable(); err != nil {
		return nil, nil, err
	}
	primary, ok1 := ml.Primary.(Watcher)
	secondary, ok2 := ml.Secondary.(Watcher)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("multilock %s: cannot apply watch events: %w", ml.Describe(), errors.ErrUnsupported)
	}
	if h := readHalf(primary.Apply(ev)); !errors.Is(h.err, errNotThisLock) {
		ml.primary = h
	} else if h := readHalf(secondary.Apply(ev)); !errors.Is(h.err, errNotThisLock) {
		ml.secondary = h
	} else {
		return nil, nil, h.err
	}
	return ml.combine()
}

// Create creates both locks holding ler. It is called when Get found no
// Primary. A Primary that exists by now was created by another candidate a
// moment ago: we lost the race, and Create fails with AlreadyExists and writes
// nothing.
func (ml *MultiLock) Create(ctx context.Context, ler LeaderElectionRecord) error {
	if err := ml.usable(); err != nil {
		return err
	}
	if err := ml.Primary.Create(ctx, ler); err != nil {
		return err
	}
	ml.primary = wroteHalf(ler)
	if err := ml.Secondary.Create(ctx, ler); err != nil {
		return err
	}
	ml.secondary = wroteHalf(ler)
	return nil
}

// wroteHalf is what a half holds after a write of ler.
func wroteHalf(ler LeaderElectionRecord) half {
	raw, err := encodeRecord(&ler)
	return half{record: &ler, raw: raw, err: err}
}

// Update writes ler to both locks, each over the copy it last read or wrote,
// so a renewal costs two writes and no reads. A Conflict on either is
// returned, never written over: someone else wrote that lock (in a
// migration, a candidate that uses the Secondary alone may have taken it),
// and the elector must read both and decide again. Only a Secondary that was
// never read, or is gone, is read here, and created if it is missing.
func (ml *MultiLock) Update(ctx context.Context, ler LeaderElectionRecord) error {
	if err := ml.usable(); err != nil {
		return err
	}
	if err := ml.Primary.Update(ctx, ler); err != nil {
		return err
	}
	ml.primary = wroteHalf(ler)
	err := ml.Secondary.Update(ctx, ler)
	switch {
	case err == nil:
	case apierrors.IsConflict(err):
		return err
	default:
		if _, _, getErr := ml.Secondary.Get(ctx); !apierrors.IsNotFound(getErr) {
			// It exists (someone made it meanwhile) or cannot be read:
			// the next attempt decides with what is there.
			return err
		}
		if err := ml.Secondary.Create(ctx, ler); err != nil {
			return err
		}
	}
	ml.secondary = wroteHalf(ler)
	return nil
}

// ResourceVersion returns the resourceVersions of both locks, joined, so that
// a write to either changes it. It is "" unless both halves are Versioned, so
// that the elector then compares the bytes of both records instead.
func (ml *MultiLock) ResourceVersion() string {
	if ml.usable() != nil {
		return ""
	}
	primary, ok1 := ml.Primary.(Versioned)
	secondary, ok2 := ml.Secondary.(Versioned)
	if !ok1 || !ok2 || primary.ResourceVersion() == "" {
		return ""
	}
	return primary.ResourceVersion() + "," + secondary.ResourceVersion()
}

// RecordEvent records event s on both locks.
func (ml *MultiLock) RecordEvent(s string) {
	if ml.usable() != nil {
		return
	}
	ml.Primary.RecordEvent(s)
	ml.Secondary.RecordEvent(s)
}

// Describe names the Primary lock, or says that there is none.
func (ml *MultiLock) Describe() string {
	if isNil(ml.Primary) {
		return "multilock without a Primary"
	}
	return ml.Primary.Describe()
}

// Identity returns this candidate's identity, as the Primary knows it; ""
// without a Primary.
func (ml *MultiLock) Identity() string {
	if isNil(ml.Primary) {
		return ""
	}
	return ml.Primary.Identity()
}

// Key returns this candidate's priority key, as the Primary knows it; ""
// without a Primary, or when the Primary is not Keyed.
func (ml *MultiLock) Key() string {
	if isNil(ml.Primary) {
		return ""
	}
	if keyed, ok := ml.Primary.(Keyed); ok {
		return keyed.Key()
	}
	return ""
}

// usable reports a missing half, which would otherwise panic on first use.
func (ml *MultiLock) usable() error {
	if isNil(ml.Primary) || isNil(ml.Secondary) {
		return fmt.Errorf("multilock: Primary (%T) and Secondary (%T) must both be set", ml.Primary, ml.Secondary)
	}
	return nil
}

// ConcatRawRecord joins the raw records of a MultiLock's two locks into the
// one value its Get returns.
func ConcatRawRecord(primaryRaw, secondaryRaw []byte) []byte {
	return bytes.Join([][]byte{primaryRaw, secondaryRaw}, []byte(","))
}

// laterStepDown is the step-down request of the two halves to act on: the
// one requested later. Every writer of the elector writes both halves alike;
// an operator's tool writes its request into one of them, over whatever an
// earlier one left there (a note whose time out has run, which the other
// half still carries until the holder writes again), and that older note
// must not hide the newer request. A time that cannot be read counts as the
// earliest; on a tie the Primary's stands.
func laterStepDown(primary, secondary StepDownRequest) StepDownRequest {
	if secondary == (StepDownRequest{}) {
		return primary
	}
	if primary == (StepDownRequest{}) {
		return secondary
	}
	requested := func(r StepDownRequest) time.Time {
		t, err := time.Parse(time.RFC3339, r.RequestedAt)
		if err != nil {
			return time.Time{}
		}
		return t
	}
	if requested(secondary).After(requested(primary)) {
		return secondary
	}
	return primary
}
