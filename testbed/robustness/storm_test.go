package robustness

import (
	"strings"
	"testing"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// TestStormImpactIsMeasured: in a conflict storm's window the checker
// counts the candidates' Lease writes and their conflicts, the longest
// accepted write, the longest stretch without one (from the last before the
// storm), and the time nobody acted; the report prints it.
func TestStormImpactIsMeasured(t *testing.T) {
	h := goodHistory()
	// c1 acts until 10s, c2 from 14s: a storm from 9s to 13s finds
	// nobody acting from 10s on.
	h.Faults = append(h.Faults, Fault{Kind: KindConflictStorm, Start: 9 * sec, End: 13 * sec, InBounds: true})
	lw := func(id string, sent, mono int64, status int) event.Event {
		return event.Event{Kind: event.LeaseWrite, ID: id, PID: 100, Sent: sent, Mono: mono, Status: status, Message: "PUT"}
	}
	h.Events = append(h.Events,
		lw("c1", 8*sec, 8*sec+ms(10), 200),
		lw("c1", 9*sec+ms(500), 9*sec+ms(520), 409),
		lw("c1", 10*sec, 10*sec+ms(300), 200),
		lw("c2", 11*sec, 11*sec+ms(10), 409),
		lw("c2", 12*sec, 12*sec+ms(10), 0),
		lw("c2", 14*sec, 14*sec+ms(10), 200), // after the storm
	)
	_, m := Check(h)
	want := StormImpact{At: 9 * time.Second, For: 4 * time.Second, Writes: 4, Conflicts: 2, Failed: 1,
		MaxAccepted: 300 * time.Millisecond, MaxGap: 2*time.Second + 700*time.Millisecond, Leaderless: 3 * time.Second}
	if len(m.Storms) != 1 || m.Storms[0] != want {
		t.Fatalf("storm impact %+v; want %+v", m.Storms, want)
	}
	var totals Totals
	totals.Add(h, nil, m)
	if !strings.Contains(totals.Summary(), "conflict storms 1, 4s in all: candidates' Lease writes 4, conflicted 2") {
		t.Fatalf("the summary does not report the storm:\n%s", totals.Summary())
	}
}
