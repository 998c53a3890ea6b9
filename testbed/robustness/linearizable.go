package robustness

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// The log object as a sequential object: a list of lines at a
// resourceVersion. Candidates read it, then append a line with an update
// conditional on the version read; the harness reads it once at the end.
// The checker asks porcupine whether some order of these operations, each
// taking effect at one instant between its call and its answer, explains
// every answer (linearizability).

// logState is the log at one version: its resourceVersion (0: no log yet),
// how many lines it has and a hash of them in order.
type logState struct {
	rv    int64
	lines int
	sum   uint64
}

// appended is s with line appended, stored at rv.
func (s logState) appended(line string, rv int64) logState {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(s.sum >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(line))
	return logState{rv: rv, lines: s.lines + 1, sum: h.Sum64()}
}

// stateOf is the log holding lines at rv.
func stateOf(lines []string, rv int64) logState {
	s := logState{}
	for _, l := range lines {
		s = s.appended(l, 0)
	}
	s.rv = rv
	return s
}

// anyVersion is an append's expected version when it is not known (a line
// its writer never reported: it was killed first).
const anyVersion = -1

// logOp is one operation on the log.
type logOp struct {
	// read: a read that saw the log at state (a candidate's read sees only
	// the version: state.rv, state.lines < 0).
	read  bool
	state logState
	// An append of line, conditional on the log being at expect (0:
	// absent, a create), answered result, stored at rv when accepted.
	line   string
	expect int64
	result string
	rv     int64
	// what names the operation in a violation.
	what string
}

// stepLog is the sequential log: reads see the current version, an append
// is stored only on the version it was conditional on and conflicts on any
// other, a write refused (fenced or otherwise) changes nothing.
func stepLog(state, input, _ any) (bool, any) {
	s, op := state.(logState), input.(logOp)
	if op.read {
		if op.state.lines < 0 {
			return s.rv == op.state.rv, s
		}
		return s == op.state, s
	}
	matches := op.expect == anyVersion || op.expect == s.rv
	switch op.result {
	case event.Accepted:
		if !matches || op.rv <= s.rv {
			return false, s
		}
		return true, s.appended(op.line, op.rv)
	case event.Conflict:
		return !matches, s
	default:
		return true, s
	}
}

var logModel = porcupine.Model{
	Init:  func() any { return logState{} },
	Step:  stepLog,
	Equal: func(a, b any) bool { return a.(logState) == b.(logState) },
	Hash:  func(s any) uint64 { return s.(logState).sum ^ uint64(s.(logState).rv) },
	DescribeOperation: func(input, _ any) string {
		return input.(logOp).what
	},
	DescribeState: func(state any) string {
		s := state.(logState)
		return fmt.Sprintf("rv %d, %d lines", s.rv, s.lines)
	},
}

// logOperations turns h into operations on the log, on the machine's
// monotonic clock. A write with no answer (unknown) took effect if its line
// is in a version the harness's watch saw, at that version, and its answer
// is taken to come after everything; otherwise it never did and is left out,
// as is a write that was never sent. A line in the log nobody reported (its
// writer was killed first) is an append of unknown condition, from the
// schedule's start on.
func logOperations(h *History) []porcupine.Operation {
	landed := map[string]int64{}
	for _, v := range h.Log {
		for _, line := range v.Added {
			wid, _ := logLine(line)
			if _, ok := landed[wid]; !ok {
				landed[wid] = v.RV
			}
		}
	}
	never := int64(math.MaxInt64)
	var ops []porcupine.Operation
	client := map[string]int{}
	clientOf := func(id string) int {
		if n, ok := client[id]; ok {
			return n
		}
		client[id] = len(client)
		return client[id]
	}
	reported := map[string]bool{}
	for _, e := range h.Events {
		if e.Kind != event.Write {
			continue
		}
		reported[e.WID] = true
		if e.Read == "" {
			// Its read failed: nothing was sent.
			continue
		}
		expect := int64(0)
		if e.Read != event.Absent {
			var err error
			if expect, err = strconv.ParseInt(e.Read, 10, 64); err != nil {
				continue
			}
		}
		c := clientOf(fmt.Sprintf("%s/%d", e.ID, e.PID))
		ops = append(ops, porcupine.Operation{ClientId: c, Call: e.Sent, Return: e.ReadDone,
			Input: logOp{read: true, state: logState{rv: expect, lines: -1}, what: fmt.Sprintf("%s read rv %d", e.WID, expect)}})
		op := logOp{line: fmt.Sprintf("%s %s", e.WID, e.Term), expect: expect, result: e.Result}
		ret := e.Mono
		switch e.Result {
		case event.Accepted:
			op.rv, _ = strconv.ParseInt(e.RV, 10, 64)
		case event.Conflict:
		case event.Unknown:
			rv, ok := landed[e.WID]
			if !ok {
				continue
			}
			op.result, op.rv, ret = event.Accepted, rv, never
		default:
			// Refused (by the fence or otherwise): it changed
			// nothing, in any state.
			continue
		}
		op.what = fmt.Sprintf("%s append on rv %d: %s", e.WID, expect, op.result)
		if op.result == event.Accepted {
			op.what += fmt.Sprintf(" rv %d", op.rv)
		}
		ops = append(ops, porcupine.Operation{ClientId: c, Call: e.ReadDone, Return: ret, Input: op})
	}
	for _, line := range h.FinalLog {
		wid, _ := logLine(line)
		if reported[wid] {
			continue
		}
		reported[wid] = true
		rv, ok := landed[wid]
		if !ok {
			continue
		}
		ops = append(ops, porcupine.Operation{ClientId: clientOf(wid), Call: h.Start, Return: never,
			Input: logOp{line: line, expect: anyVersion, result: event.Accepted, rv: rv, what: fmt.Sprintf("%s append (never reported): stored rv %d", wid, rv)}})
	}
	if h.FinalRead.Return != 0 {
		ops = append(ops, porcupine.Operation{ClientId: clientOf("harness"), Call: h.FinalRead.Call, Return: h.FinalRead.Return,
			Input: logOp{read: true, state: stateOf(h.FinalLog, h.FinalRead.RV),
				what: fmt.Sprintf("final read: rv %d, %d lines", h.FinalRead.RV, len(h.FinalLog))}})
	}
	return ops
}

