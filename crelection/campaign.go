package crelection

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection"
)

// campaign is the runnable that runs the election inside the manager. It
// needs no leader election itself, so the manager starts it on every
// replica, once the caches have synced; and the election asks a leader with
// a lower key to hand over only once the runnables' warmups have returned
// (see warmups): a replica preempts only when it can start work at once.
type campaign struct {
	elector *k8sleaderelection.LeaderElector
	term    *term
	logger  logr.Logger
	clock   clock.Clock
	// stopTimeout bounds the wait, after the election ends, for runnables
	// that the election did not wait for (the lock was taken from us).
	stopTimeout time.Duration

	// outer is the context the manager's Start was given. The manager
	// runs its runnables on a context of its own, which ends only once
	// its shutdown reaches them; the election must end as soon as the
	// caller says so, and not begin if it already has.
	mu    sync.Mutex
	outer context.Context
	// began is set once Start runs the election; shut once Start may no
	// longer run it, since the manager's Start is returning.
	began, shut bool
	done        chan struct{} // closed when a Start that began returns
}

// startingWith notes the context the manager's Start was given.
func (c *campaign) startingWith(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outer = ctx
}

func (c *campaign) outerContext() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outer == nil {
		return context.Background()
	}
	return c.outer
}

// begin reports whether Start may run the election: not once settled has
// been asked for.
func (c *campaign) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return false
	}
	c.began = true
	return true
}

// settled returns a channel closed once the election has ended and Start
// has waited for the term's runnables as it does. A campaign that has not
// begun by now never will (the manager is stopping): its channel is closed
// at once, and the term closed, so that nothing is kept for it.
func (c *campaign) settled() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.began && !c.shut {
		c.shut = true
		c.term.close()
		close(c.done)
	}
	c.shut = true
	return c.done
}

// NeedLeaderElection reports false: the election runs on every replica.
func (c *campaign) NeedLeaderElection() bool { return false }

// Start runs the election until ctx is done or this manager's term is over.
// It returns nil on a clean shutdown, the error of a runnable that failed
// during the term, and ErrLeadershipLost when the election ended the term.
func (c *campaign) Start(ctx context.Context) error {
	if !c.begin() {
		return nil
	}
	defer close(c.done)
	ctx = klog.NewContext(ctx, c.logger)
	outer := c.outerContext()
	if outer.Err() != nil {
		// Told to stop before the election began: take no lock.
		c.term.close()
		return nil
	}
	runCtx, abort := context.WithCancel(ctx)
	defer abort()
	defer context.AfterFunc(outer, abort)()
	c.term.onAbort(abort)
	c.elector.Run(runCtx)
	c.term.close()
	if !c.term.awaitRunnables(c.clock, c.stopTimeout) {
		c.logger.Error(nil, "Runnables that need leader election still run after the term ended; leaving them to the process's exit",
			"waited", c.stopTimeout)
	}
	if err := c.term.err(); err != nil {
		return err
	}
	if ctx.Err() != nil || outer.Err() != nil {
		return nil
	}
	return ErrLeadershipLost
}
