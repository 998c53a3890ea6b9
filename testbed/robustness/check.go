package robustness

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// The properties the checker holds a history to.
const (
	// PropTerms: terms never repeat, and a Lease's transitions only grow
	// (a transitions number names one holder); no two tenures lead in one
	// term, and ours lead and write only in terms naming themselves.
	PropTerms = "fencing: terms"
	// PropOrder: once a write of a newer term to the log is accepted, no
	// write of an older term is accepted after it (in the API server's
	// order).
	PropOrder = "fencing: order"
	// PropWindow: a write is accepted only once the Lease took its term,
	// and a write of a term the Lease has left only within the policy's
	// cache window after the change.
	PropWindow = "fencing: window"
	// PropWrites: no accepted write is lost or applied twice, and no
	// refused write is applied.
	PropWrites = "fencing: writes"
	// PropOneLeader: acting intervals never overlap while the faults stay
	// inside the declared bounds.
	PropOneLeader = "one leader"
	// PropLiveness: a leader acts within LeaseDuration plus a slack after
	// the faults heal, and while no fault is injected no stretch without
	// one lasts longer.
	PropLiveness = "liveness"
	// PropResidue: every candidate told to stop exits cleanly, with no
	// more goroutines than it had before its first elector ran and no
	// watch left open, and reports both counts.
	PropResidue = "no residue"
	// PropExpected: a regression schedule's own check (History.Expect).
	PropExpected = "regression"
	// PropLinearizable: the log's reads and conditional appends, each
	// with its answer and its call and answer times, are linearizable
	// against a sequential log.
	PropLinearizable = "linearizable log"
)

// Violation is one broken property, with the events that break it.
type Violation struct {
	Property string   `json:"property"`
	Message  string   `json:"message"`
	Events   []string `json:"events,omitempty"`
}

func (v Violation) String() string {
	s := v.Property + ": " + v.Message
	for _, e := range v.Events {
		s += "\n\t" + e
	}
	return s
}

// Measures are what the checker measured, violated or not.
type Measures struct {
	AcceptedWrites int `json:"acceptedWrites"`
	// FencedWrites counts writes the fencing policy refused: the fence
	// at work.
	FencedWrites int `json:"fencedWrites"`
	// DeposedAccepted counts writes of our elector accepted while the
	// Lease had left their term; MaxDeposedWindow is the longest after
	// the change one was accepted.
	DeposedAccepted  int           `json:"deposedAccepted"`
	MaxDeposedWindow time.Duration `json:"maxDeposedWindow"`
	// StaleAfterNewer counts writes of an older term accepted after a
	// newer term's write.
	StaleAfterNewer int `json:"staleAfterNewer"`
	// UpstreamDeposedLanded counts writes of client-go's elector that
	// landed while the Lease named another holder (or none).
	UpstreamDeposedLanded int `json:"upstreamDeposedLanded"`
	// IstioDeposedLanded counts the same for Istio's fork.
	IstioDeposedLanded int `json:"istioDeposedLanded"`
	// Overlaps counts overlapping acting intervals; the longest in and
	// out of the bounds.
	Overlaps           int           `json:"overlaps"`
	MaxOverlapInBounds time.Duration `json:"maxOverlapInBounds"`
	MaxOverlapBeyond   time.Duration `json:"maxOverlapBeyond"`
	// UnpromisedOverlaps counts, in a schedule of mixed electors, the
	// overlaps of two candidates not both ours, where one leader is not
	// promised, by pair ("istio+ours"); MaxUnpromisedOverlap is the
	// longest, in bounds or not.
	UnpromisedOverlaps   map[string]int `json:"unpromisedOverlaps,omitempty"`
	MaxUnpromisedOverlap time.Duration  `json:"maxUnpromisedOverlap,omitempty"`
	// Heals counts the moments the faults healed with a quiet stretch
	// after them; MaxLeaderAfterHeal is the longest until a leader acted.
	Heals int `json:"heals"`
	// ResidueChecked counts candidates whose goroutines were counted at
	// exit; MaxGoroutineGrowth is the most any ran beyond its count at
	// start.
	ResidueChecked     int           `json:"residueChecked"`
	MaxGoroutineGrowth int           `json:"maxGoroutineGrowth"`
	MaxLeaderAfterHeal time.Duration `json:"maxLeaderAfterHeal"`
	// LogOperations counts the log operations checked for
	// linearizability; LogUndecided is set when the check ran out of
	// time.
	LogOperations int  `json:"logOperations"`
	LogUndecided  bool `json:"logUndecided,omitempty"`
	// Storms are the conflict storms' impacts, in the order they ran.
	Storms []StormImpact `json:"storms,omitempty"`
}

