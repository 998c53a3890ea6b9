package main

import (
	"math"
	"testing"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// history builds a group history of len(groupElections) elections, the
// first ones given, the rest led by "z" throughout.
func history(first ...[]tenures.Tenure) groupHistory {
	h := make(groupHistory, len(groupElections))
	for i := range h {
		if i < len(first) {
			h[i] = first[i]
		} else {
			h[i] = []tenures.Tenure{{ID: "z", Start: time.Unix(0, 0)}}
		}
	}
	return h
}

func TestGroupHistoryFindsBalanceOnlyWhenEveryElectionHasOneMemberLeader(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	members := []string{"y", "z"}
	// Eleven elections stay with z; y takes the first five by handoff, the
	// last one with a gap: balanced (6/6) only when y leads the fifth.
	var moves [][]tenures.Tenure
	for i := range 5 {
		moves = append(moves, []tenures.Tenure{{ID: "z", Start: at(-1000), End: at(100 * (i + 1))}, {ID: "y", Start: at(100*(i+1) + 50*(i/4))}})
	}
	moves = append(moves, []tenures.Tenure{{ID: "y", Start: at(0)}})
	h := history(moves...)
	if got, want := h.toBalance(at(0), at(10000), members), 0.55; math.Abs(got-want) > 1e-9 {
		t.Errorf("toBalance = %vs, want %vs (when y starts leading the fifth election)", got, want)
	}
	if got := h.toBalance(at(0), at(500), members); !math.IsNaN(got) {
		t.Errorf("toBalance before the last move = %vs, want NaN (never balanced)", got)
	}
	if got := h.startedBetween(at(0), at(10000)); got != 6 {
		t.Errorf("startedBetween = %d, want 6", got)
	}
	if got := h.overlaps(at(10000)); got != 0 {
		t.Errorf("overlaps = %d, want 0", got)
	}
}

func TestGroupHistoryCountsTwoLeadersOfOneElection(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := history([]tenures.Tenure{{ID: "a", Start: t0, End: t0.Add(2 * time.Second)}, {ID: "b", Start: t0.Add(time.Second)}},
		[]tenures.Tenure{{ID: "a", Start: t0, End: t0.Add(time.Second)}, {ID: "b", Start: t0.Add(time.Second)}})
	if got := h.overlaps(t0.Add(time.Minute)); got != 1 {
		t.Errorf("overlaps = %d, want 1 (the first election; the second's terms only touch)", got)
	}
	if _, ok := h.loadsAt(t0.Add(1500*time.Millisecond), []string{"a", "b", "z"}); ok {
		t.Errorf("loadsAt while two lead one election: ok, want not ok")
	}
}
