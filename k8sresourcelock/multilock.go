package k8sresourcelock

import (
	"bytes"
	"context"
	"encoding/json"
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

// Get returns Primary's record. While the Secondary does not exist yet and
// someone else holds the Primary, that holder is a candidate that has not
// migrated, and Primary's record stands alone. When the two name different
// holders, the holder reads as UnknownLeader: nobody can tell whose lease
// or key counts, so candidates wait for it to expire and never preempt it.
// The raw bytes cover both locks, so a renewal of either counts as a change.
func (ml *MultiLock) Get(ctx context.Context) (*LeaderElectionRecord, []byte, error) {
	primary, primaryRaw, err := ml.Primary.Get(ctx)
	if err != nil {
		return nil, primaryRaw, err
	}
	secondary, secondaryRaw, err := ml.Secondary.Get(ctx)
	if err != nil {
		if apierrors.IsNotFound(err) && primary.HolderIdentity != ml.Identity() {
			return primary, primaryRaw, nil
		}
		return nil, ConcatRawRecord(primaryRaw, secondaryRaw), err
	}
	if primary.HolderIdentity != secondary.HolderIdentity {
		primary.HolderIdentity = UnknownLeader
		if primaryRaw, err = json.Marshal(primary); err != nil {
			return nil, nil, fmt.Errorf("multilock %s: encode leader record: %w", ml.Describe(), err)
		}
	}
	return primary, ConcatRawRecord(primaryRaw, secondaryRaw), nil
}

// Create creates both locks holding ler. Get reports an absent lock also
// when only the Secondary is missing and we hold the Primary (we led before
// the migration); then the Primary already exists and is written instead.
// A Primary that exists because another candidate created it a moment ago
// means we lost the race: Create fails with AlreadyExists and writes nothing.
func (ml *MultiLock) Create(ctx context.Context, ler LeaderElectionRecord) error {
	err := ml.Primary.Create(ctx, ler)
	if apierrors.IsAlreadyExists(err) {
		current, _, getErr := ml.Primary.Get(ctx)
		if getErr != nil {
			return getErr
		}
		if current.HolderIdentity != ml.Identity() {
			return err
		}
		err = ml.Primary.Update(ctx, ler)
	}
	if err != nil {
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

// RecordEvent records event s on both locks.
func (ml *MultiLock) RecordEvent(s string) {
	ml.Primary.RecordEvent(s)
	ml.Secondary.RecordEvent(s)
}

// Describe names the Primary lock.
func (ml *MultiLock) Describe() string {
	return ml.Primary.Describe()
}

// Identity returns this candidate's identity, as the Primary knows it.
func (ml *MultiLock) Identity() string {
	return ml.Primary.Identity()
}

// Key returns this candidate's priority key, as the Primary knows it.
func (ml *MultiLock) Key() string {
	return ml.Primary.Key()
}

// ConcatRawRecord joins the raw records of a MultiLock's two locks into the
// one value its Get returns.
func ConcatRawRecord(primaryRaw, secondaryRaw []byte) []byte {
	return bytes.Join([][]byte{primaryRaw, secondaryRaw}, []byte(","))
}
