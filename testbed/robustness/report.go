package robustness

import (
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Totals sums the runs of many schedules.
type Totals struct {
	Schedules, Faults, Violations int
	Kinds                         map[string]bool
	// Ours, Upstream, Istio and Mixed hold, for the schedules of each
	// elector (Mixed: of mixed electors), the largest windows and
	// overlaps seen and the sums of the counts.
	Ours, Upstream, Istio, Mixed Measures
	// Failing lists the seeds with violations.
	Failing []uint64
	// LogOperations counts the log operations checked for
	// linearizability, LogUndecided the schedules whose check ran out of
	// time.
	LogOperations, LogUndecided int
	// Storms sums the conflict storms' impacts (At unused; For, the
	// counts and Leaderless summed; the longest durations kept), and
	// StormCount counts them.
	Storms     StormImpact
	StormCount int
}

// Add counts one run.
func (t *Totals) Add(h *History, vs []Violation, m Measures) {
	if t.Kinds == nil {
		t.Kinds = map[string]bool{}
	}
	t.Schedules++
	t.Faults += len(h.Faults)
	for _, f := range h.Faults {
		t.Kinds[f.Kind] = true
	}
	t.Violations += len(vs)
	if len(vs) > 0 {
		t.Failing = append(t.Failing, h.Seed)
	}
	for _, s := range m.Storms {
		t.StormCount++
		t.Storms.For += s.For
		t.Storms.Writes += s.Writes
		t.Storms.Conflicts += s.Conflicts
		t.Storms.Failed += s.Failed
		t.Storms.MaxAccepted = max(t.Storms.MaxAccepted, s.MaxAccepted)
		t.Storms.MaxGap = max(t.Storms.MaxGap, s.MaxGap)
		t.Storms.Leaderless += s.Leaderless
	}
	t.LogOperations += m.LogOperations
	if m.LogUndecided {
		t.LogUndecided++
	}
	a := &t.Ours
	switch h.Elector {
	case ElectorUpstream:
		a = &t.Upstream
	case ElectorIstio:
		a = &t.Istio
	case ElectorMixed:
		a = &t.Mixed
	}
	a.AcceptedWrites += m.AcceptedWrites
	a.FencedWrites += m.FencedWrites
	a.DeposedAccepted += m.DeposedAccepted
	a.MaxDeposedWindow = max(a.MaxDeposedWindow, m.MaxDeposedWindow)
	a.StaleAfterNewer += m.StaleAfterNewer
	a.UpstreamDeposedLanded += m.UpstreamDeposedLanded
	a.IstioDeposedLanded += m.IstioDeposedLanded
	a.Overlaps += m.Overlaps
	a.MaxOverlapInBounds = max(a.MaxOverlapInBounds, m.MaxOverlapInBounds)
	a.MaxOverlapBeyond = max(a.MaxOverlapBeyond, m.MaxOverlapBeyond)
	for pair, n := range m.UnpromisedOverlaps {
		if a.UnpromisedOverlaps == nil {
			a.UnpromisedOverlaps = map[string]int{}
		}
		a.UnpromisedOverlaps[pair] += n
	}
	a.MaxUnpromisedOverlap = max(a.MaxUnpromisedOverlap, m.MaxUnpromisedOverlap)
	a.Heals += m.Heals
	a.MaxLeaderAfterHeal = max(a.MaxLeaderAfterHeal, m.MaxLeaderAfterHeal)
}

// Line is the suite's last line.
func (t Totals) Line() string {
	return fmt.Sprintf("robustness: %d schedules, %d faults (%d kinds), %d violations", t.Schedules, t.Faults, len(t.Kinds), t.Violations)
}

// Summary describes the measures, one per line.
func (t Totals) Summary() string {
	kinds := make([]string, 0, len(t.Kinds))
	for k := range t.Kinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	o, u, i, x := t.Ours, t.Upstream, t.Istio, t.Mixed
	pairs := make([]string, 0, len(x.UnpromisedOverlaps))
	for _, p := range slices.Sorted(maps.Keys(x.UnpromisedOverlaps)) {
		pairs = append(pairs, fmt.Sprintf("%s %d", p, x.UnpromisedOverlaps[p]))
	}
	return fmt.Sprintf(`fault kinds: %s
ours: accepted writes %d, refused by the fence %d; older term accepted after a newer one %d
ours: deposed term's writes accepted %d, largest window after the Lease moved on %v
ours: overlapping acting intervals %d; longest in bounds %v, beyond the bounds %v
ours: heals checked for liveness %d; longest until a leader acted %v
client-go: accepted writes %d; deposed leader's writes landed %d (unfenced)
client-go: overlapping acting intervals %d; longest in bounds %v, beyond the bounds %v
client-go: heals checked for liveness %d; longest until a leader acted %v
istio: accepted writes %d; deposed leader's writes landed %d (unfenced)
istio: overlapping acting intervals %d; longest in bounds %v, beyond the bounds %v
istio: heals checked for liveness %d; longest until a leader acted %v
mixed: accepted writes %d, refused by the fence %d; older term accepted after a newer one %d; deposed writes landed: client-go's %d, istio's %d
mixed: ours with ours: overlapping acting intervals %d; longest in bounds %v, beyond the bounds %v
mixed: others (not promised): overlaps [%s]; longest %v
mixed: heals checked for liveness %d; longest until a leader acted %v
conflict storms %d, %v in all: candidates' Lease writes %d, conflicted %d, failed otherwise %d; longest accepted %v, longest without one %v; leaderless %v in all
log: operations checked for linearizability %d; schedules undecided (out of time) %d
failing seeds: %v`, strings.Join(kinds, ", "),
		o.AcceptedWrites, o.FencedWrites, o.StaleAfterNewer, o.DeposedAccepted, o.MaxDeposedWindow,
		o.Overlaps, o.MaxOverlapInBounds, o.MaxOverlapBeyond, o.Heals, o.MaxLeaderAfterHeal,
		u.AcceptedWrites, u.UpstreamDeposedLanded, u.Overlaps, u.MaxOverlapInBounds, u.MaxOverlapBeyond, u.Heals, u.MaxLeaderAfterHeal,
		i.AcceptedWrites, i.IstioDeposedLanded, i.Overlaps, i.MaxOverlapInBounds, i.MaxOverlapBeyond, i.Heals, i.MaxLeaderAfterHeal,
		x.AcceptedWrites, x.FencedWrites, x.StaleAfterNewer, x.UpstreamDeposedLanded, x.IstioDeposedLanded,
		x.Overlaps, x.MaxOverlapInBounds, x.MaxOverlapBeyond, strings.Join(pairs, ", "), x.MaxUnpromisedOverlap,
		x.Heals, x.MaxLeaderAfterHeal,
		t.StormCount, t.Storms.For.Round(time.Millisecond), t.Storms.Writes, t.Storms.Conflicts, t.Storms.Failed,
		t.Storms.MaxAccepted.Round(time.Millisecond), t.Storms.MaxGap.Round(time.Millisecond), t.Storms.Leaderless.Round(time.Millisecond),
		t.LogOperations, t.LogUndecided, t.Failing)
}

// WriteReport writes what a failing seed needs to be understood and re-run
// into dir/seed-<seed>: the schedule, the history, the violations and a
// timeline. It returns the directory.
func WriteReport(dir string, sched Schedule, h *History, vs []Violation, m Measures) (string, error) {
	d := filepath.Join(dir, fmt.Sprintf("seed-%d", sched.Seed))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	var text strings.Builder
	elector := sched.Elector
	if len(sched.Electors) > 0 {
		elector += " " + strings.Join(sched.Electors, ",")
	}
	fmt.Fprintf(&text, "seed %d, elector %s, %v; re-run: make robustness ARGS=\"-seed %d -duration %v\"\n\n", sched.Seed, elector, sched.Duration, sched.Seed, sched.Duration)
	for _, p := range sched.Faults {
		fmt.Fprintln(&text, p)
	}
	for _, s := range m.Storms {
		fmt.Fprintln(&text, s)
	}
	fmt.Fprintf(&text, "\n%d violations:\n", len(vs))
	for _, v := range vs {
		fmt.Fprintln(&text, v)
	}
	for _, g := range h.Gaps {
		fmt.Fprintln(&text, "recording gap:", g)
	}
	files := map[string]any{"schedule.json": sched, "history.json": h, "measures.json": m, "violations.json": vs}
	for name, v := range files {
		data, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(d, "report.txt"), []byte(text.String()), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d, "timeline.svg"), []byte(Timeline(h, vs)), 0o644); err != nil {
		return "", err
	}
	if slices.ContainsFunc(vs, func(v Violation) bool { return v.Property == PropLinearizable }) {
		if err := visualizeLog(h, filepath.Join(d, "log.html")); err != nil {
			return "", fmt.Errorf("draw the log's operations: %w", err)
		}
	}
	return d, nil
}

