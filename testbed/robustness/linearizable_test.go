package robustness

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// withReads gives goodHistory's writes the reads they were conditional on
// (each sent 50 ms before its answer, its read answered 30 ms before it)
// and the harness's final read: c1 creates the log (rv 12) and appends at
// rv 13; its late write appends at 31 and c2's first at 32; c2's second is
// fenced; c2's third has no answer and never landed.
func withReads(h *History) *History {
	read := map[string]string{"c1/100/1": event.Absent, "c1/100/2": "12", "c1/100/3": "13", "c2/200/1": "31", "c2/200/2": "32"}
	for i, e := range h.Events {
		if e.Kind == event.Write {
			h.Events[i].Sent, h.Events[i].ReadDone, h.Events[i].Read = e.Mono-ms(50), e.Mono-ms(30), read[e.WID]
		}
	}
	unknown := write("c2", 200, "c2/200/3", event.Unknown, 17*sec, "u/1/c2", "")
	unknown.Sent, unknown.ReadDone, unknown.Read = 16*sec+ms(500), 16*sec+ms(520), "32"
	h.Events = append(h.Events, unknown)
	h.FinalRead = LogRead{Call: 62 * sec, Return: 62*sec + ms(10), RV: 32}
	return h
}

// TestLogOperationsLinearizableInOrder: conditional appends, each on the
// version its writer read, a fenced one and one with no answer that never
// landed, then a final read of them all: linearizable.
func TestLogOperationsLinearizableInOrder(t *testing.T) {
	h := withReads(goodHistory())
	vs, m := Check(h)
	if len(vs) != 0 {
		t.Fatalf("violations in a linearizable history:\n%v", vs)
	}
	// 6 reads, 4 accepted appends (the fenced one and the unknown one
	// that never landed change nothing), the final read.
	if m.LogOperations != 11 || m.LogUndecided {
		t.Fatalf("checked %d log operations (undecided %v); want 11", m.LogOperations, m.LogUndecided)
	}
}

// TestLogOperationsNotLinearizableAreNamed: each history breaks the
// sequential log in one way; the checker reports a linearizability
// violation, and only that, naming an operation that cannot follow the
// longest order it found.
func TestLogOperationsNotLinearizableAreNamed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(h *History)
		mention string
	}{{
		name: "an append accepted on a version the log had left (a lost update)",
		mutate: func(h *History) {
			// c2 read rv 13 while c1's late write was in flight,
			// and its append on 13 was accepted after it.
			e := &h.Events[8]
			e.Sent, e.ReadDone, e.Read = 14*sec, 14*sec+ms(20), "13"
		},
		// Either append on rv 13 can be taken first; the other
		// cannot follow it.
		mention: "append on rv 13: accepted rv 3",
	}, {
		name: "a read that returns a version older than an answered write (a stale read)",
		mutate: func(h *History) {
			// c2's fenced write read rv 31 after c2's own append
			// at 32 was answered.
			h.Events[9].Read = "31"
		},
		mention: "c2/200/2 read rv 31",
	}, {
		name: "a conflict on the version the log was at",
		mutate: func(h *History) {
			h.Events[9].Result = event.Conflict
		},
		mention: "c2/200/2 append on rv 32: conflict",
	}, {
		name: "a final read that misses an answered append",
		mutate: func(h *History) {
			h.FinalRead.RV = 31
		},
		mention: "final read: rv 31, 4 lines",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := withReads(goodHistory())
			tc.mutate(h)
			vs, _ := Check(h)
			if got := properties(vs); !slices.Equal(got, []string{PropLinearizable}) {
				t.Fatalf("violated properties %q; want only %q:\n%v", got, PropLinearizable, vs)
			}
			named := slices.ContainsFunc(vs[0].Events, func(e string) bool {
				return strings.HasPrefix(e, "cannot follow: ") && strings.Contains(e, tc.mention)
			})
			if tc.name == "a conflict on the version the log was at" {
				// The report draws the log's operations.
				dir := t.TempDir()
				report, err := WriteReport(dir, Schedule{Seed: 1}, h, vs, Measures{})
				if err != nil {
					t.Fatal(err)
				}
				if page, err := os.ReadFile(filepath.Join(report, "log.html")); err != nil || !strings.Contains(string(page), "c2/200/2 append on rv 32: conflict") {
					t.Fatalf("the report's log.html does not show the operation (err %v)", err)
				}
			}
			if all := vs[0].String(); !named {
				t.Fatalf("the violation does not name %q as the operation that cannot follow:\n%s", tc.mention, all)
			}
		})
	}
}

// TestLogOperationsUndecidedFailClosed: a log the search could not decide
// in time is not shown linearizable; a violation, since the check could not
// do its job, not a pass.
func TestLogOperationsUndecidedFailClosed(t *testing.T) {
	defer func(f func(porcupine.Model, []porcupine.Operation, time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo)) {
		checkLog = f
	}(checkLog)
	checkLog = func(m porcupine.Model, ops []porcupine.Operation, _ time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
		_, info := porcupine.CheckOperationsVerbose(m, ops, 0)
		return porcupine.Unknown, info
	}
	vs, m := Check(withReads(goodHistory()))
	if !m.LogUndecided || !hasViolation(vs, PropLinearizable, "could not be decided within 20s") {
		t.Fatalf("undecided %v, violations %v; want an undecided log reported as a violation", m.LogUndecided, vs)
	}
}
