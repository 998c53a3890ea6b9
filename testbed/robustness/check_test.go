package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

const sec = int64(time.Second)

func ms(n int64) int64 { return n * int64(time.Millisecond) }

func write(id string, pid int, wid string, result string, mono int64, term, rv string) event.Event {
	return event.Event{Kind: event.Write, ID: id, PID: pid, WID: wid, Result: result, Mono: mono, Term: term, RV: rv, Tenure: 1}
}

// goodHistory is a run that keeps every property: c1 leads, is cut off
// (black hole, in bounds) and steps down; c2 takes over one lease after
// c1's last renewal. c1's late write in its old term lands 100 ms after the
// Lease moved on, inside the fence window, and before any write of c2's.
func goodHistory() *History {
	return &History{
		Seed: 1, Elector: "ours",
		Timing: Timing{LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second,
			FenceWindow: 500 * time.Millisecond, LivenessSlack: 500 * time.Millisecond},
		Start: 0, End: 60 * sec,
		Faults: []Fault{{Kind: KindBlackHole, Target: "c1", PID: 100, Start: 8 * sec, End: 12 * sec, InBounds: true}},
		Events: []event.Event{
			{Kind: event.Ready, ID: "c1", PID: 100, Mono: ms(500), Goroutines: 5},
			{Kind: event.Ready, ID: "c2", PID: 200, Mono: ms(500), Goroutines: 5},
			{Kind: event.Start, ID: "c1", PID: 100, Tenure: 1, Mono: 1 * sec, Term: "u/0/c1"},
			write("c1", 100, "c1/100/1", event.Accepted, 2*sec, "u/0/c1", "12"),
			write("c1", 100, "c1/100/2", event.Accepted, 3*sec, "u/0/c1", "13"),
			{Kind: event.End, ID: "c1", PID: 100, Tenure: 1, Mono: 10 * sec, Term: "u/0/c1"},
			{Kind: event.Start, ID: "c2", PID: 200, Tenure: 1, Mono: 14 * sec, Term: "u/1/c2"},
			{Kind: event.Write, ID: "c1", PID: 100, WID: "c1/100/3", Result: event.Accepted, Mono: 14*sec + ms(100), Term: "u/0/c1", RV: "31", Late: true, Tenure: 1},
			write("c2", 200, "c2/200/1", event.Accepted, 15*sec, "u/1/c2", "32"),
			write("c2", 200, "c2/200/2", event.Fenced, 16*sec, "u/1/c2", ""),
			{Kind: event.End, ID: "c2", PID: 200, Tenure: 1, Mono: 59 * sec, Term: "u/1/c2"},
			{Kind: event.Exit, ID: "c1", PID: 100, Mono: 61 * sec, Goroutines: 5},
			{Kind: event.Exit, ID: "c2", PID: 200, Mono: 61 * sec, Goroutines: 5},
		},
		Lease: []LeaseEvent{
			{Recv: 1 * sec, RV: 10, Term: "u/0/c1", Holder: "c1"},
			{Recv: 5 * sec, RV: 20, Term: "u/0/c1", Holder: "c1"},
			{Recv: 14 * sec, RV: 30, Term: "u/1/c2", Holder: "c2"},
		},
		Log: []LogEvent{
			{Recv: 2 * sec, RV: 12, Added: []string{"c1/100/1 u/0/c1"}},
			{Recv: 3 * sec, RV: 13, Added: []string{"c1/100/2 u/0/c1"}},
			{Recv: 14*sec + ms(100), RV: 31, Added: []string{"c1/100/3 u/0/c1"}},
			{Recv: 15 * sec, RV: 32, Added: []string{"c2/200/1 u/1/c2"}},
		},
		FinalLog: []string{"c1/100/1 u/0/c1", "c1/100/2 u/0/c1", "c1/100/3 u/0/c1", "c2/200/1 u/1/c2"},
		Exits:    []Exit{{ID: "c1", PID: 100}, {ID: "c2", PID: 200}},
	}
}