// Check holds h to every property and returns what broke and what it
// measured.
func Check(h *History) ([]Violation, Measures) {
	c := &checker{h: h}
	c.terms()
	c.order()
	c.writes()
	c.linearizable()
	c.oneLeader()
	c.liveness()
	c.residue()
	c.expected()
	c.storms()
	return c.violations, c.m
}

type checker struct {
	h          *History
	violations []Violation
	m          Measures
	// first is the index in h.Lease where each term first appeared.
	first map[string]int
}

func (c *checker) violate(property, message string, events ...string) {
	c.violations = append(c.violations, Violation{Property: property, Message: message, Events: events})
}

// at formats a monotonic time relative to the schedule's start.
func (c *checker) at(t int64) string {
	return fmt.Sprintf("+%.3fs", time.Duration(t-c.h.Start).Seconds())
}

func (c *checker) lease(i int) string {
	l := c.h.Lease[i]
	if l.Deleted {
		return fmt.Sprintf("lease rv %d deleted, seen %s", l.RV, c.at(l.Recv))
	}
	return fmt.Sprintf("lease rv %d term %s, seen %s", l.RV, l.Term, c.at(l.Recv))
}

func (c *checker) candidate(e event.Event) string {
	s := fmt.Sprintf("%s %s pid %d at %s", e.Kind, e.ID, e.PID, c.at(e.Mono))
	if e.Kind == event.Ready || e.Kind == event.Exit {
		s += fmt.Sprintf(" goroutines %d watches %d", e.Goroutines, e.Watches)
	}
	if e.Term != "" {
		s += " term " + e.Term
	}
	if e.Kind == event.Write {
		s += fmt.Sprintf(" wid %s %s", e.WID, e.Result)
		if e.RV != "" {
			s += " rv " + e.RV
		}
		if e.Late {
			s += " (late)"
		}
	}
	return s
}

// electorOf is the elector candidate id runs.
func (c *checker) electorOf(id string) string {
	if e, ok := c.h.Electors[id]; ok {
		return e
	}
	return c.h.Elector
}

// ours reports whether candidate id runs our elector: only its starts carry
// terms, and only between two of ours is one leader promised.
func (c *checker) ours(id string) bool { return c.electorOf(id) == ElectorOurs }

