package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// row is one line of the results table: a figure for us, for upstream, and
// their ratio.
type row struct {
	metric         string
	ours, upstream float64
	unit           string
	noUpstream     string // why upstream has no figure, when it has none
}

type report struct {
	rows  []row
	notes []string // printed under the table
}

func (r *report) note(n string) { r.notes = append(r.notes, n) }

func (r *report) add(metric, unit string, oursV, upstreamV float64) {
	r.rows = append(r.rows, row{metric: metric, unit: unit, ours: oursV, upstream: upstreamV})
}

func (r *report) addOursOnly(metric, unit string, oursV float64, why string) {
	r.rows = append(r.rows, row{metric: metric, unit: unit, ours: oursV, upstream: math.NaN(), noUpstream: why})
}

func (r *report) write(w io.Writer, machine string) {
	fmt.Fprintf(w, "\n%s\n\n", machine)
	width := 46
	for _, x := range r.rows {
		width = max(width, len([]rune(x.metric)))
	}
	fmt.Fprintf(w, "| %-*s | %14s | %14s | %13s |\n", width, "figure", "ours", "upstream", "ours/upstream")
	fmt.Fprintf(w, "|%s|%s|%s|%s|\n", strings.Repeat("-", width+2), strings.Repeat("-", 16), strings.Repeat("-", 16), strings.Repeat("-", 15))
	for _, x := range r.rows {
		ratio := "n/a"
		up := "n/a"
		if !math.IsNaN(x.upstream) {
			up = format(x.upstream, x.unit)
			if x.upstream != 0 {
				ratio = fmt.Sprintf("%.2f", x.ours/x.upstream)
			} else if x.ours == 0 {
				ratio = "= (both 0)"
			}
		}
		fmt.Fprintf(w, "| %-*s | %14s | %14s | %13s |\n", width, x.metric, format(x.ours, x.unit), up, ratio)
	}
	notes := slices.Clone(r.notes)
	for _, x := range r.rows {
		if x.noUpstream != "" && !slices.Contains(notes, x.noUpstream) {
			notes = append(notes, x.noUpstream)
		}
	}
	for _, n := range notes {
		if !slices.Contains(r.notes, n) {
			n = "n/a: " + n
		}
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

func format(v float64, unit string) string {
	switch unit {
	case "s":
		return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
	case "ns":
		return fmt.Sprintf("%.0f ns", v)
	case "B":
		if v >= 10*1024 {
			return fmt.Sprintf("%.1f KiB", v/1024)
		}
		return fmt.Sprintf("%.0f B", v)
	case "B/s":
		if v >= 10*1024 {
			return fmt.Sprintf("%.1f KiB/s", v/1024)
		}
		return fmt.Sprintf("%.0f B/s", v)
	case "mcores":
		return fmt.Sprintf("%.2f mcores", v)
	case "CPU s":
		return fmt.Sprintf("%.3f CPU s", v)
	case "/s":
		return fmt.Sprintf("%.2f/s", v)
	case "":
		return fmt.Sprintf("%.0f", v)
	case "%":
		return fmt.Sprintf("%.1f%%", v)
	case "x":
		return fmt.Sprintf("%.2fx", v)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}

// median and maximum of durations, in seconds.
func medianMax(ds []time.Duration) (float64, float64) {
	if len(ds) == 0 {
		return math.NaN(), math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Seconds(), s[len(s)-1].Seconds()
}
