// Package electiontest lets a test drive an election around the code under
// test, without an API server and without waiting in real time: make a
// replica lead, have a higher key take the lock from it, cut it off until
// its lease is lost, show it a new leader.
//
// An Election keeps one Lease lock in client-go's stock fake clientset and
// gives every replica it starts a fake clock. A replica is an ordinary
// k8sleaderelection elector running the test's callbacks; a Replica value
// lets the test wait for those callbacks, so nothing sleeps.
//
// Waits end on the callbacks themselves, so a test is exact about what
// happened. Inside a testing/synctest bubble (synctest.Test), synctest.Wait
// between steps also makes it exact about when.
package electiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Timings of the configs Config returns: the core components' defaults.
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// MaxAdvance is how far AdvanceUntil moves the clock at most: the longest
// lease the elector accepts.
const MaxAdvance = k8sleaderelection.MaxLeaseDuration

// Election is one election held in memory: a Lease lock in a fake
// clientset, and the fake clock its replicas wait on.
type Election struct {
	// Client holds the lock. Tests may read it, or add reactors to it.
	Client *fake.Clientset
	// Clock is the clock of every replica started by Start. Advance steps
	// it.
	Clock *clocktesting.FakeClock

	namespace, name string

	mu  sync.Mutex
	cut map[string]*cutOff // by identity
}

// New returns an election for a Lease called name in namespace, with no
// holder yet, and a fake clock set to a fixed instant.
func New(namespace, name string) *Election {
	return &Election{
		Client:    fake.NewClientset(),
		Clock:     clocktesting.NewFakeClock(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)),
		namespace: namespace,
		name:      name,
		cut:       map[string]*cutOff{},
	}
}

// Lock returns a Lease lock of the election for the replica called
// identity, with key. Its requests fail while the replica is cut off.
func (e *Election) Lock(identity, key string) *rl.LeaseLock {
	return &rl.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.namespace, Name: e.name},
		Client:     &cuttableClient{CoordinationV1Interface: e.Client.CoordinationV1(), cut: e.cutOffOf(identity)},
		LockConfig: rl.ResourceLockConfig{Identity: identity, Key: key},
	}
}

// Config returns a valid config for the replica called identity, with key:
// the election's lock, its clock, the timings above, and callbacks that do
// nothing. Set the callbacks and KeyComparison the code under test uses.
func (e *Election) Config(identity, key string) k8sleaderelection.LeaderElectionConfig {
	return k8sleaderelection.LeaderElectionConfig{
		Lock:          e.Lock(identity, key),
		LeaseDuration: LeaseDuration,
		RenewDeadline: RenewDeadline,
		RetryPeriod:   RetryPeriod,
		Clock:         e.Clock,
		Name:          e.name,
		Callbacks: k8sleaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	}
}

// Hold writes the lock as held by identity with key, as another replica
// (one the test does not run) that took it over would: for a replica under
// test, a new leader, or a steal by a higher key. The lease restarts.
func (e *Election) Hold(ctx context.Context, identity, key string) error {
	if identity == "" {
		return errors.New("electiontest: Hold needs a holder identity; use Release to free the lock")
	}
	return e.write(ctx, func(r *rl.LeaderElectionRecord) {
		if r.HolderIdentity != identity {
			r.LeaderTransitions++
			r.AcquireTime = metav1.NewTime(e.Clock.Now())
		}
		r.HolderIdentity, r.HolderKey = identity, key
		r.LeaseDurationSeconds = int(LeaseDuration / time.Second)
		r.Handoff, r.HandoffRequest = rl.HandoffOffer{}, rl.HandoffRequest{}
	})
}

// Release writes the lock free, as a holder that releases it does.
func (e *Election) Release(ctx context.Context) error {
	return e.write(ctx, func(r *rl.LeaderElectionRecord) {
		r.HolderIdentity, r.HolderKey = "", ""
		r.LeaseDurationSeconds = 1
		r.Handoff, r.HandoffRequest = rl.HandoffOffer{}, rl.HandoffRequest{}
	})
}

// Holder returns the identity and key the lock names now; empty if it is
// free or does not exist yet.
func (e *Election) Holder(ctx context.Context) (identity, key string, err error) {
	lease, err := e.Client.CoordinationV1().Leases(e.namespace).Get(ctx, e.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("electiontest: read the lock: %w", err)
	}
	r := rl.LeaseToLeaderElectionRecord(lease)
	return r.HolderIdentity, r.HolderKey, nil
}

// write changes the lock's record with change, creating the lock if needed.
func (e *Election) write(ctx context.Context, change func(*rl.LeaderElectionRecord)) error {
	leases := e.Client.CoordinationV1().Leases(e.namespace)
	lease, err := leases.Get(ctx, e.name, metav1.GetOptions{})
	create := apierrors.IsNotFound(err)
	switch {
	case create:
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: e.namespace, Name: e.name}}
	case err != nil:
		return fmt.Errorf("electiontest: read the lock: %w", err)
	}
	lock := &rl.LeaseLock{LeaseMeta: lease.ObjectMeta, Client: e.Client.CoordinationV1()}
	record := rl.LeaseToLeaderElectionRecord(lease)
	change(record)
	now := metav1.NewMicroTime(e.Clock.Now())
	record.RenewTime = metav1.NewTime(now.Time)
	if record.AcquireTime.IsZero() {
		record.AcquireTime = metav1.NewTime(now.Time)
	}
	if create {
		err = lock.Create(ctx, *record)
	} else {
		if _, _, err = lock.Get(ctx); err == nil {
			err = lock.Update(ctx, *record)
		}
	}
	if err != nil {
		return fmt.Errorf("electiontest: write the lock: %w", err)
	}
	return nil
}

// Advance moves the election's clock on by d, firing every timer due.
func (e *Election) Advance(d time.Duration) { e.Clock.Step(d) }

// AdvanceUntil moves the election's clock on, a second at a time, until
// cond holds, and fails if ctx ends first, or once the clock has moved on
// by MaxAdvance (whatever an election does, it has done by then). Between
// two steps it lets the replicas react (a millisecond of real time; none
// inside a testing/synctest bubble); each step fires the timers due.
func (e *Election) AdvanceUntil(ctx context.Context, cond func() bool) error {
	start := e.Clock.Now()
	for !cond() {
		if moved := e.Clock.Since(start); moved > MaxAdvance {
			return fmt.Errorf("electiontest: the condition still does not hold after %v on the election's clock", moved)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("electiontest: advancing the clock: %w", context.Cause(ctx))
		case <-time.After(time.Millisecond):
			e.Clock.Step(time.Second)
		}
	}
	return nil
}

// LoseLease makes the replica, which must be leading, lose its lease: it is
// cut off from the API server and the clock moves on until its term is
// over (RenewDeadline after its last renewal), then it is reconnected. The
// lock still names it: for the other replicas, its lease runs out
// LeaseDuration after its last renewal.
func (e *Election) LoseLease(ctx context.Context, r *Replica) error {
	r.mu.Lock()
	var term context.Context
	if len(r.terms) > 0 {
		term = r.terms[len(r.terms)-1]
	}
	r.mu.Unlock()
	if term == nil || term.Err() != nil {
		return fmt.Errorf("electiontest: LoseLease: %s is not leading", r.identity)
	}
	e.CutOff(r.identity)
	defer e.Reconnect(r.identity)
	return e.AdvanceUntil(ctx, func() bool { return term.Err() != nil })
}