// terms checks that the Lease's terms never come back once left, that its
// transitions only grow under one UID, and that no two candidates started
// leading in one term.
func (c *checker) terms() {
	c.first = map[string]int{}
	ended := map[string]int{}
	transitions := map[string]int64{}
	// holderOf is the index in h.Lease of the first version naming a
	// holder in each term number ("<uid>/<transitions>").
	holderOf := map[string]int{}
	prev := -1
	for i, l := range c.h.Lease {
		if l.Deleted {
			if prev >= 0 {
				ended[c.h.Lease[prev].Term] = i
			}
			prev = -1
			continue
		}
		if prev < 0 || c.h.Lease[prev].Term != l.Term {
			if prev >= 0 {
				ended[c.h.Lease[prev].Term] = i
			}
			if j, seen := c.first[l.Term]; seen {
				c.violate(PropTerms, fmt.Sprintf("term %s came back after it had ended", l.Term), c.lease(j), c.lease(ended[l.Term]), c.lease(i))
			} else {
				c.first[l.Term] = i
			}
		}
		uid, n, _ := splitTerm(l.Term)
		if old, ok := transitions[uid]; ok && n < old {
			c.violate(PropTerms, fmt.Sprintf("the Lease's transitions went down from %d to %d", old, n), c.lease(i))
		}
		// A term number names one holder: a Lease that changes hands
		// counts a transition (a released Lease names nobody).
		number := fmt.Sprintf("%s/%d", uid, n)
		if k, ok := holderOf[number]; ok && l.Holder != "" && c.h.Lease[k].Holder != l.Holder {
			c.violate(PropTerms, fmt.Sprintf("the Lease went from holder %s to %s in one term, %s", c.h.Lease[k].Holder, l.Holder, number), c.lease(k), c.lease(i))
		} else if !ok && l.Holder != "" {
			holderOf[number] = i
		}
		transitions[uid] = max(transitions[uid], n)
		prev = i
	}
	leaders := map[string]event.Event{}
	for _, e := range c.h.Events {
		if e.Kind != event.Start || !c.ours(e.ID) {
			continue
		}
		if other, ok := leaders[e.Term]; ok && other.ID != e.ID {
			c.violate(PropTerms, fmt.Sprintf("two candidates started leading in term %s", e.Term), c.candidate(other), c.candidate(e))
		} else if ok && (other.PID != e.PID || other.Tenure != e.Tenure) {
			// Each elector of ours starts a term of its own, even on a
			// Lease naming its identity: one tenure's late writes must
			// not pass for the next's.
			c.violate(PropTerms, fmt.Sprintf("two tenures of %s started leading in term %s", e.ID, e.Term), c.candidate(other), c.candidate(e))
		}
		leaders[e.Term] = e
		if _, _, holder := splitTerm(e.Term); holder != e.ID {
			c.violate(PropTerms, fmt.Sprintf("%s started leading in term %s, which names %s", e.ID, e.Term, holder), c.candidate(e))
		}
		if _, ok := c.first[e.Term]; !ok && len(c.h.Gaps) == 0 {
			c.violate(PropTerms, fmt.Sprintf("a candidate started leading in term %s, which the Lease never held", e.Term), c.candidate(e))
		}
	}
}

// splitTerm reads "<uid>/<transitions>/<holder>".
func splitTerm(term string) (uid string, transitions int64, holder string) {
	parts := strings.SplitN(term, "/", 3)
	if len(parts) != 3 {
		return term, 0, ""
	}
	n, _ := strconv.ParseInt(parts[1], 10, 64)
	return parts[0], n, parts[2]
}

// logLine reads a log line, "<wid> <term>".
func logLine(line string) (wid, term string) {
	wid, term, _ = strings.Cut(line, " ")
	return wid, term
}

// order walks the log's versions in the API server's order beside the
// Lease's: the terms of accepted writes never go back, and a write of a
// term the Lease had left is accepted only within the fence window.
func (c *checker) order() {
	lease := c.h.Lease
	li := -1
	newest, newestAt := -1, ""
	for _, v := range c.h.Log {
		for li+1 < len(lease) && lease[li+1].RV < v.RV {
			li++
		}
		for _, line := range v.Added {
			wid, term := logLine(line)
			here := fmt.Sprintf("log rv %d: %q, seen %s", v.RV, line, c.at(v.Recv))
			// Whether a line is fenced is the writer's elector's
			// to say, not its term's shape: a line of ours is
			// held to the fence whatever its term reads.
			writer, _, _ := strings.Cut(wid, "/")
			if elector := c.electorOf(writer); elector != ElectorOurs {
				if li >= 0 && (lease[li].Deleted || lease[li].Holder != writer) {
					if elector == ElectorIstio {
						c.m.IstioDeposedLanded++
					} else {
						c.m.UpstreamDeposedLanded++
					}
				}
				continue
			}
			if _, _, holder := splitTerm(term); holder != writer {
				c.violate(PropTerms, fmt.Sprintf("write %s accepted in term %s, which names %s, not its writer", wid, term, holder), here)
			}
			rank, held := c.first[term]
			if !held {
				c.violate(PropOrder, fmt.Sprintf("write %s of term %s accepted, a term the Lease never held", wid, term), here)
				continue
			}
			if rank < newest {
				c.m.StaleAfterNewer++
				c.violate(PropOrder, fmt.Sprintf("write %s of term %s accepted after a write of the newer term %s", wid, term, lease[newest].Term), newestAt, c.lease(rank), c.lease(newest), here)
			} else if rank > newest {
				newest, newestAt = rank, here
			}
			if rank > li {
				// Accepted before the Lease took its term: no fence
				// should pass a term not yet granted.
				c.violate(PropWindow, fmt.Sprintf("write %s of term %s accepted before the Lease held that term", wid, term), c.lease(rank), here)
				continue
			}
			if lease[li].Deleted || lease[li].Term != term {
				// The Lease had left the term: find when.
				j := li
				for j >= 0 && (lease[j].Deleted || lease[j].Term != term) {
					j--
				}
				change := j + 1
				window := time.Duration(v.Recv - lease[change].Recv)
				c.m.DeposedAccepted++
				c.m.MaxDeposedWindow = max(c.m.MaxDeposedWindow, window)
				allowed := c.h.Timing.FenceWindow + c.etcdDelay(lease[change].Recv, v.Recv)
				if window > allowed {
					c.violate(PropWindow, fmt.Sprintf("write %s of term %s accepted %v after the Lease left that term (the fence window is %v)", wid, term, window, allowed), c.lease(change), c.lease(li), here)
				}
			}
		}
	}
}

