package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// ErrHoldingOff is returned, wrapped, to an election's elector that would
// take over a lease that ran out while another member owns the election:
// the owner takes it, so that it moves once. The elector reads it as a
// failed attempt and tries again a RetryPeriod later, by when the owner
// has taken it, or the hold-off is over and any member may.
var ErrHoldingOff = errors.New("holding off: the election's owner takes it over")

// rankedLock is a Lease lock whose key is the candidate's current one: the
// elector reads Key() for each write and each comparison, so a change of
// the mark reaches the lock with the holder's next renewal, and its
// follower's next decision, with no restart. It also keeps the holder of
// the state last read, delivered or written, so that it can tell a write
// that takes the lock over from another holder.
type rankedLock struct {
	*rl.LeaseLock
	candidate *candidate
	group     *member

	mu        sync.Mutex
	holder    string
	holderKey string
	// renewed is the renew time of the state last seen: with the holder,
	// it tells one run-out lease from the next.
	renewed time.Time
	// heldOff is the run-out state (its holder and renew time) we hold
	// off taking over, and heldOffSince when we first did.
	heldOff      runOut
	heldOffSince time.Time
}

// runOut is a state of the lock whose lease ran out: its holder, and when
// that holder last renewed it.
type runOut struct {
	holder  string
	renewed time.Time
}

// Key returns the key the candidate campaigns with now.
func (l *rankedLock) Key() string { return l.candidate.currentKey() }

// Get reads the Lease, noting its holder.
func (l *rankedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	record, raw, err := l.LeaseLock.Get(ctx)
	l.saw(record, err)
	return record, raw, err
}

// GetShared takes the Lease's state from the shared watch of its namespace,
// noting its holder as Get does: a candidate's first look may come from
// there instead of a read (see rl.SharedReader).
func (l *rankedLock) GetShared() (*rl.LeaderElectionRecord, []byte, error, bool) {
	record, raw, err, ok := l.LeaseLock.GetShared()
	if ok {
		l.saw(record, err)
	}
	return record, raw, err, ok
}

// Apply takes a watch event as the Lease's latest state, noting its holder.
func (l *rankedLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	record, raw, err := l.LeaseLock.Apply(ev)
	if err == nil || apierrors.IsNotFound(err) {
		l.saw(record, err)
	}
	return record, raw, err
}

// Create creates the Lease; a lock nobody held is no takeover.
func (l *rankedLock) Create(ctx context.Context, ler rl.LeaderElectionRecord) error {
	err := l.LeaseLock.Create(ctx, ler)
	if err == nil {
		l.saw(&ler, nil)
	}
	return err
}

// Update writes ler over the Lease last seen. A write that takes the lock
// over from another holder is first checked by the group (mayTakeOver).
func (l *rankedLock) Update(ctx context.Context, ler rl.LeaderElectionRecord) error {
	l.mu.Lock()
	holder, holderKey := l.holder, l.holderKey
	l.mu.Unlock()
	if ler.HolderIdentity == l.Identity() && holder != "" && holder != l.Identity() {
		if err := l.group.mayTakeOver(l, holder, holderKey); err != nil {
			return err
		}
	}
	err := l.LeaseLock.Update(ctx, ler)
	if err == nil {
		l.saw(&ler, nil)
	}
	return err
}

// saw notes the holder of a state of the Lease; one we could not read names
// nobody we could take it from.
func (l *rankedLock) saw(record *rl.LeaderElectionRecord, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder, l.holderKey, l.renewed = "", "", time.Time{}
	if err == nil && record != nil {
		l.holder, l.holderKey, l.renewed = record.HolderIdentity, record.HolderKey, record.RenewTime.Time
	}
}

// holdingOffSince returns when we began to hold off taking the lock over
// from holder: now, unless we already held off for the same run-out state.
// A holder that renews the lease again (it came back, or was only slow) and
// lets it run out once more is held off for afresh: holding off from the
// first time would let every member take it at once the second time.
func (l *rankedLock) holdingOffSince(holder string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	state := runOut{holder: holder, renewed: l.renewed}
	if l.heldOff.holder != state.holder || !l.heldOff.renewed.Equal(state.renewed) {
		l.heldOff, l.heldOffSince = state, now
	}
	return l.heldOffSince
}

// mayTakeOver decides whether our elector may take the lock of l over from
// holder. Only two kinds of write take a held lock over: a preemption, by
// a member that asks for the election (its settled view gives it to us and
// our key outranks the holder's), which goes ahead; and the take-over of a
// lease that ran out unrenewed. A holder whose lease ran out is gone for
// the assignment at once (membership.ranOut), without waiting for its
// member Lease to run out too, and the member that the assignment without
// it names takes the lease: it finds it run out at the same moment we do,
// up to the watch's latency, since we all saw its last renewal. The others
// hold off for the hold-off time (RetryPeriod) from when they first found
// it run out, and then take it as before, so that an owner that is dead
// or slow too cannot leave the election without a leader. Safety does not
// rest on this: each election is one lock, and holding off only withholds
// a write.
func (g *member) mayTakeOver(l *rankedLock, holder, holderKey string) error {
	if keyOutranks(g.config.Outranks, l.candidate.currentKey(), holderKey) {
		return nil
	}
	now := g.clock.Now()
	g.members.ranOut(holder, now)
	owner := g.assignment(now)[l.candidate.name]
	if owner == g.config.Identity {
		return nil
	}
	since := l.holdingOffSince(holder, now)
	if until := since.Add(g.holdOff()); now.Before(until) {
		// The same words on every retry of one hold-off, so that the
		// elector logs it once at error level, not on each attempt.
		return fmt.Errorf("election %s: lease of %s ran out; owner %q takes it over, others from %s: %w",
			l.candidate.name, holder, owner, until.UTC().Format("15:04:05.000"), ErrHoldingOff)
	}
	return nil
}

// holdOff is how long a member that does not own an election whose lease
// ran out leaves it to the owner: one RetryPeriod, the pace at which an
// elector already looks at a lock it cannot watch. The owner watches the
// same lease and finds it run out when we do; a failed attempt is tried
// again after a jittered RetryPeriod, no sooner than the hold-off ends.
func (g *member) holdOff() time.Duration { return g.config.RetryPeriod }