// linearizeTimeout bounds the search; a history it cannot decide in time is
// reported as undecided, and as a violation: not shown linearizable, it
// fails closed.
const linearizeTimeout = 20 * time.Second

// checkLog is porcupine's search, which a test can replace.
var checkLog = porcupine.CheckOperationsVerbose

// linearizable checks that the log's operations are linearizable against
// the sequential log.
func (c *checker) linearizable() {
	if len(c.h.Gaps) > 0 {
		// Unknown writes are resolved through the watch: with a gap in it
		// they cannot be.
		return
	}
	ops := logOperations(c.h)
	c.m.LogOperations = len(ops)
	result, info := checkLog(logModel, ops, linearizeTimeout)
	switch result {
	case porcupine.Ok:
	case porcupine.Unknown:
		c.m.LogUndecided = true
		c.violate(PropLinearizable, fmt.Sprintf("the log's %d operations could not be decided within %v: not shown linearizable", len(ops), linearizeTimeout))
	case porcupine.Illegal:
		c.violate(PropLinearizable, "the log's operations are not linearizable: no order of them, each taking effect between its call and its answer, explains every answer",
			c.nonLinearizable(ops, info)...)
	}
}

// nonLinearizable names the operations where the longest linearizable
// prefix stops: its last few, and those that could not come next.
func (c *checker) nonLinearizable(ops []porcupine.Operation, info porcupine.LinearizationInfo) []string {
	var longest []porcupine.Operation
	for _, partition := range info.PartialLinearizationsOperations() {
		for _, lin := range partition {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	describe := func(o porcupine.Operation) string {
		ret := "never answered"
		if o.Return != math.MaxInt64 {
			ret = "answered " + c.at(o.Return)
		}
		return fmt.Sprintf("%s (called %s, %s)", o.Input.(logOp).what, c.at(o.Call), ret)
	}
	var out []string
	from := max(0, len(longest)-3)
	for _, o := range longest[from:] {
		out = append(out, "linearized: "+describe(o))
	}
	done := map[string]bool{}
	for _, o := range longest {
		done[o.Input.(logOp).what] = true
	}
	var next []porcupine.Operation
	for _, o := range ops {
		if !done[o.Input.(logOp).what] {
			next = append(next, o)
		}
	}
	slices.SortFunc(next, func(a, b porcupine.Operation) int {
		if a.Return != b.Return {
			if a.Return < b.Return {
				return -1
			}
			return 1
		}
		return int(a.Call - b.Call)
	})
	for _, o := range next[:min(len(next), 3)] {
		out = append(out, "cannot follow: "+describe(o))
	}
	return out
}

// visualizeLog writes porcupine's view of h's log operations (an HTML
// timeline, each client a row, the longest linearizable orders marked) to
// path, with the fault windows as annotations.
func visualizeLog(h *History, path string) error {
	ops := logOperations(h)
	_, info := porcupine.CheckOperationsVerbose(logModel, ops, linearizeTimeout)
	c := &checker{h: h}
	var faults []porcupine.Annotation
	for _, f := range h.Faults {
		color := "#f5b041"
		if !f.InBounds {
			color = "#e74c3c"
		}
		faults = append(faults, porcupine.Annotation{Tag: "faults", Start: f.Start, End: f.End,
			Description: f.Kind, Details: c.fault(f), BackgroundColor: color})
	}
	info.AddAnnotations(faults)
	return porcupine.VisualizePath(logModel, info, path)
}