// etcdDelay is how much longer than the fence window a deposed write may be
// accepted between from and to because etcd was slowed then: the policy's
// cache of the Lease, fed by a watch on etcd, learns of the change a delay
// late, and the write reaches etcd and the harness's watch another two
// delays later; four delays to be safe.
func (c *checker) etcdDelay(from, to int64) time.Duration {
	var d time.Duration
	for _, f := range c.h.Faults {
		if f.Kind == KindEtcdSlowDisk && f.Start <= to && f.End+int64(4*f.Latency) >= from {
			d = max(d, 4*f.Latency)
		}
	}
	return d
}

// writes checks the log against what the candidates were told: every
// accepted write in it exactly once, no refused one, nothing unknown.
func (c *checker) writes() {
	var all []string
	for _, v := range c.h.Log {
		if v.Rewritten {
			c.violate(PropWrites, fmt.Sprintf("log version rv %d does not start with the lines before it: accepted writes were lost", v.RV))
		}
		all = append(all, v.Added...)
	}
	if len(c.h.Gaps) == 0 && !slices.Equal(all, c.h.FinalLog) {
		c.violate(PropWrites, fmt.Sprintf("the final log (%d lines) is not the lines its versions appended (%d)", len(c.h.FinalLog), len(all)))
	}
	count := map[string]int{}
	for _, line := range c.h.FinalLog {
		wid, _ := logLine(line)
		count[wid]++
	}
	reported := map[string]bool{}
	for _, e := range c.h.Events {
		if e.Kind != event.Write {
			continue
		}
		reported[e.WID] = true
		n := count[e.WID]
		switch e.Result {
		case event.Accepted:
			c.m.AcceptedWrites++
			if n != 1 {
				c.violate(PropWrites, fmt.Sprintf("write %s was accepted and is in the log %d times", e.WID, n), c.candidate(e))
			}
		case event.Fenced:
			c.m.FencedWrites++
			if n != 0 {
				c.violate(PropWrites, fmt.Sprintf("write %s was refused (%s) yet is in the log %d times", e.WID, e.Result, n), c.candidate(e))
			}
		case event.Unknown:
			if n > 1 {
				c.violate(PropWrites, fmt.Sprintf("write %s is in the log %d times", e.WID, n), c.candidate(e))
			}
		default:
			if n != 0 {
				c.violate(PropWrites, fmt.Sprintf("write %s was refused (%s) yet is in the log %d times", e.WID, e.Result, n), c.candidate(e))
			}
		}
	}
	killed := map[int]bool{}
	for _, f := range c.h.Faults {
		if f.Kind == KindKill {
			killed[f.PID] = true
		}
	}
	for _, line := range c.h.FinalLog {
		wid, _ := logLine(line)
		if reported[wid] {
			continue
		}
		reported[wid] = true // once per wid
		parts := strings.Split(wid, "/")
		pid := 0
		if len(parts) == 3 {
			pid, _ = strconv.Atoi(parts[1])
		}
		// A process killed between its write and its report leaves a
		// line nobody reported.
		if !killed[pid] {
			c.violate(PropWrites, fmt.Sprintf("write %s is in the log %d times, but its writer, which was not killed, never reported it", wid, count[wid]))
		} else if count[wid] > 1 {
			c.violate(PropWrites, fmt.Sprintf("write %s is in the log %d times", wid, count[wid]))
		}
	}
}