// properties returns the distinct properties of vs.
func properties(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		if !slices.Contains(out, v.Property) {
			out = append(out, v.Property)
		}
	}
	return out
}

func TestCheckPassesAHistoryThatKeepsEveryProperty(t *testing.T) {
	vs, m := Check(goodHistory())
	if len(vs) != 0 {
		t.Fatalf("violations in a good history:\n%v", vs)
	}
	if m.AcceptedWrites != 4 || m.DeposedAccepted != 1 || m.MaxDeposedWindow != 100*time.Millisecond {
		t.Errorf("measures %+v; want 4 accepted writes, 1 deposed write accepted 100ms after the change", m)
	}
	if m.Heals != 1 || m.MaxLeaderAfterHeal != 2*time.Second {
		t.Errorf("measures %+v; want 1 heal, a leader 2s after it", m)
	}
}

// TestCheckNamesEachViolatedProperty breaks the good history one property
// at a time: the checker names that property, and only it, with the events
// that break it.
func TestCheckNamesEachViolatedProperty(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutate   func(h *History)
		property string
		// mention must appear in the violation's message or events.
		mention string
	}{{
		name: "a term comes back after it ended",
		mutate: func(h *History) {
			h.Lease = append(h.Lease, LeaseEvent{Recv: 58 * sec, RV: 50, Term: "u/0/c1", Holder: "c1"})
		},
		property: PropTerms, mention: "lease rv 50 term u/0/c1",
	}, {
		name: "two candidates start in one term",
		mutate: func(h *History) {
			h.Events[6].Term = "u/0/c1"
		},
		property: PropTerms, mention: "two candidates started leading in term u/0/c1",
	}, {
		name: "an older term's write accepted after a newer term's",
		mutate: func(h *History) {
			h.Events = append(h.Events, write("c1", 100, "c1/100/4", event.Accepted, 14*sec+ms(150), "u/0/c1", "33"))
			h.Log = append(h.Log, LogEvent{Recv: 14*sec + ms(200), RV: 33, Added: []string{"c1/100/4 u/0/c1"}})
			h.FinalLog = append(h.FinalLog, "c1/100/4 u/0/c1")
		},
		property: PropOrder, mention: "log rv 33",
	}, {
		name: "a deposed term's write accepted beyond the fence window",
		mutate: func(h *History) {
			h.Log[2].Recv = 15*sec - ms(100)
		},
		property: PropWindow, mention: "900ms after the Lease left",
	}, {
		name: "an accepted write lost",
		mutate: func(h *History) {
			h.FinalLog = slices.Delete(h.FinalLog, 1, 2)
		},
		property: PropWrites, mention: "c1/100/2 was accepted and is in the log 0 times",
	}, {
		name: "a refused write applied",
		mutate: func(h *History) {
			h.Log = append(h.Log, LogEvent{Recv: 16 * sec, RV: 34, Added: []string{"c2/200/2 u/1/c2"}})
			h.FinalLog = append(h.FinalLog, "c2/200/2 u/1/c2")
		},
		property: PropWrites, mention: "c2/200/2 was refused (fenced) yet is in the log 1 times",
	}, {
		name: "two leaders act at once, every fault in bounds",
		mutate: func(h *History) {
			h.Events[6].Mono = 9 * sec
		},
		property: PropOneLeader, mention: "c1 and c2 acted at once for 1s",
	}, {
		name: "no leader after the faults heal",
		mutate: func(h *History) {
			h.Events[6].Mono = 17 * sec
		},
		property: PropLiveness, mention: "no leader acted within 4.5s after the faults healed at +12.000s",
	}, {
		name: "a candidate does not exit on SIGTERM",
		mutate: func(h *History) {
			h.Exits[1].Code, h.Exits[1].Took = -1, 8*time.Second
		},
		property: PropResidue, mention: "c2 (pid 200) did not exit within 8s of SIGTERM",
	}, {
		name: "a candidate leaves a watch open after its elector stopped",
		mutate: func(h *History) {
			h.Events = append(h.Events, event.Event{Kind: event.Exit, ID: "c2", PID: 200, Mono: 61 * sec, Goroutines: 5, Watches: 1,
				Message: "goroutine 42 [select]:\nk8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive"})
		},
		property: PropResidue, mention: "c2 (pid 200) left 1 watch goroutines running after its elector stopped",
	}, {
		name: "a candidate's goroutines grow across the run",
		mutate: func(h *History) {
			h.Events = append(h.Events, event.Event{Kind: event.Exit, ID: "c1", PID: 100, Mono: 61 * sec, Goroutines: 9,
				Message: "goroutine 77 [chan receive]:\nmain.leftBehind"})
		},
		property: PropResidue, mention: "main.leftBehind",
	}, {
		name: "a regression schedule's own check: a foreign holder stolen from",
		mutate: func(h *History) {
			h.Expect = ExpectForeignHolderWaitedOut
			h.Faults = append(h.Faults, Fault{Kind: KindForeignHolder, Param: intruder, Start: 13 * sec, End: 13 * sec, InBounds: true})
		},
		property: PropExpected, mention: "c2 took the Lease 1s after a foreign holder's write",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := goodHistory()
			tc.mutate(h)
			vs, _ := Check(h)
			if got := properties(vs); !slices.Equal(got, []string{tc.property}) {
				t.Fatalf("violated properties %q; want only %q:\n%v", got, tc.property, vs)
			}
			all := ""
			for _, v := range vs {
				all += v.String() + "\n"
			}
			if !strings.Contains(all, tc.mention) {
				t.Fatalf("the violation does not mention %q:\n%s", tc.mention, all)
			}
		})
	}
}

