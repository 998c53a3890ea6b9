package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"time"
)

// laneColors gives each candidate's bars a color of its own.
var laneColors = []string{"#8c8c8c", "#e6a817", "#2a7de1", "#2ca02c", "#d62728"}

// writeSVG draws the timeline: one lane per candidate, its tenures as bars,
// kills and restarts as labelled ticks, every stretch with no leader or two
// shaded across the lanes, and a time axis.
func (tl *timeline) writeSVG(w io.Writer, order []string, keys map[string]string, end time.Time) error {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	const (
		left, right, top = 130.0, 30.0, 40.0
		laneH, barH      = 46.0, 22.0
		width            = 960.0
	)
	total := math.Max(end.Sub(tl.start).Seconds(), 1)
	plotW := width - left - right
	height := top + laneH*float64(len(order)) + 50
	x := func(t time.Time) float64 { return left + plotW*math.Min(t.Sub(tl.start).Seconds(), total)/total }
	lane := map[string]int{}
	for i, id := range order {
		lane[id] = i
	}

	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="13">`, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>`)
	p(`<text x="%.0f" y="22" font-size="15" font-weight="bold">Who led the election, second by second</text>`, left)
	for i, id := range order {
		y := top + laneH*float64(i)
		p(`<rect x="%.0f" y="%.1f" width="%.1f" height="%.1f" fill="#f4f4f4"/>`, left, y+(laneH-barH)/2, plotW, barH)
		p(`<text x="10" y="%.1f">%s <tspan fill="#666">(key %s)</tspan></text>`, y+laneH/2+4, html.EscapeString(id), html.EscapeString(keys[id]))
	}
	// Every stretch without a leader, and every one with two, across all
	// lanes, however short: at least a hairline, and labelled.
	for _, st := range tl.stretchesLocked(end) {
		fill, label := "#fde0dc", "no leader"
		if st.leaders > 1 {
			fill, label = "#d62728", "two leaders"
		}
		x0, x1 := x(st.from), math.Max(x(st.to), x(st.from)+1.5)
		p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.6"><title>%s %.3fs–%.3fs (%.0fms)</title></rect>`,
			x0, top, x1-x0, laneH*float64(len(order)), fill, label,
			st.from.Sub(tl.start).Seconds(), st.to.Sub(tl.start).Seconds(), st.to.Sub(st.from).Seconds()*1000)
		p(`<text x="%.1f" y="%.1f" font-size="10" fill="#a00">%s %.0fms</text>`, x0+2, top-4, label, st.to.Sub(st.from).Seconds()*1000)
	}
	for _, tn := range tl.tenures {
		stop := tn.end
		if stop.IsZero() {
			stop = end
		}
		y := top + laneH*float64(lane[tn.id]) + (laneH-barH)/2
		color := laneColors[lane[tn.id]%len(laneColors)]
		p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s led %.2fs–%.2fs</title></rect>`,
			x(tn.start), y, math.Max(x(stop)-x(tn.start), 1), barH, color,
			html.EscapeString(tn.id), tn.start.Sub(tl.start).Seconds(), stop.Sub(tl.start).Seconds())
	}
	for _, m := range tl.marks {
		y := top + laneH*float64(lane[m.id])
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black" stroke-width="2"/>`, x(m.at), x(m.at), y+4, y+laneH-4)
		p(`<text x="%.1f" y="%.1f" font-size="11">%s</text>`, x(m.at)+3, y+12, html.EscapeString(m.label))
	}
	axisY := top + laneH*float64(len(order)) + 10
	p(`<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#333"/>`, left, left+plotW, axisY, axisY)
	step := math.Max(1, math.Round(total/12))
	for s := 0.0; s <= total; s += step {
		xs := left + plotW*s/total
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333"/>`, xs, xs, axisY, axisY+5)
		p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%.0fs</text>`, xs, axisY+18, s)
	}
	p(`</svg>`)
	return nil
}