// interval is one tenure's acting, from OnStartedLeading until it returned.
type interval struct {
	start, end event.Event
	// until is when it ended (end.Mono, or when the process died).
	until int64
}

func (c *checker) intervals() []interval {
	type tenure struct {
		id     string
		pid, n int
	}
	open := map[tenure]int{}
	var out []interval
	for _, e := range c.h.Events {
		k := tenure{e.ID, e.PID, e.Tenure}
		switch e.Kind {
		case event.Start:
			open[k] = len(out)
			out = append(out, interval{start: e, until: -1})
		case event.End:
			if i, ok := open[k]; ok {
				out[i].end, out[i].until = e, e.Mono
				delete(open, k)
			}
		}
	}
	died := map[int]int64{}
	for _, f := range c.h.Faults {
		if f.Kind == KindKill {
			died[f.PID] = f.Start
		}
	}
	for _, i := range open {
		if t, ok := died[out[i].start.PID]; ok {
			out[i].until = t
		} else {
			// Never reported its end: it acted to the last.
			out[i].until = c.lastOf(out[i].start.PID)
		}
	}
	slices.SortFunc(out, func(a, b interval) int { return int(a.start.Mono - b.start.Mono) })
	return out
}

func (c *checker) lastOf(pid int) int64 {
	last := c.h.End
	for _, e := range c.h.Events {
		if e.PID == pid {
			last = max(last, e.Mono)
		}
	}
	return last
}

// beyond reports whether [from, to] meets a fault beyond the bounds, or the
// time after one until a lease and a renew deadline have passed (on a clock
// slowed by the fault, the renew deadline its waits started with).
func (c *checker) beyond(from, to int64) (Fault, bool) {
	for _, f := range c.h.Faults {
		deadline := c.h.Timing.RenewDeadline
		if f.Kind == KindClock && f.Rate > 0 && f.Rate < 1 {
			deadline = time.Duration(float64(deadline) / f.Rate)
		}
		after := int64(c.h.Timing.LeaseDuration + deadline)
		if !f.InBounds && f.Start <= to && f.End+after >= from {
			return f, true
		}
	}
	return Fault{}, false
}

func (c *checker) fault(f Fault) string {
	bounds := "in bounds"
	if !f.InBounds {
		bounds = "beyond the bounds"
	}
	return fmt.Sprintf("fault %s %s %s (%s) from %s to %s", f.Kind, f.Target, f.Param, bounds, c.at(f.Start), c.at(f.End))
}

// oneLeader checks that no two processes running our elector act at once
// while the faults stay in bounds, and measures the overlaps, those of other
// electors too.
func (c *checker) oneLeader() {
	ivs := c.intervals()
	for i := range ivs {
		for j := i + 1; j < len(ivs); j++ {
			a, b := ivs[i], ivs[j]
			if b.start.Mono >= a.until {
				continue
			}
			if a.start.PID == b.start.PID {
				continue
			}
			from, to := b.start.Mono, min(a.until, b.until)
			overlap := time.Duration(to - from)
			promised := c.ours(a.start.ID) && c.ours(b.start.ID)
			if c.h.Elector == ElectorMixed && !promised {
				pair := []string{c.electorOf(a.start.ID), c.electorOf(b.start.ID)}
				slices.Sort(pair)
				if c.m.UnpromisedOverlaps == nil {
					c.m.UnpromisedOverlaps = map[string]int{}
				}
				c.m.UnpromisedOverlaps[pair[0]+"+"+pair[1]]++
				c.m.MaxUnpromisedOverlap = max(c.m.MaxUnpromisedOverlap, overlap)
				continue
			}
			c.m.Overlaps++
			if _, excused := c.beyond(from, to); excused {
				c.m.MaxOverlapBeyond = max(c.m.MaxOverlapBeyond, overlap)
				continue
			}
			c.m.MaxOverlapInBounds = max(c.m.MaxOverlapInBounds, overlap)
			if !promised {
				continue
			}
			events := []string{c.candidate(a.start), c.candidate(b.start)}
			if a.end.Kind != "" {
				events = append(events, c.candidate(a.end))
			}
			if b.end.Kind != "" {
				events = append(events, c.candidate(b.end))
			}
			for _, g := range c.h.Faults {
				if g.Start <= to && g.End+int64(c.h.Timing.LeaseDuration) >= from-int64(c.h.Timing.LeaseDuration) {
					events = append(events, c.fault(g))
				}
			}
			c.violate(PropOneLeader, fmt.Sprintf("%s and %s acted at once for %v from %s, with every fault in bounds", a.start.ID, b.start.ID, overlap, c.at(from)), events...)
		}
	}
}

