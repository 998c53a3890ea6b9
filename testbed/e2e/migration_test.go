package e2e

import (
	"slices"
	"testing"
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestMigration rolls a fleet of three from ConfigMaps to ConfigMaps+Leases
// to Leases, one member at a time, as rolling restarts do. Two members never
// lead at once, and a leader exists again soon after each restart.
func TestMigration(t *testing.T) {
	for _, from := range []string{rl.ConfigMapsResourceLock, rl.EndpointsResourceLock} {
		t.Run(from, func(t *testing.T) {
			via := map[string]string{
				rl.ConfigMapsResourceLock: rl.ConfigMapsLeasesResourceLock,
				rl.EndpointsResourceLock:  rl.EndpointsLeasesResourceLock,
			}[from]
			e := newElection(t)
			ids := []string{"a", "b", "c"}
			members := map[string]*member{}
			for _, id := range ids {
				members[id] = e.start(id, memberOpts{kind: from, release: true})
			}
			waitFor(t, leaseDuration+maxAttemptWait+slack, "a first leader", func() bool { return len(e.rec.Leaders()) == 1 })
			for _, kind := range []string{via, rl.LeasesResourceLock} {
				for _, id := range ids {
					members[id].stop()
					waitFor(t, slack, "the stopped member's tenure ends", func() bool { return !slices.Contains(e.rec.Leaders(), id) })
					members[id] = e.start(id, memberOpts{kind: kind, release: true})
					waitFor(t, 2*leaseDuration+2*maxAttemptWait+slack, "a leader during the rollout", func() bool { return len(e.rec.Leaders()) == 1 })
					time.Sleep(retryPeriod)
				}
			}
			time.Sleep(2 * retryPeriod)
			leaders := e.rec.Leaders()
			rec, err := e.record(rl.LeasesResourceLock)
			if len(leaders) != 1 || err != nil || rec.HolderIdentity != leaders[0] {
				t.Fatalf("after the migration: leaders %v, lease %+v, %v", leaders, rec, err)
			}
			e.rec.assertSafe(t, nil, false)
		})
	}
}

// TestMigrationWithPriority: mid-migration, a higher-key member already on
// Leases preempts a lower-key leader still on the ConfigMap+Lease MultiLock.
// The old leader steps down rather than write over the Lease, and does not
// preempt back while the two locks disagree.
func TestMigrationWithPriority(t *testing.T) {
	e := newElection(t)
	e.start("old", prioritized(rl.ConfigMapsLeasesResourceLock, "canary"))
	waitFor(t, maxAttemptWait+slack, "canary leads", func() bool { return len(e.rec.Leaders()) == 1 })
	time.Sleep(retryPeriod / 2)
	startedAt := time.Now()
	e.start("new", prioritized(rl.LeasesResourceLock, "stable"))
	waitFor(t, maxAttemptWait+retryPeriod+slack, "stable alone leads", func() bool {
		return slices.Equal(e.rec.Leaders(), []string{"new"})
	})
	time.Sleep(2 * leaseDuration)
	if got := e.rec.StartedAfter(startedAt); len(got) != 1 || !slices.Equal(e.rec.Leaders(), []string{"new"}) {
		t.Fatalf("after the preemption: tenures %v, leaders %v; want stable alone, once", got, e.rec.Leaders())
	}
	e.rec.assertSafe(t, rank, false)
}