// TestCheckAllowsADeposedWriteASlowEtcdDelayed: while etcd is slowed, the
// policy's cache learns of the Lease's change late: a deposed term's write
// accepted within the fence window plus four times the delay is measured,
// not a violation; later than that it is.
func TestCheckAllowsADeposedWriteASlowEtcdDelayed(t *testing.T) {
	h := goodHistory()
	h.Log[2].Recv = 15*sec - ms(100) // 900 ms after the change
	h.Faults = append(h.Faults, Fault{Kind: KindEtcdSlowDisk, Latency: 150 * time.Millisecond, Start: 13 * sec, End: 16 * sec})
	if vs, m := Check(h); len(vs) != 0 || m.MaxDeposedWindow != 900*time.Millisecond {
		t.Fatalf("violations %v, largest deposed window %v; want none, 900ms", vs, m.MaxDeposedWindow)
	}
	h.Faults[len(h.Faults)-1].Latency = 50 * time.Millisecond
	if vs, _ := Check(h); !slices.Equal(properties(vs), []string{PropWindow}) {
		t.Fatalf("violated %v; want %s: 900ms is beyond 500ms + 4 x 50ms", properties(vs), PropWindow)
	}
}

// TestCheckMeasuresOverlapBeyondTheBounds: an overlap during a pause longer
// than LeaseDuration - RenewDeadline is measured, not a violation.
func TestCheckMeasuresOverlapBeyondTheBounds(t *testing.T) {
	h := goodHistory()
	h.Events[6].Mono = 9 * sec
	h.Faults = append(h.Faults, Fault{Kind: KindPause, Target: "c1", PID: 100, Param: "2s", Start: 6 * sec, End: 8 * sec})
	vs, m := Check(h)
	if len(vs) != 0 {
		t.Fatalf("violations:\n%v", vs)
	}
	if m.Overlaps != 1 || m.MaxOverlapBeyond != time.Second || m.MaxOverlapInBounds != 0 {
		t.Fatalf("measures %+v; want one overlap of 1s beyond the bounds", m)
	}
}

