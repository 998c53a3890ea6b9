package group

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"

	le "github.com/k8sleaderelection/k8sleaderelection"
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
// moved, each once (a crashed member's too), and no election ever had two
// leaders.
func TestSpreadJoinLeaveAndCrash(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		a := startReplica(t, cs, f, "a", "default", elections)
		b := startReplica(t, cs, f, "b", "default", elections)
		c := startReplica(t, cs, f, "c", "default", elections)
		took := waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}), describe(f, elections))
		t.Logf("three members balanced %v after they started", took)
		// Each must see the others at once, not at their first renewals
		// (one LeaseDuration on).
		if limit := 3 * testSettle; took > limit {
			t.Errorf("three members that started together balanced after %v, want at most %v", took, limit)
		}
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
		if limit := testSettle + 2*testRetry + time.Second; left > limit {
			t.Errorf("a clean leave took %v, want at most %v", left, limit)
		}
		// The successors start as they see the handoffs, a moment after
		// c's Run returns.
		took = waitFor(t, testRetry, balanced(f, elections, map[string]int{"a": 4, "b": 4, "d": 4}), describe(f, elections))
		t.Logf("c left cleanly: its Run returned after %v, balanced %v later", left, took)
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 3, "a", "b", "d")
		f.check(t)

		// b crashes: each of its elections goes, as its lease runs out,
		// to the survivor the assignment without b names: once, and
		// balanced at once.
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
		if !balanced(f, elections, map[string]int{"a": 6, "d": 6})() {
			t.Errorf("when b's elections were all led again: %s, want a 6, d 6", describe(f, elections)())
		}
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 4, "a", "d")
		f.check(t)
		a.stop(t)
		d.stop(t)
		b.stop(t)
		f.check(t)
	})
}

// blind makes r not see the member named id, nor forget it if already seen.
func (r *replica) blind(id string) {
	m := r.member.members
	m.mu.Lock()
	m.blind = id
	m.mu.Unlock()
}

// TestSpreadViewsThatDisagreeMoveEachElectionOnce lets a member join that
// one of the others does not see for a while: the elections the two that
// see it give up move to it, the one that does not see it keeps its own
// (the newcomer's key equals its key: nobody asks it), and once it sees the
// newcomer, its share moves too. Each election moves once, and no election
// ever has two leaders.
func TestSpreadViewsThatDisagreeMoveEachElectionOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		startReplica(t, cs, f, "a", "default", elections)
		startReplica(t, cs, f, "b", "default", elections)
		c := startReplica(t, cs, f, "c", "default", elections)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}), describe(f, elections))

		mark := f.mark()
		c.blind("d")
		startReplica(t, cs, f, "d", "default", elections)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 4, "d": 2}), describe(f, elections))
		time.Sleep(3 * testLease)
		if !balanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 4, "d": 2})() {
			t.Fatalf("while c does not see d: %s, want a 3, b 3, c 4 (it keeps its own), d 2", describe(f, elections)())
		}
		movesTo(t, f, mark, 2, "d")

		c.blind("")
		took := waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}), describe(f, elections))
		t.Logf("c saw d: balanced %v later (d's next renewal, then the settle)", took)
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 3, "d")
		f.check(t)
	})
}

// TestSpreadAMemberThatNeverAsksMovesNothing announces a member that runs
// no elections, seen by some members and not by others: the holders give
// up the elections the view gives it, but nobody asks for them, so they
// stay where they are, led, and nothing moves when it goes away.
func TestSpreadAMemberThatNeverAsksMovesNothing(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		startReplica(t, cs, f, "a", "default", elections)
		startReplica(t, cs, f, "b", "default", elections)
		c := startReplica(t, cs, f, "c", "default", elections)
		want := map[string]int{"a": 4, "b": 4, "c": 4}
		waitFor(t, time.Minute, balanced(f, elections, want), describe(f, elections))

		mark := f.mark()
		c.blind("ghost")
		ghost := newMembership(&Config{Name: "istiod", Namespace: testNamespace, Client: cs.CoordinationV1(),
			Identity: "ghost", Key: "default", MemberLeaseDuration: 2 * testLease, RetryPeriod: testRetry}, clock.RealClock{}, func() {})
		if err := ghost.renew(t.Context()); err != nil {
			t.Fatalf("announce ghost: %v", err)
		}
		time.Sleep(testLease)
		ghost.withdraw(t.Context())
		time.Sleep(3 * testLease)
		if !balanced(f, elections, want)() {
			t.Errorf("after a member that never asks came and went: %s, want %v", describe(f, elections)(), want)
		}
		movesTo(t, f, mark, 0)
		f.check(t)
	})
}

