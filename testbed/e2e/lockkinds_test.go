package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

var allKinds = []string{
	rl.LeasesResourceLock, rl.ConfigMapsResourceLock, rl.EndpointsResourceLock,
	rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock,
}

// TestFailover runs three members on each lock kind: exactly one leads; when
// it is stopped (releasing the lock or not) another takes over, within the
// bound the timings promise, and LeaderTransitions counts the handover.
func TestFailover(t *testing.T) {
	for _, kind := range allKinds {
		for _, release := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/release=%v", kind, release), func(t *testing.T) {
				e := newElection(t)
				byID := map[string]*member{}
				for _, id := range []string{"a", "b", "c"} {
					byID[id] = e.start(id, memberOpts{kind: kind, release: release})
				}
				waitFor(t, leaseDuration+maxAttemptWait+slack, "a first leader", func() bool { return len(e.rec.Leaders()) == 1 })
				time.Sleep(2 * retryPeriod) // a few renewals, and no second leader
				leaders := e.rec.Leaders()
				if len(leaders) != 1 {
					t.Fatalf("leaders = %v, want exactly one", leaders)
				}
				before, err := e.record(kind)
				if err != nil {
					t.Fatal(err)
				}
				if before.HolderIdentity != leaders[0] {
					t.Fatalf("lock names %q, recorder says %q leads", before.HolderIdentity, leaders[0])
				}

				stoppedAt := time.Now()
				byID[leaders[0]].stop()
				// Its tenure ends when its callback notices; wait for that,
				// so that the old leader is not taken for the new one.
				waitFor(t, slack, "the stopped leader's tenure ends", func() bool { return !slices.Contains(e.rec.Leaders(), leaders[0]) })
				bound := leaseDuration + 2*maxAttemptWait + slack // the last renewal is seen at the next attempt
				if release {
					bound = maxAttemptWait + slack // the released lock is free at the next attempt
				}
				waitFor(t, bound, "a new leader", func() bool { return len(e.rec.StartedAfter(stoppedAt)) > 0 })
				took := e.rec.StartedAfter(stoppedAt)[0].Start.Sub(stoppedAt)
				addFigure(fmt.Sprintf("failover %s release=%v", kind, release), took)
				if !release && took < leaseDuration-retryPeriod {
					t.Fatalf("took over %v after a crash, before the lease (%v) could have expired", took, leaseDuration)
				}

				time.Sleep(retryPeriod)
				after, err := e.record(kind)
				if err != nil {
					t.Fatal(err)
				}
				now := e.rec.Leaders()
				if len(now) != 1 || after.HolderIdentity != now[0] || after.LeaderTransitions != before.LeaderTransitions+1 {
					t.Fatalf("after failover: leaders %v, record %+v; want one leader named in the record and transitions %d",
						now, after, before.LeaderTransitions+1)
				}
				e.rec.assertSafe(t, nil, false)
			})
		}
	}
}