// TestCheckCountsUpstreamWritesThatLandAfterDeposal: client-go's writes
// carry no term; one that lands while the Lease names another holder is
// counted.
func TestCheckCountsUpstreamWritesThatLandAfterDeposal(t *testing.T) {
	h := goodHistory()
	h.Elector = "upstream"
	for i, l := range h.Log {
		for j, line := range l.Added {
			wid, _ := logLine(line)
			h.Log[i].Added[j] = wid + " upstream:" + wid
		}
	}
	h.FinalLog = nil
	for _, l := range h.Log {
		h.FinalLog = append(h.FinalLog, l.Added...)
	}
	for i := range h.Events {
		h.Events[i].Term = "upstream:x"
	}
	vs, m := Check(h)
	if len(vs) != 0 {
		t.Fatalf("violations:\n%v", vs)
	}
	if m.UpstreamDeposedLanded != 1 {
		t.Fatalf("measures %+v; want 1 deposed upstream write landed", m)
	}
}

// TestReportHoldsWhatReRunningASeedNeeds: a failing seed's report has the
// schedule, the history, the violations and a timeline with the fault
// windows shaded.
func TestReportHoldsWhatReRunningASeedNeeds(t *testing.T) {
	h := goodHistory()
	h.Events[6].Mono = 9 * sec
	vs, m := Check(h)
	sched := Schedule{Seed: 1, Elector: "ours", Duration: time.Minute, Faults: []Planned{{At: 8 * time.Second, For: 4 * time.Second, Kind: KindBlackHole, Target: 0, InBounds: true}}}
	dir, err := WriteReport(t.TempDir(), sched, h, vs, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"schedule.json", "history.json", "violations.json", "measures.json", "timeline.svg"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("report: %v", err)
		}
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`make robustness ARGS="-seed 1 -duration 1m0s"`, "blackhole", PropOneLeader + ": c1 and c2 acted at once"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.txt lacks %q:\n%s", want, report)
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "timeline.svg"))
	if !strings.Contains(string(svg), `fill="#f5b041"`) || strings.Count(string(svg), `fill="#2e86c1"`) != 2 {
		t.Errorf("the timeline lacks the shaded fault window or the two acting intervals:\n%s", svg)
	}
}

// mixedHistory is goodHistory with c2 running elector (c1 runs ours): c2's
// start and writes carry no term, as neither client-go's elector nor
// Istio's gives one.
func mixedHistory(elector string) *History {
	h := goodHistory()
	h.Elector = ElectorMixed
	h.Electors = map[string]string{"c1": ElectorOurs, "c2": elector, "c3": ElectorOurs}
	if elector == ElectorOurs {
		return h
	}
	unfenced := elector + ":c2/200/1"
	for i, e := range h.Events {
		if e.ID == "c2" {
			h.Events[i].Term = unfenced
		}
	}
	h.Log[3].Added = []string{"c2/200/1 " + unfenced}
	h.FinalLog[3] = "c2/200/1 " + unfenced
	return h
}

// TestCheckHoldsOnlyOursToOneLeaderInMixedSchedules: in a schedule of mixed
// electors, an overlap in bounds of ours and Istio's (or client-go's) is
// measured by pair, not a violation, since one leader is promised only
// between two of ours; two of ours overlapping still are.
func TestCheckHoldsOnlyOursToOneLeaderInMixedSchedules(t *testing.T) {
	for _, elector := range []string{ElectorIstio, ElectorUpstream} {
		h := mixedHistory(elector)
		if vs, _ := Check(h); len(vs) != 0 {
			t.Fatalf("%s: violations in a mixed history without overlap:\n%v", elector, vs)
		}
		h.Events[6].Mono = 9 * sec
		vs, m := Check(h)
		if len(vs) != 0 {
			t.Fatalf("%s: an overlap of ours and %s was held to one leader:\n%v", elector, elector, vs)
		}
		pair := map[string]string{ElectorIstio: "istio+ours", ElectorUpstream: "ours+upstream"}[elector]
		if m.UnpromisedOverlaps[pair] != 1 || m.MaxUnpromisedOverlap != time.Second || m.Overlaps != 0 {
			t.Fatalf("%s: measures %+v; want one unpromised %s overlap of 1s and no promised one", elector, m, pair)
		}
	}
	h := mixedHistory(ElectorOurs)
	h.Events[6].Mono = 9 * sec
	vs, _ := Check(h)
	if got := properties(vs); !slices.Equal(got, []string{PropOneLeader}) {
		t.Fatalf("two of ours overlapping in a mixed schedule: violated %q, want only %q:\n%v", got, PropOneLeader, vs)
	}
}