// TestSpreadOnlyTheHighestKeyLeads runs a canary member beside two of the
// default revision: it leads nothing while they are there, leads all once
// they have left, and hands everything to a default member that joins.
func TestSpreadOnlyTheHighestKeyLeads(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("istio-", 11)
		f := newFleet(race)
		x := startReplica(t, cs, f, "x", "canary", elections)
		a := startReplica(t, cs, f, "a", "default", elections)
		b := startReplica(t, cs, f, "b", "default", elections)
		waitFor(t, time.Minute, func() bool {
			n, unled := f.loads(elections)
			return unled == 0 && n["x"] == 0 && n["a"]+n["b"] == 11 && n["a"] >= 5 && n["b"] >= 5
		}, describe(f, elections))

		a.stop(t)
		b.stop(t)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"x": 11}), describe(f, elections))

		mark := f.mark()
		startReplica(t, cs, f, "c", "default", elections)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"c": 11}), describe(f, elections))
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 11, "c")
		x.stop(t)
		f.check(t)
	})
}

// TestSpreadMembershipCostsOneWritePerLease counts the requests for the
// members' Leases in a steady group: each member writes its own at most
// once per LeaseDuration, and nobody lists or reads them again.
func TestSpreadMembershipCostsOneWritePerLease(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 4)
		f := newFleet(race)
		for _, id := range []string{"a", "b", "c"} {
			startReplica(t, cs, f, id, "default", elections)
		}
		waitFor(t, time.Minute, func() bool { _, unled := f.loads(elections); return unled == 0 }, describe(f, elections))
		time.Sleep(2 * testLease)
		actions := cs.(interface{ Actions() []k8stesting.Action })
		count := func() (writes, reads int) {
			for _, a := range actions.Actions() {
				switch a := a.(type) {
				case k8stesting.UpdateAction:
					if l, ok := a.GetObject().(*coordinationv1.Lease); ok && l.Labels[GroupLabel] != "" {
						writes++
					}
				case k8stesting.ListAction:
					if a.GetListRestrictions().Labels.String() != "" {
						reads++
					}
				}
			}
			return writes, reads
		}
		w0, r0 := count()
		const periods = 10
		time.Sleep(periods * testLease)
		synctest.Wait()
		w1, r1 := count()
		if got, limit := w1-w0, 3*periods+3; got > limit {
			t.Errorf("3 members wrote their Leases %d times in %d lease periods, want at most one per member per period (%d)", got, periods, limit)
		}
		if r1 != r0 {
			t.Errorf("the members listed each other %d times in a steady group, want no polling", r1-r0)
		}
		t.Logf("membership: %d writes by 3 members in %d lease periods", w1-w0, periods)
	})
}

// TestSpreadAMemberGoneWithinTheSettleMovesNothing starts a member and
// stops it before its view has settled: it never asks for anything, so
// nothing moves, neither to it nor back.
func TestSpreadAMemberGoneWithinTheSettleMovesNothing(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		for _, id := range []string{"a", "b", "c"} {
			startReplica(t, cs, f, id, "default", elections)
		}
		want := map[string]int{"a": 4, "b": 4, "c": 4}
		waitFor(t, time.Minute, balanced(f, elections, want), describe(f, elections))

		mark := f.mark()
		d := startReplica(t, cs, f, "d", "default", elections)
		// The holders' next renewals carry their unmarked keys by then.
		time.Sleep(testSettle - 100*time.Millisecond)
		d.stop(t)
		time.Sleep(3 * testLease)
		if !balanced(f, elections, want)() {
			t.Errorf("after a member came and went within the settle: %s, want %v", describe(f, elections)(), want)
		}
		movesTo(t, f, mark, 0)
		f.check(t)
	})
}

