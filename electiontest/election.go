// Package electiontest lets a test drive an election around the code under
// test, without an API server and without waiting in real time: make a
// replica lead, have a higher key take the lock over from it (a handoff, as
// one of this library would ask for), cut it off until its lease is lost,
// show it a new leader.
//
// An Election keeps one Lease lock in client-go's stock fake clientset, made
// to refuse a stale write as an API server does, and gives every replica it
// starts a fake clock. A replica is an ordinary
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
	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
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
	// Client holds the lock. It is client-go's stock fake, made to refuse
	// an update over a stale resourceVersion with a Conflict, as an API
	// server does, so that two replicas that race for the lock never both
	// win. Tests may read it, or add reactors to it before they start
	// replicas.
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
		Client:    fakekube.Wrap(fake.NewClientset()).Clientset,
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

// Hold makes the replica called identity, with key, hold the lock: one the
// test does not run, such as a new leader, or a higher key taking over from
// the replica under test. It takes the lock as such a replica of this
// library would:
//   - a lock that is absent, free, already held by identity, or held by a
//     holder that makes no handoff offer (a replica started with
//     DisableHandoff, one of Istio's fork or client-go, or a holder written
//     by Hold), is written over at once;
//   - from a holder that offers a handoff (every replica Start runs, by
//     default) it asks for the lock, as a candidate whose key outranks the
//     holder's does, and moves the election's clock on as AdvanceUntil does
//     while the holder stops its work (its term's context is cancelled,
//     OnStartedLeading returns, OnStoppedLeading runs) and writes the lock
//     over to identity. The holder's term is over before identity leads:
//     the two never lead at once. A holder that has not handed over within
//     the time its offer states (its work ignores its context, or it is cut
//     off) has the lock taken then, as a real candidate would: a steal,
//     with its work still running.
//
// Hold returns once the lock names identity; the lease restarts. It fails
// if ctx ends first, or once it has moved the clock on by MaxAdvance.
func (e *Election) Hold(ctx context.Context, identity, key string) error {
	if identity == "" {
		return errors.New("electiontest: Hold needs a holder identity; use Release to free the lock")
	}
	take := func(r *rl.LeaderElectionRecord) {
		if r.HolderIdentity != identity {
			r.LeaderTransitions++
			r.AcquireTime = metav1.NewTime(e.Clock.Now())
		}
		r.HolderIdentity, r.HolderKey = identity, key
		r.LeaseDurationSeconds = int(LeaseDuration / time.Second)
		r.Handoff, r.HandoffRequest = rl.HandoffOffer{}, rl.HandoffRequest{}
	}
	start := e.Clock.Now()
	var asked rl.HandoffRequest // the request written, in its holder's term
	var answerBy time.Time
	for {
		lock, record, exists, err := e.read(ctx)
		if err != nil {
			return err
		}
		if askedNow := (rl.HandoffRequest{To: record.HolderIdentity, Term: record.LeaderTransitions}); asked.To != askedNow.To || asked.Term != askedNow.Term {
			// A new holder or a new term: its time to answer starts
			// with our first request to it.
			asked, answerBy = askedNow, time.Time{}
		}
		handedOver := !answerBy.IsZero() && record.HolderIdentity == identity
		timedOut := !answerBy.IsZero() && !e.Clock.Now().Before(answerBy)
		_, offerStands := k8sleaderelection.StandingOffer(record)
		request, pending := k8sleaderelection.PendingHandoff(record)
		switch {
		case handedOver:
			return nil
		case !exists || record.HolderIdentity == "" || record.HolderIdentity == identity || !offerStands || timedOut:
			take(record)
			err = e.put(ctx, lock, exists, record)
			if err == nil {
				return nil
			}
		case !pending || request.HolderIdentity != identity:
			record.HandoffRequest = rl.HandoffRequest{
				To: record.HolderIdentity, Term: record.LeaderTransitions,
				HolderIdentity: identity, HolderKey: key, LeaseDurationSeconds: int(LeaseDuration / time.Second),
			}
			asking := e.Clock.Now()
			err = e.put(ctx, lock, exists, record)
			if err == nil && answerBy.IsZero() {
				answerBy = asking.Add(durations.Seconds(record.Handoff.WithinSeconds))
			}
		default:
			// Asked, and the holder has time left: let it work.
			if moved := e.Clock.Since(start); moved > MaxAdvance {
				return fmt.Errorf("electiontest: Hold: the lock still does not name %s after %v on the election's clock", identity, moved)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("electiontest: Hold: waiting for %s to hand the lock over: %w", record.HolderIdentity, context.Cause(ctx))
			case <-time.After(time.Millisecond):
				e.Clock.Step(time.Second)
			}
		}
		if err != nil && !apierrors.IsConflict(err) {
			return err
		}
	}
}

// Release writes the lock free, as a holder that releases it does. It does
// not wait for anyone: use it for a holder the test does not run.
func (e *Election) Release(ctx context.Context) error {
	for {
		lock, record, exists, err := e.read(ctx)
		if err != nil {
			return err
		}
		record.HolderIdentity, record.HolderKey = "", ""
		record.LeaseDurationSeconds = 1
		record.Handoff, record.HandoffRequest = rl.HandoffOffer{}, rl.HandoffRequest{}
		if err := e.put(ctx, lock, exists, record); !apierrors.IsConflict(err) {
			return err
		}
	}
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

// read returns the lock's record, and a lock to write over exactly the
// state read (an update conflicts if anyone wrote since); exists is false
// when there is no lock yet, and record then empty.
func (e *Election) read(ctx context.Context) (lock *rl.LeaseLock, record *rl.LeaderElectionRecord, exists bool, err error) {
	lock = &rl.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: e.namespace, Name: e.name}, Client: e.Client.CoordinationV1()}
	record, _, err = lock.Get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return lock, &rl.LeaderElectionRecord{}, false, nil
	case err != nil:
		return nil, nil, false, fmt.Errorf("electiontest: read the lock: %w", err)
	}
	return lock, record, true, nil
}

// put writes record over the state lock read, stamped with the election's
// clock; a Conflict (someone wrote since) is returned unwrapped for the
// caller to read again.
func (e *Election) put(ctx context.Context, lock *rl.LeaseLock, exists bool, record *rl.LeaderElectionRecord) error {
	now := e.Clock.Now()
	record.RenewTime = metav1.NewTime(now)
	if record.AcquireTime.IsZero() {
		record.AcquireTime = metav1.NewTime(now)
	}
	var err error
	if exists {
		err = lock.Update(ctx, *record)
	} else {
		err = lock.Create(ctx, *record)
	}
	switch {
	case err == nil, apierrors.IsConflict(err):
		return err
	case apierrors.IsAlreadyExists(err):
		// Created meanwhile: read it again, as after a conflict.
		return apierrors.NewConflict(coordinationv1.Resource("leases"), e.name, err)
	}
	return fmt.Errorf("electiontest: write the lock: %w", err)
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