// liveness checks that after each fault heals, with no other fault for a
// lease and the slack, a leader acts within that time.
func (c *checker) liveness() {
	ivs := c.intervals()
	bound := c.h.Timing.LeaseDuration + c.h.Timing.LivenessSlack
	for i, f := range c.h.Faults {
		healed := c.healedAt(i)
		deadline := healed + int64(bound)
		if deadline > c.h.End {
			continue
		}
		quiet := true
		for j, g := range c.h.Faults {
			if j != i && g.Start <= deadline && g.End >= healed {
				quiet = false
			}
		}
		if !quiet {
			continue
		}
		c.m.Heals++
		leaderAt := int64(-1)
		for _, iv := range ivs {
			if iv.until > healed {
				t := max(iv.start.Mono, healed)
				if leaderAt < 0 || t < leaderAt {
					leaderAt = t
				}
			}
		}
		if leaderAt < 0 || leaderAt > deadline {
			c.m.MaxLeaderAfterHeal = max(c.m.MaxLeaderAfterHeal, time.Duration(c.h.End-healed))
			c.violate(PropLiveness, fmt.Sprintf("no leader acted within %v after the faults healed at %s", bound, c.at(healed)), c.fault(f))
			continue
		}
		c.m.MaxLeaderAfterHeal = max(c.m.MaxLeaderAfterHeal, time.Duration(leaderAt-healed))
	}
	c.quietLeaders(ivs, bound)
}

// cutsOff tells the fault kinds that cut candidates off from the API server
// and so end their watches.
func cutsOff(kind string) bool {
	switch kind {
	case KindBlackHole, KindReset, KindAPIServerRestart, KindEtcdRestart:
		return true
	}
	return false
}

// healedAt is when fault i has healed for the candidates. A candidate cut
// off from the API server polls until its watch opens again, and looks
// next a jittered RetryPeriod (up to 1 + JitterFactor of them) after its
// last failed attempt: a change made in that time (a foreign holder's
// write) it sees that much later, and it counts a lease from then. So a
// fault that ends sooner after a cut-off ended heals only once that time
// has passed.
func (c *checker) healedAt(i int) int64 {
	f := c.h.Faults[i]
	healed := f.End
	look := int64(float64(c.h.Timing.RetryPeriod) * (1 + le.JitterFactor))
	for j, g := range c.h.Faults {
		if j != i && cutsOff(g.Kind) && g.End <= f.End && f.End-g.End < look {
			healed = max(healed, g.End+look)
		}
	}
	return healed
}

