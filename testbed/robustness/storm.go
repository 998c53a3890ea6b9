package robustness

import (
	"fmt"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// StormImpact is what one conflict storm did to the candidates: their Lease
// writes in its window, how many the API server refused as conflicts, how
// long the accepted ones took, the longest stretch without an accepted one,
// and how long nobody acted.
type StormImpact struct {
	// At is when the storm started, from the schedule's start; For how
	// long it lasted.
	At  time.Duration `json:"at"`
	For time.Duration `json:"for"`
	// Writes counts the candidates' Lease writes answered in the window,
	// Conflicts those refused with 409, Failed those refused otherwise or
	// not answered.
	Writes    int `json:"writes"`
	Conflicts int `json:"conflicts"`
	Failed    int `json:"failed"`
	// MaxAccepted is the longest an accepted write took; MaxGap the
	// longest stretch in the window without an accepted write (counted
	// from the last one before it).
	MaxAccepted time.Duration `json:"maxAccepted"`
	MaxGap      time.Duration `json:"maxGap"`
	// Leaderless is how long in the window no candidate acted.
	Leaderless time.Duration `json:"leaderless"`
}

func (s StormImpact) String() string {
	return fmt.Sprintf("conflict storm at %.2fs for %v: %d Lease writes of candidates, %d conflicted, %d failed otherwise; longest accepted write %v, longest without one %v; leaderless %v",
		s.At.Seconds(), s.For.Round(time.Millisecond), s.Writes, s.Conflicts, s.Failed, s.MaxAccepted.Round(time.Millisecond), s.MaxGap.Round(time.Millisecond), s.Leaderless.Round(time.Millisecond))
}

// storms measures each conflict storm's impact (not a property: a storm
// may delay renewals as long as the leader keeps its lease).
func (c *checker) storms() {
	ivs := c.intervals()
	for _, f := range c.h.Faults {
		if f.Kind != KindConflictStorm {
			continue
		}
		s := StormImpact{At: time.Duration(f.Start - c.h.Start), For: time.Duration(f.End - f.Start)}
		last := int64(-1)
		for _, e := range c.h.Events {
			if e.Kind != event.LeaseWrite || e.Mono > f.End {
				continue
			}
			ok := e.Status >= 200 && e.Status < 300
			if e.Mono < f.Start {
				if ok {
					last = e.Mono
				}
				continue
			}
			s.Writes++
			switch {
			case ok:
				s.MaxAccepted = max(s.MaxAccepted, time.Duration(e.Mono-e.Sent))
				if last >= 0 {
					s.MaxGap = max(s.MaxGap, time.Duration(e.Mono-max(last, f.Start)))
				}
				last = e.Mono
			case e.Status == 409:
				s.Conflicts++
			default:
				s.Failed++
			}
		}
		if last >= 0 {
			s.MaxGap = max(s.MaxGap, time.Duration(f.End-max(last, f.Start)))
		}
		s.Leaderless = time.Duration(uncovered(ivs, f.Start, f.End))
		c.m.Storms = append(c.m.Storms, s)
	}
}

// uncovered is how much of [from, to] no interval covers.
func uncovered(ivs []interval, from, to int64) int64 {
	// ivs are sorted by start.
	free, at := int64(0), from
	for _, iv := range ivs {
		if iv.until <= at || iv.start.Mono >= to {
			continue
		}
		if iv.start.Mono > at {
			free += iv.start.Mono - at
		}
		at = max(at, iv.until)
		if at >= to {
			return free
		}
	}
	return free + to - at
}
