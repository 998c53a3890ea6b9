package e2e

import (
	"strings"
	"testing"
	"time"

	le "github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

var rank = map[string]int{"": 0, "old": 1, "canary": 2, "stable": 3}

// outranks is a KeyComparison every member agrees on: a higher rank wins.
func outranks(own string) le.KeyComparisonFunc {
	return func(holderKey string) bool { return rank[own] > rank[holderKey] }
}

func prioritized(kind, key string) memberOpts {
	return memberOpts{kind: kind, key: key, keyComparison: outranks(key), release: true}
}

// TestPreemption: a higher key takes the lock from a running lower-key
// leader. By default it is a handoff: the leader's work (which takes a
// quarter second to stop) returns before the higher key starts, so the two
// never lead at once, and the higher key leads within moments. With
// handoffs off it is a steal: the higher key leads at its first attempt and
// the old leader, watching, steps down at once.
func TestPreemption(t *testing.T) {
	const windDown = 250 * time.Millisecond
	for _, how := range []string{"handoff", "steal"} {
		for _, kind := range []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock, rl.ConfigMapsLeasesResourceLock} {
			t.Run(how+"/"+kind, func(t *testing.T) {
				for run := range 3 {
					e := newElection(t)
					low := prioritized(kind, "canary")
					low.windDown = windDown
					e.start("low", low)
					waitFor(t, maxAttemptWait+slack, "canary leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "low" })
					time.Sleep(retryPeriod / 2)
					startedAt := time.Now()
					high := prioritized(kind, "stable")
					high.disableHandoff = how == "steal"
					e.start("high", high)
					waitFor(t, maxAttemptWait+slack, "stable takes over", func() bool { return len(e.rec.StartedAfter(startedAt)) == 1 })
					took := e.rec.StartedAfter(startedAt)[0].Start.Sub(startedAt)
					waitFor(t, retryPeriod+slack, "canary steps down", func() bool { return strings.Join(e.rec.Leaders(), ",") == "high" })
					overlaps := e.rec.assertSafe(t, rank, how == "steal")
					addFigure("preemption by "+how+": time to lead "+kind, took)
					if how == "steal" {
						if len(overlaps) != 1 {
							t.Fatalf("run %d: %d steal overlaps, want 1", run, len(overlaps))
						}
						addFigure("preemption by steal: overlap "+kind, overlaps[0])
					} else if took < windDown {
						t.Fatalf("run %d: stable led %v after it started, before canary's work could have stopped (%v)", run, took, windDown)
					}
					rec, err := e.record(kind)
					if err != nil || rec.HolderIdentity != "high" || rec.HolderKey != "stable" || rec.LeaderTransitions != 1 {
						t.Fatalf("record after preemption: %+v, %v", rec, err)
					}
					e.stopAll()
				}
			})
		}
	}
}

// TestNoStealWithoutRank: a candidate that does not outrank the leader waits
// for as long as the leader renews.
func TestNoStealWithoutRank(t *testing.T) {
	e := newElection(t)
	e.start("high", prioritized(rl.LeasesResourceLock, "stable"))
	waitFor(t, maxAttemptWait+slack, "stable leads", func() bool { return len(e.rec.Leaders()) == 1 })
	since := time.Now()
	e.start("low", prioritized(rl.LeasesResourceLock, "canary"))
	e.start("none", prioritized(rl.LeasesResourceLock, ""))
	time.Sleep(2 * leaseDuration)
	if got := e.rec.StartedAfter(since); len(got) != 0 {
		t.Fatalf("lower keys took the lock: %v", got)
	}
	e.rec.assertSafe(t, rank, false)
}

// TestThreeKeysEveryOrder starts old, canary and stable in each of the six
// orders; each time stable ends up leading and nothing overlaps beyond a
// preemption.
func TestThreeKeysEveryOrder(t *testing.T) {
	orders := [][]string{
		{"old", "canary", "stable"}, {"old", "stable", "canary"}, {"canary", "old", "stable"},
		{"canary", "stable", "old"}, {"stable", "old", "canary"}, {"stable", "canary", "old"},
	}
	for _, order := range orders {
		t.Run(strings.Join(order, "-"), func(t *testing.T) {
			e := newElection(t)
			for _, key := range order {
				e.start(key, prioritized(rl.LeasesResourceLock, key))
				time.Sleep(retryPeriod + retryPeriod/2)
			}
			waitFor(t, maxAttemptWait+slack, "stable leads alone", func() bool { return strings.Join(e.rec.Leaders(), ",") == "stable" })
			time.Sleep(2 * retryPeriod)
			if got := strings.Join(e.rec.Leaders(), ","); got != "stable" {
				t.Fatalf("leaders = %s, want stable", got)
			}
			e.rec.assertSafe(t, rank, false)
		})
	}
}
