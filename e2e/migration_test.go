package e2e

import (
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
			e.rec.assertSafe(t, nil)
		})
	}
}
