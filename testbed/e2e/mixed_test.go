package e2e

import (
	"strings"
	"testing"
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestMixedFleet runs our electors and client-go's side by side on one
// Lease. Each round stops every member of the library that leads, so the
// other library must take over from a lock the first one wrote; the stopped
// members then rejoin and must read the new holder. One leader at a time
// throughout.
func TestMixedFleet(t *testing.T) {
	e := newElection(t)
	opts := map[string]memberOpts{
		"ours-1":     {kind: rl.LeasesResourceLock, release: true},
		"ours-2":     {kind: rl.LeasesResourceLock},
		"upstream-1": {elector: "upstream", release: true},
		"upstream-2": {elector: "upstream"},
	}
	members := map[string]*member{}
	for id, o := range opts {
		members[id] = e.start(id, o)
	}
	library := func(id string) string { return strings.Split(id, "-")[0] }
	for round := range 4 {
		waitFor(t, leaseDuration+2*maxAttemptWait+slack, "one leader", func() bool { return len(e.rec.Leaders()) == 1 })
		leader := e.rec.Leaders()[0]
		from := library(leader)
		for id, m := range members {
			if library(id) == from {
				m.stop()
			}
		}
		waitFor(t, leaseDuration+2*maxAttemptWait+slack, "the other library takes over", func() bool {
			l := e.rec.Leaders()
			return len(l) == 1 && library(l[0]) != from
		})
		next := e.rec.Leaders()[0]
		for id := range members {
			if library(id) == from {
				members[id] = e.start(id, opts[id])
			}
		}
		time.Sleep(maxAttemptWait + slack)
		rec, err := e.record(rl.LeasesResourceLock)
		if err != nil || rec.HolderIdentity != next {
			t.Fatalf("round %d: record %+v, %v; want holder %s", round, rec, err, next)
		}
		for id, m := range members {
			if got := m.leaderSeen(); got != next {
				t.Errorf("round %d: %s reads leader %q, want %q (written by the %s elector)", round, id, got, next, library(next))
			}
		}
	}
	e.rec.assertSafe(t, nil, false)
}