// TestSpreadLeaveIsBoundedWhenNobodyAsks leaves a group whose only other
// member is cut off and so never asks for anything: Run waits at most
// Settle plus the time a handoff may take, then releases what it leads.
func TestSpreadLeaveIsBoundedWhenNobodyAsks(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 4)
		f := newFleet(race)
		// b's member Lease outlives the leave: only the bound ends it.
		long := func(c *Config) { c.MemberLeaseDuration = 2 * time.Minute }
		a := startReplica(t, cs, f, "a", "default", elections, long)
		b := startReplica(t, cs, f, "b", "default", elections, long)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 2, "b": 2}), describe(f, elections))
		b.client.cut.Store(true)
		start := time.Now()
		a.stop(t)
		took := time.Since(start)
		if limit := testSettle + 2*testRetry + 2*testRenew; took > limit {
			t.Errorf("a leave that nobody answers took %v, want at most %v", took, limit)
		}
		if took < testSettle {
			t.Errorf("a leave with another member alive took %v, want it to wait at least the settle (%v) for it to ask", took, testSettle)
		}
		n, _ := f.loads(elections)
		if n["a"] != 0 {
			t.Errorf("after its Run returned, a still leads %d elections", n["a"])
		}
		f.check(t)
	})
}

func TestNewMemberNamesEveryWrongField(t *testing.T) {
	var nilClient *cutClient
	_, err := newMember(Config{
		Name:                "Not_A_Name",
		Client:              nilClient,
		Key:                 "default" + OwnerMark,
		Elections:           []Election{{Name: "x"}, {Name: "x"}, {}},
		MemberLeaseDuration: time.Second,
		Settle:              -time.Second,
	})
	if err == nil {
		t.Fatal("newMember accepted a config with every field wrong")
	}
	for _, want := range []string{
		`name ("Not_A_Name") must be a valid Lease name`,
		"namespace must not be empty",
		"client must not be nil",
		"identity must not be empty",
		`key ("default|group-owner") must not end in "|group-owner"`,
		`elections[1].name ("x") names another election too`,
		"elections[2].name must not be empty",
		"memberLeaseDuration (1s) must be zero",
		"settle (-1s) must be between zero and MaxLeaseDuration",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestNewMemberChecksEachElection(t *testing.T) {
	_, err := newMember(Config{
		Name: "istiod", Namespace: testNamespace, Client: fake.NewClientset().CoordinationV1(), Identity: "a",
		Elections:     []Election{{Name: "istio-leader"}},
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
	})
	if err == nil || !strings.Contains(err.Error(), "election istio-leader") || !strings.Contains(err.Error(), "OnStartedLeading") {
		t.Errorf("newMember with an election without callbacks: %v, want an error naming the election and the callback", err)
	}
}

// TestSpreadAMemberThatLostSightOfTheOthersAsksForNothing makes one member's
// list and watch of the members fail: to it, the others' Leases seem to run
// out, but it claims none of their elections (it fails closed), so a member
// that joins meanwhile is handed its share, from it too, each once.
func TestSpreadAMemberThatLostSightOfTheOthersAsksForNothing(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		a := startReplica(t, cs, f, "a", "default", elections)
		startReplica(t, cs, f, "b", "default", elections)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 6, "b": 6}), describe(f, elections))
		time.Sleep(2 * testLease)

		mark := f.mark()
		a.client.loseSight()
		// Long enough for b's member Lease to seem to have run out, to a.
		time.Sleep(3 * testLease)
		startReplica(t, cs, f, "c", "default", elections)
		waitFor(t, 2*testLease, balanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}), describe(f, elections))
		time.Sleep(2 * testLease)
		movesTo(t, f, mark, 4, "c")
		f.check(t)
	})
}

