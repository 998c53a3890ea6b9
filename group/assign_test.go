package group

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// byRevision ranks keys as istiod's revisions: "default" outranks any other.
func byRevision(key, other string) bool { return key == "default" && other != "default" }

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

func membersOf(ids ...string) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = Member{Identity: id}
	}
	return out
}

// loads counts the elections each eligible member owns, zero included.
func loads(owner map[string]string, ids []string) map[string]int {
	n := make(map[string]int, len(ids))
	for _, id := range ids {
		n[id] = 0
	}
	for _, id := range owner {
		n[id]++
	}
	return n
}

func moved(before, after map[string]string) []string {
	var out []string
	for e, id := range after {
		if before[e] != id {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

func TestAssignTable(t *testing.T) {
	twelve := names("e", 12)
	three := Assign(twelve, membersOf("a", "b", "c"), nil, nil)
	cases := []struct {
		name      string
		elections []string
		members   []Member
		holders   map[string]string
		outranks  OutranksFunc
		wantLoads map[string]int
		wantMoves int
		onlyTo    string // every move goes to this member, if set
	}{
		{name: "nobody", elections: twelve, wantLoads: map[string]int{}},
		{name: "no elections", members: membersOf("a"), wantLoads: map[string]int{}},
		{name: "three share twelve", elections: twelve, members: membersOf("a", "b", "c"),
			wantLoads: map[string]int{"a": 4, "b": 4, "c": 4}, wantMoves: 12},
		{name: "a fourth joins three that share twelve", elections: twelve, members: membersOf("a", "b", "c", "d"),
			holders: three, wantLoads: map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}, wantMoves: 3, onlyTo: "d"},
		{name: "one of three leaves", elections: twelve, members: membersOf("a", "b"),
			holders: three, wantLoads: map[string]int{"a": 6, "b": 6}, wantMoves: 4},
		{name: "eleven over three", elections: names("istio-", 11), members: membersOf("a", "b", "c"),
			wantLoads: map[string]int{"a": 3, "b": 4, "c": 4}, wantMoves: 11},
		{name: "fewer elections than members", elections: names("e", 2), members: membersOf("a", "b", "c"),
			wantLoads: map[string]int{"a": 0, "b": 1, "c": 1}, wantMoves: 2},
		{name: "only the highest key is eligible", elections: twelve,
			members:  []Member{{"a", "default"}, {"b", "canary"}, {"c", "default"}},
			outranks: byRevision, wantLoads: map[string]int{"a": 6, "c": 6}, wantMoves: 12},
		{name: "a holder that is not eligible gives everything up", elections: twelve,
			members: []Member{{"a", "default"}, {"b", "canary"}, {"c", "default"}},
			holders: three, outranks: byRevision,
			wantLoads: map[string]int{"a": 6, "c": 6}, wantMoves: 4},
		{name: "a holder that left is no member", elections: twelve, members: membersOf("a", "b", "c"),
			holders:   map[string]string{"e00": "gone", "e01": "gone"},
			wantLoads: map[string]int{"a": 4, "b": 4, "c": 4}, wantMoves: 12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			owner := Assign(c.elections, c.members, c.holders, c.outranks)
			got := map[string]int{}
			for _, id := range owner {
				got[id]++
			}
			for id, n := range c.wantLoads {
				if got[id] != n {
					t.Errorf("member %s owns %d elections, want %d (assignment %v)", id, got[id], n, owner)
				}
			}
			for id := range got {
				if _, ok := c.wantLoads[id]; !ok {
					t.Errorf("member %s owns %d elections, want none (assignment %v)", id, got[id], owner)
				}
			}
			m := moved(c.holders, owner)
			if len(m) != c.wantMoves {
				t.Errorf("%d elections moved (%v), want %d", len(m), m, c.wantMoves)
			}
			if c.onlyTo != "" {
				for _, e := range m {
					if owner[e] != c.onlyTo {
						t.Errorf("election %s moved from %s to %s, want every move to go to %s", e, c.holders[e], owner[e], c.onlyTo)
					}
				}
			}
		})
	}
}

// randomView is a random set of elections and members, with each election
// held by a member, by one that is gone, or by nobody.
func randomView(r *rand.Rand) (elections []string, members []Member, holders map[string]string) {
	elections = names("e", r.IntN(30))
	ids := names("m", 1+r.IntN(8))
	for _, id := range ids {
		members = append(members, Member{Identity: id, Key: []string{"default", "canary"}[r.IntN(2)]})
	}
	holders = map[string]string{}
	for _, e := range elections {
		switch r.IntN(4) {
		case 0:
		case 1:
			holders[e] = "gone"
		default:
			holders[e] = ids[r.IntN(len(ids))]
		}
	}
	return elections, members, holders
}

// fewestMoves is the least number of elections any balanced assignment
// moves from holders: every eligible member keeps at most q of its own, and
// r of them (those holding more than q) one more.
func fewestMoves(elections []string, ids []string, holders map[string]string) int {
	q, r := len(elections)/len(ids), len(elections)%len(ids)
	held := map[string]int{}
	for _, e := range elections {
		held[holders[e]]++
	}
	kept, extra := 0, 0
	for _, id := range ids {
		kept += min(held[id], q)
		if held[id] > q {
			extra++
		}
	}
	return len(elections) - kept - min(extra, r)
}

func TestAssignProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		elections, members, holders := randomView(r)
		owner := Assign(elections, members, holders, byRevision)
		ids := eligible(members, byRevision)
		if len(elections) == 0 {
			if owner != nil {
				t.Fatalf("view %d: no elections, got assignment %v", i, owner)
			}
			continue
		}
		// Balance: max - min ≤ 1 over the eligible members, and only they own.
		n := loads(owner, ids)
		if len(n) != len(ids) {
			t.Fatalf("view %d: owners %v are not the eligible members %v", i, n, ids)
		}
		lo, hi := len(elections), 0
		for _, k := range n {
			lo, hi = min(lo, k), max(hi, k)
		}
		if hi-lo > 1 {
			t.Fatalf("view %d: loads %v differ by %d, want at most 1", i, n, hi-lo)
		}
		// Minimal moves.
		if got, want := len(moved(holders, owner)), fewestMoves(elections, ids, holders); got != want {
			t.Fatalf("view %d: %d elections moved, the fewest possible is %d (holders %v, owners %v)", i, got, want, holders, owner)
		}
		// Determinism: the order of the inputs does not matter.
		shuffled := slices.Clone(members)
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		es := slices.Clone(elections)
		r.Shuffle(len(es), func(a, b int) { es[a], es[b] = es[b], es[a] })
		if again := Assign(es, shuffled, maps.Clone(holders), byRevision); !maps.Equal(owner, again) {
			t.Fatalf("view %d: assignment depends on the order of its inputs:\n%v\n%v", i, owner, again)
		}
	}
}

