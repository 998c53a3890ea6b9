package crelection

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// A manager whose Start is called with a context already done (a pod told
// to stop before its manager got going, e.g. during cache sync) must not
// campaign. The campaign runs on the inner manager's runnable-group
// context, which ends only once the stop procedure reaches it, not on
// Start's; it once took the lock and started its controllers all the same.
func TestCampaignStartWithDoneContextTakesNoLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := electiontest.New("ns", "lock")
		mgr := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))
		work := newProbe("work", nil)
		_ = mgr.Add(work)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := mgr.Start(ctx); err != nil {
			t.Fatalf("Start with a done context: %v; want nil", err)
		}
		holder, _, _ := e.Holder(t.Context())
		if work.isStarted() || holder != "" {
			t.Fatalf("Start was called with a context already done, yet the manager took the lock (holder %q) and started its runnable (%v)",
				holder, work.isStarted())
		}
	})
}

// The same with a higher key: the stopping manager must not ask the healthy
// leader for the lock, which would stop its work and hand it over to a
// manager that has already returned from Start, leaving the lock with
// nobody working until it expires.
func TestCampaignStartWithDoneContextAsksNoLeaderToHandOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e := electiontest.New("ns", "lock")
		rev1, err := e.Start(ctx, e.Config("rev-1", "rev-1"), false)
		if err != nil {
			t.Fatal(err)
		}
		rev1Term, err := rev1.WaitLeading(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		lec := electionConfig(e, "rev-2", "rev-2")
		lec.KeyComparison = func(holderKey string) bool { return holderKey == "rev-1" }
		mgr := newTestManager(t, lec)
		_ = mgr.Add(newProbe("rev-2 work", nil))
		stopping, stop := context.WithCancel(ctx)
		stop()
		if err := mgr.Start(stopping); err != nil {
			t.Fatalf("Start with a done context: %v; want nil", err)
		}
		// Whatever rev-2 left in the lock, rev-1 acts on it within a few
		// renewals.
		e.Advance(5 * time.Second)
		synctest.Wait()
		if rev1Term.Err() != nil {
			holder, _, _ := e.Holder(ctx)
			t.Fatalf("a manager started with a context already done preempted the healthy leader rev-1 (holder now %q)", holder)
		}
		cancel()
		<-rev1.Done()
	})
}
