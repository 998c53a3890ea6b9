package group

import (
	"slices"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
)

// movesTo checks that the terms begun since mark are exactly the moves
// wanted: want elections moved, each once, each to one of to.
func movesTo(t *testing.T, f *fleet, mark map[string]int, want int, to ...string) {
	t.Helper()
	got := 0
	for e, ids := range f.termsSince(mark) {
		if len(ids) > 1 {
			t.Errorf("election %s moved %d times (%v), want at most once", e, len(ids), ids)
		}
		for _, id := range ids {
			got++
			if len(to) > 0 && !slices.Contains(to, id) {
				t.Errorf("election %s moved to %s, want it to move only to %v", e, id, to)
			}
		}
	}
	if got != want {
		t.Errorf("%d elections moved, want %d", got, want)
	}
}

// TestSpreadJoinLeaveAndCrash runs twelve elections over three members,
// then a fourth joins, then one leaves cleanly, then one crashes: after
// each, the members are balanced (max − min ≤ 1), the fewest elections
// moved, each once, and no election ever had two leaders.
func TestSpreadJoinLeaveAndCrash(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		a := startReplica(t, cs, f, "a", "default", elections)
		b := startReplica(t, cs, f, "b", "default", elections)
		c := startReplica(t, cs, f, "c", "default", elections)
		took := waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}), describe(f, elections))
		t.Logf("three members balanced %v after they started", took)
		f.check(t)

		// A fourth joins: it takes exactly three, one from each, by handoff.
		mark := f.mark()
		d := startReplica(t, cs, f, "d", "default", elections)
		took = waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}), describe(f, elections))
		t.Logf("a fourth member joined: balanced after %v", took)
		if limit := testSettle + 2*testRetry + time.Second; took > limit {
			t.Errorf("a join took %v to balance, want at most %v (settle, the holder's next renewal, the handoff)", took, limit)
		}
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 3, "d")
		f.check(t)

		// c leaves cleanly: its three elections go to the other three, one
		// each, by handoff, before its Run returns.
		mark = f.mark()
		start := time.Now()
		c.stop(t)
		left := time.Since(start)
		if !balanced(f, elections, map[string]int{"a": 4, "b": 4, "d": 4})() {
			t.Errorf("after c left cleanly (%v): %s, want a, b and d to lead 4 each", left, describe(f, elections)())
		}
		if limit := testSettle + 2*testRetry + time.Second; left > limit {
			t.Errorf("a clean leave took %v, want at most %v", left, limit)
		}
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 3, "a", "b", "d")
		f.check(t)

		// b crashes: its elections are led again as their leases run out,
		// and spread evenly once its member Lease has run out too.
		mark = f.mark()
		b.client.cut.Store(true)
		start = time.Now()
		took = waitFor(t, time.Minute, func() bool {
			_, unled := f.loads(elections)
			n, _ := f.loads(elections)
			return unled == 0 && n["b"] == 0
		},
			describe(f, elections))
		t.Logf("b crashed: its elections led again after %v", took)
		if limit := testLease + testRetry; took > limit {
			t.Errorf("b's elections were led again %v after it crashed, want at most its lease and a retry, %v", took, limit)
		}
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 6, "d": 6}), describe(f, elections))
		t.Logf("b crashed: balanced again after %v", time.Since(start))
		f.check(t)
		if got := len(f.termsSince(mark)); got > 4+2 {
			t.Errorf("%d elections began a term after b crashed, want b's four and at most the two the balance moves", got)
		}
		a.stop(t)
		d.stop(t)
		b.stop(t)
		f.check(t)
	})
}
