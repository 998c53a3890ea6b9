package k8sresourcelock

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// holder reads as UnknownLeader: nobody can tell whose lease or key counts,
// so candidates wait for it to expire and never preempt it. When either
// record cannot be decoded, Get returns an error wrapping ErrInvalidRecord,
// having read both, so that an Update can still write over both. The raw
// bytes cover both locks, so a renewal of either counts as a change.
func (ml *MultiLock) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	if err := ml.usable(); err != nil {
		return nil, nil, err
	}
	primary, primaryRaw, primaryErr := ml.Primary.Get(ctx)
	switch {
	case primaryErr != nil && !errors.Is(primaryErr, ErrInvalidRecord):
		return nil, primaryRaw, primaryErr
	case primaryErr == nil && primary == nil:
		return nil, primaryRaw, fmt.Errorf("multilock %s: Primary's Get returned neither a record nor an error", ml.Describe())
	}
	secondary, secondaryRaw, err := ml.Secondary.Get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return primary, primaryRaw, primaryErr
	case err != nil:
		return nil, ConcatRawRecord(primaryRaw, secondaryRaw), err
	case secondary == nil:
		return nil, primaryRaw, fmt.Errorf("multilock %s: Secondary's Get returned neither a record nor an error", ml.Describe())
	case primaryErr != nil:
		return nil, ConcatRawRecord(primaryRaw, secondaryRaw), primaryErr
	}
	if primary.HolderIdentity != secondary.HolderIdentity {
		primary.HolderIdentity = UnknownLeader
		if primaryRaw, err = encodeRecord(primary); err != nil {
			return nil, nil, fmt.Errorf("multilock %s: encode leader record: %w", ml.Describe(), err)
		}
	}
	return primary, ConcatRawRecord(primaryRaw, secondaryRaw), nil
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
	return ml.Secondary.Create(ctx, ler)
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
	err := ml.Secondary.Update(ctx, ler)
	if err == nil || apierrors.IsConflict(err) {
		return err
	}
	if _, _, getErr := ml.Secondary.Get(ctx); !apierrors.IsNotFound(getErr) {
		// It exists (someone made it meanwhile) or cannot be read: the
		// next attempt decides with what is there.
		return err
	}
	return ml.Secondary.Create(ctx, ler)
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
// without a Primary.
func (ml *MultiLock) Key() string {
	if isNil(ml.Primary) {
		return ""
	}
	return ml.Primary.Key()
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