// Timeline draws h as an SVG: a row per candidate with its acting
// intervals, the fault windows shaded across the rows (red beyond the
// bounds, amber inside), and the violations listed below.
func Timeline(h *History, vs []Violation) string {
	c := &checker{h: h}
	ivs := c.intervals()
	ids := []string{}
	for _, e := range h.Events {
		if !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	slices.Sort(ids)
	const left, width, row = 60.0, 1100.0, 28.0
	end := h.End + int64(2*time.Second)
	for _, e := range h.Events {
		end = max(end, e.Mono)
	}
	span := float64(end - h.Start)
	x := func(t int64) float64 { return left + width*float64(t-h.Start)/span }
	height := row*float64(len(ids)+2) + 16*float64(len(vs)+1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="monospace" font-size="11">`+"\n", left+width+20, height)
	top, bottom := row, row*float64(len(ids)+1)
	for _, f := range h.Faults {
		color := "#f5b041"
		if !f.InBounds {
			color = "#e74c3c"
		}
		w := max(x(f.End)-x(f.Start), 2)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.3"><title>%s</title></rect>`+"\n",
			x(f.Start), top, w, bottom-top, color, html.EscapeString(c.fault(f)))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9">%s</text>`+"\n", x(f.Start), top-4, html.EscapeString(f.Kind))
	}
	for i, id := range ids {
		y := row*float64(i+1) + 4
		fmt.Fprintf(&b, `<text x="4" y="%.1f">%s</text>`+"\n", y+14, id)
		for _, iv := range ivs {
			if iv.start.ID != id {
				continue
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="18" fill="#2e86c1"><title>%s</title></rect>`+"\n",
				x(iv.start.Mono), y, max(x(iv.until)-x(iv.start.Mono), 1), html.EscapeString(c.candidate(iv.start)))
		}
	}
	for s := int64(0); h.Start+s*int64(5*time.Second) <= end; s++ {
		t := h.Start + s*int64(5*time.Second)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9">%ds</text>`+"\n", x(t), bottom+12, 5*s)
	}
	for i, v := range vs {
		fmt.Fprintf(&b, `<text x="4" y="%.1f" fill="#c0392b">%s</text>`+"\n", bottom+28+16*float64(i), html.EscapeString(v.Property+": "+v.Message))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