// TestCheckCountsIstioWritesThatLandAfterDeposal: Istio's writes carry no
// term either; one that lands while the Lease names another holder is
// counted apart from client-go's.
func TestCheckCountsIstioWritesThatLandAfterDeposal(t *testing.T) {
	h := mixedHistory(ElectorIstio)
	h.Lease = append(h.Lease, LeaseEvent{Recv: 14*sec + ms(500), RV: 31, Term: "u/2/c3", Holder: "c3"})
	vs, m := Check(h)
	if len(vs) != 0 {
		t.Fatalf("violations:\n%v", vs)
	}
	if m.IstioDeposedLanded != 1 || m.UpstreamDeposedLanded != 0 {
		t.Fatalf("measures %+v; want 1 deposed Istio write landed", m)
	}
}

// hasViolation reports whether vs holds a violation of property whose text
// mentions mention.
func hasViolation(vs []Violation, property, mention string) bool {
	return slices.ContainsFunc(vs, func(v Violation) bool {
		return v.Property == property && strings.Contains(v.String(), mention)
	})
}

// TestCheckHoldsLivenessAfterALeaderStepsDownOnceHealed: a leader that acts
// when the faults heal but stops a moment later, with nobody after it for
// the rest of the run, is no leader after the heal.
func TestCheckHoldsLivenessAfterALeaderStepsDownOnceHealed(t *testing.T) {
	h := goodHistory()
	h.Events[10].Mono = 16*sec + ms(500) // c2 stops acting; nobody takes over
	vs, _ := Check(h)
	if !hasViolation(vs, PropLiveness, "nobody acted for 43.5s from +16.500s") {
		t.Fatalf("a run leaderless from 16.5s to its end at 60s, faults healed at 12s, passed liveness:\n%v", vs)
	}
}

// TestCheckHoldsLivenessWithoutFaults: a run with no fault is held to a
// leader too: from its start, and after a leader stops.
func TestCheckHoldsLivenessWithoutFaults(t *testing.T) {
	h := goodHistory()
	h.Faults = nil
	h.Events[2].Mono = 10 * sec // c1 first acts 10s after the candidates started
	vs, _ := Check(h)
	if !hasViolation(vs, PropLiveness, "nobody acted for 10s from +0.000s") {
		t.Fatalf("a run without faults and nobody acting for its first 10s passed liveness:\n%v", vs)
	}
}

// TestCheckRefusesAWriteAcceptedBeforeTheLeaseHeldItsTerm: a write of a
// term the Lease takes only later was accepted in a term not yet granted:
// the fence let it through. Before the Lease's first version, and between
// two of its versions.
func TestCheckRefusesAWriteAcceptedBeforeTheLeaseHeldItsTerm(t *testing.T) {
	for _, tc := range []struct {
		name        string
		at          int
		recv, rv    int64
		line, term  string
		leaseChange string
	}{
		{name: "before the Lease existed", at: 0, recv: ms(500), rv: 5, line: "c1/100/0 u/0/c1", term: "u/0/c1"},
		{name: "before the Lease moved to it", at: 2, recv: 6 * sec, rv: 25, line: "c2/200/0 u/1/c2", term: "u/1/c2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := goodHistory()
			wid, _ := logLine(tc.line)
			id, _, _ := strings.Cut(wid, "/")
			pid := map[string]int{"c1": 100, "c2": 200}[id]
			h.Events = append(h.Events, write(id, pid, wid, event.Accepted, tc.recv, tc.term, strconv.FormatInt(tc.rv, 10)))
			h.Log = slices.Insert(h.Log, tc.at, LogEvent{Recv: tc.recv, RV: tc.rv, Added: []string{tc.line}})
			h.FinalLog = slices.Insert(h.FinalLog, tc.at, tc.line)
			vs, _ := Check(h)
			if !hasViolation(vs, PropWindow, fmt.Sprintf("write %s of term %s accepted before the Lease held that term", wid, tc.term)) {
				t.Fatalf("a write accepted at rv %d in a term the Lease took later was not reported as such:\n%v", tc.rv, vs)
			}
		})
	}
}

