package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// tenure is one stretch of leadership by one candidate.
type tenure struct {
	id         string
	start, end time.Time // zero end: still leading
}

// mark is a moment worth drawing: a kill, a restart.
type mark struct {
	id    string
	at    time.Time
	label string
}

// timeline records what happens, prints it as it happens, and sums it up at
// the end.
type timeline struct {
	out   io.Writer
	start time.Time

	mu      sync.Mutex
	tenures []tenure
	marks   []mark
	killed  map[string]bool // candidates being stopped on purpose
	// unexplained counts times two led at once without a preemption.
	unexplained int
	// defaultRevision is the key that outranks every other.
	defaultRevision string
}

// outranksAll reports whether key outranks the keys of every current leader:
// only the default revision outranks, and only the others.
func (tl *timeline) outranksAll(key string, current []string, keys map[string]string) bool {
	for _, id := range current {
		if key != tl.defaultRevision || keys[id] == tl.defaultRevision {
			return false
		}
	}
	return true
}

func newTimeline(out io.Writer, defaultRevision string) *timeline {
	return &timeline{out: out, start: time.Now(), killed: map[string]bool{}, defaultRevision: defaultRevision}
}

// say prints one line stamped with the time since the demo started.
func (tl *timeline) say(id, format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.sayLocked(time.Now(), id, format, args...)
}

func (tl *timeline) sayLocked(at time.Time, id, format string, args ...any) {
	fmt.Fprintf(tl.out, "%7.2fs  %-7s %s\n", at.Sub(tl.start).Seconds(), id, fmt.Sprintf(format, args...))
}

func (tl *timeline) mark(id, label string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.marks = append(tl.marks, mark{id: id, at: time.Now(), label: label})
}

// startLeading records that id leads from now and says how it got there.
func (tl *timeline) startLeading(id, key string, keys map[string]string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	now := time.Now()
	var current []string
	for _, tn := range tl.tenures {
		if tn.end.IsZero() {
			current = append(current, tn.id)
		}
	}
	switch {
	case len(current) > 0 && tl.outranksAll(key, current, keys):
		tl.sayLocked(now, id, "STEALS from %s: key %q outranks %q (the holder did not hand over)", strings.Join(current, ","), key, keys[current[0]])
	case len(current) > 0:
		tl.unexplained++
		tl.sayLocked(now, id, "LEADS BESIDE %s, which it does not outrank: two leaders, a bug", strings.Join(current, ","))
	case len(tl.tenures) == 0:
		tl.sayLocked(now, id, "LEADS: first leader (key %q)", key)
	default:
		last := tl.tenures[len(tl.tenures)-1]
		gap := now.Sub(last.end)
		if tl.outranksAll(key, []string{last.id}, keys) && !tl.killed[last.id] && gap < retryPeriod {
			tl.sayLocked(now, id, "LEADS: handed over by %s, %.0fms after its work stopped; no overlap", last.id, gap.Seconds()*1000)
		} else {
			tl.sayLocked(now, id, "LEADS: took over from %s after %.2fs without a leader", last.id, gap.Seconds())
		}
	}
	tl.tenures = append(tl.tenures, tenure{id: id, start: now})
	return len(tl.tenures) - 1
}

// stopLeading records that tenure i ended now and says why.
func (tl *timeline) stopLeading(i int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	now := time.Now()
	tn := &tl.tenures[i]
	tn.end = now
	var successor string
	for _, other := range tl.tenures[i+1:] {
		if other.end.IsZero() && other.id != tn.id {
			successor = other.id
		}
	}
	switch {
	case successor != "":
		tl.sayLocked(now, tn.id, "STEPS DOWN: %s took the lock; we led alongside it for %.0fms", successor, now.Sub(tl.tenures[len(tl.tenures)-1].start).Seconds()*1000)
	case tl.killed[tn.id]:
		tl.sayLocked(now, tn.id, "stops leading: process stopped (its work stopped first)")
	default:
		tl.sayLocked(now, tn.id, "work stopped; no longer leading")
	}
}

func (tl *timeline) setKilled(id string, killed bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.killed[id] = killed
}

// leadStats is one candidate's share of the leadership.
type leadStats struct {
	tenures int
	led     time.Duration
}

// summary is what the demo measured.
type summary struct {
	elapsed     time.Duration
	perID       map[string]leadStats
	noLeader    time.Duration // from the first acquisition to the end
	twoLeaders  time.Duration
	transitions int
	unexplained int // overlaps that were not preemptions
}

func (tl *timeline) summarize(end time.Time) summary {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	s := summary{elapsed: end.Sub(tl.start), perID: map[string]leadStats{}, unexplained: tl.unexplained}
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, tn := range tl.tenures {
		stop := tn.end
		if stop.IsZero() || stop.After(end) {
			stop = end
		}
		p := s.perID[tn.id]
		p.tenures++
		p.led += stop.Sub(tn.start)
		s.perID[tn.id] = p
		edges = append(edges, edge{tn.start, +1}, edge{stop, -1})
	}
	s.transitions = len(tl.tenures)
	if len(edges) == 0 {
		return s
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	leaders, last := 0, edges[0].at
	for _, e := range edges {
		span := e.at.Sub(last)
		switch {
		case leaders == 0:
			s.noLeader += span
		case leaders > 1:
			s.twoLeaders += span
		}
		leaders += e.delta
		last = e.at
	}
	s.noLeader += end.Sub(last) * time.Duration(boolInt(leaders == 0))
	return s
}

// stretch is a span of time with no leader (leaders 0) or with two or more.
type stretch struct {
	from, to time.Time
	leaders  int
}

// stretches returns the spans, from the first acquisition to end, in which
// not exactly one candidate led.
func (tl *timeline) stretchesLocked(end time.Time) []stretch {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, tn := range tl.tenures {
		stop := tn.end
		if stop.IsZero() || stop.After(end) {
			stop = end
		}
		edges = append(edges, edge{tn.start, +1}, edge{stop, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	var out []stretch
	leaders := 0
	for i, e := range edges {
		leaders += e.delta
		next := end
		if i+1 < len(edges) {
			next = edges[i+1].at
		}
		if leaders != 1 && next.After(e.at) {
			out = append(out, stretch{from: e.at, to: next, leaders: leaders})
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s summary) write(w io.Writer, order []string, recordTransitions int) {
	fmt.Fprintf(w, "\nSummary after %.1fs\n", s.elapsed.Seconds())
	fmt.Fprintf(w, "  %-8s %8s %10s\n", "candidate", "tenures", "led for")
	for _, id := range order {
		p := s.perID[id]
		fmt.Fprintf(w, "  %-8s %8d %9.1fs\n", id, p.tenures, p.led.Seconds())
	}
	fmt.Fprintf(w, "  acquisitions seen:            %d (leaderTransitions in the lock: %d; the first leader is not a transition)\n", s.transitions, recordTransitions)
	fmt.Fprintf(w, "  time without a leader:        %.2fs\n", s.noLeader.Seconds())
	what := "none: every preemption was a handoff"
	switch {
	case s.unexplained > 0:
		what = fmt.Sprintf("%d of them NOT preemptions", s.unexplained)
	case s.twoLeaders > 0:
		what = "steals only"
	}
	fmt.Fprintf(w, "  time with two leaders:        %.3fs (%s)\n", s.twoLeaders.Seconds(), what)
}