// TestSpreadMembersThatStartTogetherMoveEachElectionOnce starts four
// members in the same instant, or each within the settle of the one before
// (one change of the group, as its views see it): each election is first
// led by whoever takes it, and then moves at most once while the views
// converge, never back and forth.
func TestSpreadMembersThatStartTogetherMoveEachElectionOnce(t *testing.T) {
	for _, tc := range []struct {
		n   int
		gap time.Duration
	}{{11, 0}, {12, 0}, {12, 100 * time.Millisecond}, {11, 300 * time.Millisecond}} {
		n := tc.n
		t.Run(fmt.Sprint(n, "/", tc.gap), func(t *testing.T) {
			eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
				elections := names("shard-", n)
				f := newFleet(race)
				ids := []string{"a", "b", "c", "d"}
				for _, id := range ids {
					startReplica(t, cs, f, id, "default", elections)
					time.Sleep(tc.gap)
				}
				waitFor(t, time.Minute, func() bool {
					loads, unled := f.loads(elections)
					lo, hi := n, 0
					for _, id := range ids {
						lo, hi = min(lo, loads[id]), max(hi, loads[id])
					}
					return unled == 0 && hi-lo <= 1
				}, describe(f, elections))
				time.Sleep(5 * testLease)
				for e, ids := range f.termsSince(nil) {
					if len(ids) > 2 {
						t.Errorf("election %s was led by %v in turn after four members started together, want its first leader and at most one move", e, ids)
					}
				}
				f.check(t)
			})
		})
	}
}

// TestSpreadHigherKeysThatJoinTogetherMoveEachElectionOnce runs a canary
// member that leads every election, then starts two members of the default
// revision together: each election moves once, from the canary to the
// default member that owns it, and not on from one default member to the
// other.
func TestSpreadHigherKeysThatJoinTogetherMoveEachElectionOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("istio-", 11)
		f := newFleet(race)
		startReplica(t, cs, f, "x", "canary", elections)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"x": 11}), describe(f, elections))

		mark := f.mark()
		startReplica(t, cs, f, "a", "default", elections)
		startReplica(t, cs, f, "b", "default", elections)
		waitFor(t, time.Minute, func() bool {
			n, unled := f.loads(elections)
			return unled == 0 && n["x"] == 0 && n["a"]+n["b"] == 11 && n["a"] >= 5 && n["b"] >= 5
		}, describe(f, elections))
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 11, "a", "b")
		f.check(t)
	})
}

// TestSpreadOutranksThatPanicsRanksNoKeyAbove runs a canary and a default
// member whose Outranks panics: the group reads the panic as "does not
// outrank", as an elector reads a panicking KeyComparison, so Run goes on,
// every election stays led, and Run returns when asked.
func TestSpreadOutranksThatPanicsRanksNoKeyAbove(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("istio-", 6)
		f := newFleet(race)
		broken := func(c *Config) { c.Outranks = func(key, other string) bool { panic("outranks is broken") } }
		x := startReplica(t, cs, f, "x", "canary", elections, broken)
		a := startReplica(t, cs, f, "a", "default", elections, broken)
		waitFor(t, time.Minute, func() bool { _, unled := f.loads(elections); return unled == 0 }, describe(f, elections))
		time.Sleep(3 * testLease)
		if _, unled := f.loads(elections); unled != 0 {
			t.Errorf("with an Outranks that panics, %d elections without one leader, want none", unled)
		}
		a.stop(t)
		x.stop(t)
		f.check(t)
	})
}

// TestSpreadAHigherKeyTakesEveryElectionFromALowerOne runs a canary member
// that leads every election, and a default member that never asks for any
// (one that lost sight of the others, or runs no electors), then starts a
// default member: it takes every election from the canary, the ones the
// assignment gives the silent member too, so that no lower key leads while
// a higher-key member that asks is there.
func TestSpreadAHigherKeyTakesEveryElectionFromALowerOne(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("istio-", 6)
		f := newFleet(race)
		startReplica(t, cs, f, "x", "canary", elections)
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"x": 6}), describe(f, elections))
		silent := newMembership(&Config{Name: "istiod", Namespace: testNamespace, Client: cs.CoordinationV1(),
			Identity: "silent", Key: "default", MemberLeaseDuration: 2 * time.Minute, RetryPeriod: testRetry}, clock.RealClock{}, func() {})
		if err := silent.renew(t.Context()); err != nil {
			t.Fatalf("announce a silent member: %v", err)
		}
		mark := f.mark()
		startReplica(t, cs, f, "a", "default", elections)
		took := waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 6}), describe(f, elections))
		t.Logf("a took every election from the canary %v after it started", took)
		// Its own share, after the settle; then, once the view has stayed
		// the same for the settle and the time a handoff takes, the rest.
		handoff := 2*testRetry + 2*testRenew
		if limit := 2 * (testSettle + handoff); took > limit {
			t.Errorf("a took every election from a lower key %v after it started, want at most %v", took, limit)
		}
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 6, "a")
		f.check(t)
	})
}