// TestCheckHoldsOurWritesToTheFenceWhateverTheirTerm: a write of a
// candidate running our elector is fenced, whatever its term looks like; a
// term with a colon (as client-go's and Istio's tenures have) does not make
// it unfenced.
func TestCheckHoldsOurWritesToTheFenceWhateverTheirTerm(t *testing.T) {
	h := goodHistory()
	line := "c1/100/4 upstream:u/0/c1"
	h.Events = append(h.Events, write("c1", 100, "c1/100/4", event.Accepted, 20*sec, "upstream:u/0/c1", "33"))
	h.Log = append(h.Log, LogEvent{Recv: 20 * sec, RV: 33, Added: []string{line}})
	h.FinalLog = append(h.FinalLog, line)
	vs, _ := Check(h)
	if !hasViolation(vs, PropOrder, "write c1/100/4 of term upstream:u/0/c1 accepted, a term the Lease never held") {
		t.Fatalf("our candidate's write in a term the Lease never held, accepted after a newer term's, passed:\n%v", vs)
	}
}

// TestCheckHoldsACleanExitToItsResidueReport: a candidate that exited 0
// after SIGTERM but never reported its goroutines and watches (at ready
// and at exit) proves nothing about residue.
func TestCheckHoldsACleanExitToItsResidueReport(t *testing.T) {
	h := goodHistory()
	h.Events = slices.DeleteFunc(h.Events, func(e event.Event) bool { return e.Kind == event.Exit && e.PID == 200 })
	vs, _ := Check(h)
	if !hasViolation(vs, PropResidue, "candidate c2 (pid 200) exited without reporting what it left running") {
		t.Fatalf("a clean exit without an exit report passed:\n%v", vs)
	}
	h = goodHistory()
	h.Events = slices.DeleteFunc(h.Events, func(e event.Event) bool { return e.Kind == event.Ready && e.PID == 100 })
	vs, _ = Check(h)
	if !hasViolation(vs, PropResidue, "candidate c1 (pid 100) never reported how many goroutines it ran before its elector") {
		t.Fatalf("a clean exit without a ready report passed:\n%v", vs)
	}
}

// TestCheckRefusesAHolderChangeWithoutANewTerm: a term number, once the
// Lease names a holder in it, belongs to that holder; another holder in the
// same number is a term that did not grow.
func TestCheckRefusesAHolderChangeWithoutANewTerm(t *testing.T) {
	h := goodHistory()
	h.Lease = append(h.Lease, LeaseEvent{Recv: 20 * sec, RV: 40, Term: "u/1/c3", Holder: "c3"})
	vs, _ := Check(h)
	if !hasViolation(vs, PropTerms, "the Lease went from holder c2 to c3 in one term, u/1") {
		t.Fatalf("the Lease naming c3 in c2's term number passed:\n%v", vs)
	}
}

// TestCheckRefusesATermThatNamesAnotherHolder: a term names its holder; a
// candidate of ours that starts leading or gets a write accepted in a term
// naming another acts in someone else's term, which the fence cannot tell
// from the holder's own.
func TestCheckRefusesATermThatNamesAnotherHolder(t *testing.T) {
	h := goodHistory()
	h.Events[7].Term = "u/1/c2" // c1's late write, in c2's term
	h.Log[2].Added = []string{"c1/100/3 u/1/c2"}
	h.FinalLog[2] = "c1/100/3 u/1/c2"
	h.Log[2].RV, h.Events[7].RV = 31, "31"
	vs, _ := Check(h)
	if !hasViolation(vs, PropTerms, "write c1/100/3 accepted in term u/1/c2, which names c2, not its writer") {
		t.Fatalf("c1's write accepted in c2's term passed:\n%v", vs)
	}
	h = goodHistory()
	for _, i := range []int{6, 10} { // c2's tenure becomes c1's second
		h.Events[i].ID, h.Events[i].PID, h.Events[i].Tenure = "c1", 100, 2
	}
	vs, _ = Check(h)
	if !hasViolation(vs, PropTerms, "c1 started leading in term u/1/c2, which names c2") {
		t.Fatalf("c1 leading in c2's term passed:\n%v", vs)
	}
}