// TestAssignConvergesWithoutPingPong carries out the moves of an assignment
// one at a time, in a random order, recomputing the assignment from the
// holders after each, as replicas that see moves land one by one do: the
// total is the fewest moves of the first view, and no election moves twice.
func TestAssignConvergesWithoutPingPong(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		elections, members, holders := randomView(r)
		if len(elections) == 0 {
			continue
		}
		want := fewestMoves(elections, eligible(members, byRevision), holders)
		movedOnce := map[string]bool{}
		moves := 0
		for {
			owner := Assign(elections, members, holders, byRevision)
			pending := moved(holders, owner)
			if len(pending) == 0 {
				break
			}
			e := pending[r.IntN(len(pending))]
			if movedOnce[e] {
				t.Fatalf("view %d: election %s moves a second time, to %s", i, e, owner[e])
			}
			movedOnce[e] = true
			holders[e] = owner[e]
			moves++
		}
		if moves != want {
			t.Fatalf("view %d: converged in %d moves, want the fewest, %d", i, moves, want)
		}
	}
}

func TestAssignJoinAndLeaveMoveOnlyWhatMust(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 500 {
		elections := names("e", 1+r.IntN(40))
		ids := names("m", 1+r.IntN(8))
		before := Assign(elections, membersOf(ids...), nil, nil)
		joined := Assign(elections, membersOf(append(slices.Clone(ids), "new")...), before, nil)
		for _, e := range moved(before, joined) {
			if joined[e] != "new" {
				t.Fatalf("case %d: on a join, election %s moved from %s to %s, not to the new member", i, e, before[e], joined[e])
			}
		}
		if got, want := len(moved(before, joined)), len(elections)/(len(ids)+1); got != want {
			t.Fatalf("case %d: a join moved %d of %d elections over %d members, want %d", i, got, len(elections), len(ids), want)
		}
		gone := ids[r.IntN(len(ids))]
		rest := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == gone })
		if len(rest) == 0 {
			continue
		}
		left := Assign(elections, membersOf(rest...), before, nil)
		for _, e := range moved(before, left) {
			if before[e] != gone {
				t.Fatalf("case %d: on %s leaving, election %s moved from %s to %s", i, gone, e, before[e], left[e])
			}
		}
	}
}
