package electiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/k8sleaderelection/k8sleaderelection"
)

// Replica is an elector run by Start, with what its callbacks did so far.
type Replica struct {
	// Elector is the running elector.
	Elector *k8sleaderelection.LeaderElector

	identity string
	done     chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every callback
	terms   []context.Context
	stops   int
	leaders []string
}

// Start runs the elector of lec until ctx is done: with RunAndRejoin if
// rejoin is set (it goes back to being a candidate after losing the lock),
// with Run otherwise. lec's callbacks run as given; the Replica records
// them, so the test can wait for them. lec.Clock, if unset, becomes the
// election's clock; a different clock is an error, since Advance would not
// move it.
func (e *Election) Start(ctx context.Context, lec k8sleaderelection.LeaderElectionConfig, rejoin bool) (*Replica, error) {
	if lec.Clock == nil {
		lec.Clock = e.Clock
	}
	if lec.Clock != e.Clock {
		return nil, errors.New("electiontest: lec.Clock is not the election's clock; leave it unset")
	}
	if lec.Lock == nil {
		return nil, errors.New("electiontest: lec.Lock is nil; use the election's Config or Lock")
	}
	// The identity is asked for once NewLeaderElector has checked the
	// lock: a nil pointer in lec.Lock would panic here.
	r := &Replica{done: make(chan struct{}), changed: make(chan struct{})}
	callbacks := lec.Callbacks
	lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
		r.record(func() { r.terms = append(r.terms, ctx) })
		if callbacks.OnStartedLeading != nil {
			callbacks.OnStartedLeading(ctx)
		}
	}
	lec.Callbacks.OnStoppedLeading = func() {
		if callbacks.OnStoppedLeading != nil {
			callbacks.OnStoppedLeading()
		}
		r.record(func() { r.stops++ })
	}
	lec.Callbacks.OnNewLeader = func(identity string) {
		if callbacks.OnNewLeader != nil {
			callbacks.OnNewLeader(identity)
		}
		r.record(func() { r.leaders = append(r.leaders, identity) })
	}
	le, err := k8sleaderelection.NewLeaderElector(lec)
	if err != nil {
		return nil, err
	}
	r.Elector, r.identity = le, lec.Lock.Identity()
	go func() {
		defer close(r.done)
		defer r.record(func() {}) // wake waiters: Run returned
		if rejoin {
			le.RunAndRejoin(ctx)
		} else {
			le.Run(ctx)
		}
	}()
	return r, nil
}

// record changes r under its lock and wakes whoever waits.
func (r *Replica) record(change func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change()
	close(r.changed)
	r.changed = make(chan struct{})
}

// Done is closed when the replica's Run (or RunAndRejoin) has returned.
func (r *Replica) Done() <-chan struct{} { return r.done }

// Terms returns how many times the replica has started leading.
func (r *Replica) Terms() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.terms)
}

// WaitLeading waits until the replica has started leading for the n-th
// time (n counts from 1), and returns that term's context, which is done
// once the term is over. It fails if ctx ends first, or if the replica's
// Run returns without leading that often.
func (r *Replica) WaitLeading(ctx context.Context, n int) (context.Context, error) {
	var term context.Context
	err := r.waitFor(ctx, fmt.Sprintf("%s to start leading (term %d)", r.identity, n), func() bool {
		if len(r.terms) >= n {
			term = r.terms[n-1]
			return true
		}
		return false
	})
	return term, err
}

// WaitStopped waits until OnStoppedLeading has been called n times in all.
func (r *Replica) WaitStopped(ctx context.Context, n int) error {
	return r.waitFor(ctx, fmt.Sprintf("%s's OnStoppedLeading (call %d)", r.identity, n), func() bool { return r.stops >= n })
}

// WaitNewLeader waits until OnNewLeader has reported identity (the empty
// identity: a released lock) after every leader it reported before.
func (r *Replica) WaitNewLeader(ctx context.Context, identity string) error {
	return r.waitFor(ctx, fmt.Sprintf("%s to see %q lead", r.identity, identity), func() bool {
		return len(r.leaders) > 0 && r.leaders[len(r.leaders)-1] == identity
	})
}

// waitFor waits until cond, checked under r's lock, holds.
func (r *Replica) waitFor(ctx context.Context, what string, cond func() bool) error {
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-r.done:
			r.mu.Lock()
			ok = cond()
			r.mu.Unlock()
			if ok {
				return nil
			}
			return fmt.Errorf("electiontest: waiting for %s: the replica's Run returned", what)
		case <-ctx.Done():
			return fmt.Errorf("electiontest: waiting for %s: %w", what, context.Cause(ctx))
		}
	}
}