// quietLeaders checks that while no fault is injected, from the run's start
// on, no stretch without an acting candidate lasts longer than bound: a
// leader that acts when the faults heal but stops a moment later, or a run
// with no fault at all, is held to a leader too.
func (c *checker) quietLeaders(ivs []interval, bound time.Duration) {
	type window struct{ start, healed int64 }
	var faults []window
	for i, f := range c.h.Faults {
		faults = append(faults, window{f.Start, c.healedAt(i)})
	}
	slices.SortFunc(faults, func(a, b window) int { return cmp.Compare(a.start, b.start) })
	type span struct{ from, to int64 }
	var quiet []span
	at := c.h.Start
	for _, f := range faults {
		if f.start > at {
			quiet = append(quiet, span{at, min(f.start, c.h.End)})
		}
		at = max(at, f.healed)
	}
	if at < c.h.End {
		quiet = append(quiet, span{at, c.h.End})
	}
	for _, q := range quiet {
		check := func(from, to int64) {
			if d := time.Duration(to - from); d > bound {
				c.violate(PropLiveness, fmt.Sprintf("nobody acted for %v from %s, with no fault from %s to %s (the bound is %v)", d, c.at(from), c.at(q.from), c.at(q.to), bound))
			}
		}
		at := q.from
		for _, iv := range ivs {
			if iv.until <= at {
				continue
			}
			if iv.start.Mono >= q.to {
				break
			}
			if iv.start.Mono > at {
				check(at, iv.start.Mono)
			}
			at = max(at, iv.until)
			if at >= q.to {
				break
			}
		}
		if at < q.to {
			check(at, q.to)
		}
	}
}

// residue checks that every candidate told to stop exited 0, and that
// once its last elector returned it ran no more goroutines than before its
// first one ran, and no watch.
func (c *checker) residue() {
	ready := map[int]event.Event{}
	for _, e := range c.h.Events {
		switch e.Kind {
		case event.Ready:
			ready[e.PID] = e
		case event.Exit:
			c.m.ResidueChecked++
			stacks := e.Message
			if len(stacks) > 4000 {
				stacks = stacks[:4000] + "\n..."
			}
			if e.Watches > 0 {
				c.violate(PropResidue, fmt.Sprintf("candidate %s (pid %d) left %d watch goroutines running after its elector stopped", e.ID, e.PID, e.Watches), c.candidate(e), stacks)
			}
			if r, ok := ready[e.PID]; ok && e.Goroutines > r.Goroutines {
				c.m.MaxGoroutineGrowth = max(c.m.MaxGoroutineGrowth, e.Goroutines-r.Goroutines)
				c.violate(PropResidue, fmt.Sprintf("candidate %s (pid %d) ran %d goroutines after its elector stopped, %d before it started", e.ID, e.PID, e.Goroutines, r.Goroutines), c.candidate(r), c.candidate(e), stacks)
			}
		}
	}
	exits := map[int]bool{}
	for _, e := range c.h.Events {
		if e.Kind == event.Exit {
			exits[e.PID] = true
		}
	}
	for _, x := range c.h.Exits {
		if x.Killed {
			continue
		}
		if x.Code == 0 {
			// A clean exit proves no residue only with the counts the
			// candidate reports at ready and at exit: without them,
			// fail closed.
			if !exits[x.PID] {
				c.violate(PropResidue, fmt.Sprintf("candidate %s (pid %d) exited without reporting what it left running", x.ID, x.PID))
			} else if _, ok := ready[x.PID]; !ok {
				c.violate(PropResidue, fmt.Sprintf("candidate %s (pid %d) never reported how many goroutines it ran before its elector", x.ID, x.PID))
			}
		}
		if x.Code != 0 {
			what := fmt.Sprintf("exited with code %d", x.Code)
			if x.Code < 0 {
				what = fmt.Sprintf("did not exit within %v of SIGTERM and was killed", x.Took)
			}
			c.violate(PropResidue, fmt.Sprintf("candidate %s (pid %d) %s", x.ID, x.PID, what))
		}
	}
}

// expected runs a regression schedule's own check.
func (c *checker) expected() {
	switch c.h.Expect {
	case "":
	case ExpectForeignHolderWaitedOut:
		wait := int64(c.h.Timing.LeaseDuration - c.h.Timing.LivenessSlack)
		for _, f := range c.h.Faults {
			if f.Kind != KindForeignHolder {
				continue
			}
			for _, e := range c.h.Events {
				if e.Kind == event.Start && e.Mono > f.End && e.Mono < f.End+wait {
					c.violate(PropExpected, fmt.Sprintf("%s took the Lease %v after a foreign holder's write, before its lease ran out: a steal", e.ID, time.Duration(e.Mono-f.End)), c.fault(f), c.candidate(e))
				}
			}
		}
	default:
		c.violate(PropExpected, fmt.Sprintf("unknown check %q", c.h.Expect))
	}
}