// TestSpreadCrashMovesEachElectionOnce crashes one of four members that
// share twelve elections: each of its elections is taken by the survivor
// that the assignment without it names, so that each moves once, the
// survivors are balanced (max − min ≤ 1) the moment all are led again, and
// that moment comes within LeaseDuration and half a second of the crash.
// Nothing moves when its member Lease runs out later.
func TestSpreadCrashMovesEachElectionOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		var replicas []*replica
		for _, id := range []string{"a", "b", "c", "d"} {
			replicas = append(replicas, startReplica(t, cs, f, id, "default", elections))
		}
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}), describe(f, elections))
		time.Sleep(2 * testLease)

		mark := f.mark()
		crashed := replicas[3]
		crashed.client.cut.Store(true)
		took := waitFor(t, 2*testLease, func() bool {
			n, unled := f.loads(elections)
			return unled == 0 && n["d"] == 0
		}, describe(f, elections))
		n, _ := f.loads(elections)
		t.Logf("d crashed: its elections led again after %v, loads %v", took, n)
		if limit := testLease + 500*time.Millisecond; took > limit {
			t.Errorf("d's elections were led again %v after it crashed, want at most %v (LeaseDuration + 0.5s)", took, limit)
		}
		lo, hi := len(elections), 0
		for _, id := range []string{"a", "b", "c"} {
			lo, hi = min(lo, n[id]), max(hi, n[id])
		}
		if hi-lo > 1 {
			t.Errorf("when d's elections were all led again the survivors led %v: max − min %d, want ≤ 1", n, hi-lo)
		}

		// Past the crashed member's own Lease: nothing more moves.
		time.Sleep(3 * testLease)
		movesTo(t, f, mark, 3, "a", "b", "c")
		if !balanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4})() {
			t.Errorf("after d's member Lease ran out: %s, want 4 each", describe(f, elections)())
		}
		f.check(t)
	})
}

// TestSpreadCrashedElectionsAreLedWhenTheirOwnerCannotTakeThem crashes one
// of four members, and just before its leases run out makes a second one
// unable to write any election's Lease (too slow to take one) while it
// still renews its member Lease: the others hold off the crashed member's
// elections that the slow one owns for the hold-off (RetryPeriod), then
// take them, so that every election is led again within LeaseDuration, the
// hold-off and one jittered retry, and never by two members at once.
func TestSpreadCrashedElectionsAreLedWhenTheirOwnerCannotTakeThem(t *testing.T) {
	eachFake(t, func(t *testing.T, cs kubernetes.Interface, race time.Duration) {
		elections := names("shard-", 12)
		f := newFleet(race)
		var replicas []*replica
		for _, id := range []string{"a", "b", "c", "d"} {
			replicas = append(replicas, startReplica(t, cs, f, id, "default", elections))
		}
		waitFor(t, time.Minute, balanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}), describe(f, elections))
		time.Sleep(2 * testLease)

		var ds []string
		for _, e := range elections {
			f.mu.Lock()
			if _, ok := f.leading[e]["d"]; ok {
				ds = append(ds, e)
			}
			f.mu.Unlock()
		}
		replicas[3].client.cut.Store(true)
		start := time.Now()
		time.Sleep(testLease - 200*time.Millisecond)
		replicas[2].client.electionWritesCut.Store(true)
		limit := testLease + time.Duration((1+le.JitterFactor)*float64(testRetry))
		waitFor(t, limit-time.Since(start), func() bool {
			for _, e := range ds {
				f.mu.Lock()
				_, byD := f.leading[e]["d"]
				n := len(f.leading[e])
				f.mu.Unlock()
				if byD || n != 1 {
					return false
				}
			}
			return true
		}, func() string {
			return fmt.Sprintf("d's elections %v not all led again within %v of its crash (LeaseDuration, the hold-off and a jittered retry): %s", ds, limit, describe(f, elections)())
		})
		t.Logf("d crashed and c could not take its share: d's elections led again after %v", time.Since(start))
		f.check(t)
	})
}