// TestCheckRefusesTwoTenuresOfOneCandidateInOneTerm: each elector of ours
// starts a term of its own, also when the Lease already names its identity
// (a process restarted, a new Run): a deposed tenure's late write in a term
// a newer tenure reuses is one the fence cannot refuse.
func TestCheckRefusesTwoTenuresOfOneCandidateInOneTerm(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pid, tenure int
	}{{"a second tenure of the process", 100, 2}, {"a restarted process", 300, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			h := goodHistory()
			h.Events = append(h.Events,
				event.Event{Kind: event.Start, ID: "c1", PID: tc.pid, Tenure: tc.tenure, Mono: 12 * sec, Term: "u/0/c1"},
				event.Event{Kind: event.End, ID: "c1", PID: tc.pid, Tenure: tc.tenure, Mono: 13 * sec, Term: "u/0/c1"})
			vs, _ := Check(h)
			if !hasViolation(vs, PropTerms, "two tenures of c1 started leading in term u/0/c1") {
				t.Fatalf("c1 leading twice in one term passed:\n%v", vs)
			}
		})
	}
}

// foreignHolderAfterARestart is goodHistory with seed 174's ending: the API
// server restarts from 20s to 30s, c2 stops acting at 29s, a foreign holder
// writes the Lease 50ms after the restart ended, and c1 leads from
// c1Starts on, in the term after the intruder's.
func foreignHolderAfterARestart(c1Starts int64) *History {
	h := goodHistory()
	h.Faults = append(h.Faults,
		Fault{Kind: KindAPIServerRestart, Start: 20 * sec, End: 30 * sec, InBounds: true},
		Fault{Kind: KindForeignHolder, Param: "intruder", Start: 30*sec + ms(50), End: 30*sec + ms(60), InBounds: true})
	h.Events[10].Mono = 29 * sec // c2's term ends in the restart
	h.Events = append(h.Events,
		event.Event{Kind: event.Start, ID: "c1", PID: 100, Tenure: 2, Mono: c1Starts, Term: "u/3/c1"},
		event.Event{Kind: event.End, ID: "c1", PID: 100, Tenure: 2, Mono: 59 * sec, Term: "u/3/c1"})
	h.Lease = append(h.Lease,
		LeaseEvent{Recv: 30*sec + ms(60), RV: 40, Term: "u/2/intruder", Holder: "intruder"},
		LeaseEvent{Recv: c1Starts, RV: 50, Term: "u/3/c1", Holder: "c1"})
	return h
}

// TestCheckCountsAHealFromWhenCutOffCandidatesLookAgain: a candidate whose
// watch the restart ended sees the foreign holder's write only at its next
// look, up to (1 + JitterFactor) RetryPeriods after the restart, and waits
// out the intruder's lease from then (seed 174: c1 led 4.59s after the
// intruder's write). Later than that plus the lease and the slack is still
// no leader.
func TestCheckCountsAHealFromWhenCutOffCandidatesLookAgain(t *testing.T) {
	if vs, _ := Check(foreignHolderAfterARestart(34*sec + ms(800))); len(vs) != 0 {
		t.Fatalf("c1 leading 4.74s after a foreign holder's write 50ms after an API server restart: violations\n%v", vs)
	}
	// The restart ended at 30s: every candidate has looked by 32.2s, and a
	// leader is due by 36.7s.
	vs, _ := Check(foreignHolderAfterARestart(37 * sec))
	if !hasViolation(vs, PropLiveness, "no leader acted within 4.5s after the faults healed at +32.200s") {
		t.Fatalf("c1 leading 7s after an API server restart and a foreign holder passed liveness:\n%v", vs)
	}
}
