// Package tenures records who led an election and when, across candidates,
// so that a test or benchmark can check afterwards that two candidates never
// led at once and measure how long handovers took.
package tenures

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Tenure is one stretch of leadership by one candidate: from the start of
// OnStartedLeading until its callback sees the leading context cancelled (a
// moment after the cancellation itself). A zero End means it still leads.
type Tenure struct {
	ID, Key    string
	Start, End time.Time
}

// EndOr returns the end of the tenure, or now if it has not ended.
func (t Tenure) EndOr(now time.Time) time.Time {
	if t.End.IsZero() {
		return now
	}
	return t.End
}

// Recorder timestamps every tenure of every candidate. It is safe for
// concurrent use.
type Recorder struct {
	mu      sync.Mutex
	tenures []Tenure
}

// OnStartedLeading returns a callback that records a tenure of candidate id
// (with key) lasting until its context is cancelled.
func (r *Recorder) OnStartedLeading(id, key string) func(context.Context) {
	return r.Work(id, key, 0, nil)
}

// Work returns an OnStartedLeading callback that records a tenure of
// candidate id (with key): work that, once its context is cancelled, takes
// windDown to stop, or never stops before hang is closed if windDown is
// negative. The tenure lasts until the callback returns: work still winding
// down is still leading.
func (r *Recorder) Work(id, key string, windDown time.Duration, hang <-chan struct{}) func(context.Context) {
	return func(ctx context.Context) {
		r.mu.Lock()
		r.tenures = append(r.tenures, Tenure{ID: id, Key: key, Start: time.Now()})
		i := len(r.tenures) - 1
		r.mu.Unlock()
		<-ctx.Done()
		if windDown < 0 {
			<-hang
		}
		time.Sleep(windDown)
		r.mu.Lock()
		r.tenures[i].End = time.Now()
		r.mu.Unlock()
	}
}

// All returns a copy of every tenure so far, in the order they started.
func (r *Recorder) All() []Tenure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Tenure(nil), r.tenures...)
}

// Leaders returns, sorted, the candidates leading now.
func (r *Recorder) Leaders() []string {
	var ids []string
	for _, t := range r.All() {
		if t.End.IsZero() {
			ids = append(ids, t.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// StartedAfter returns the tenures that started after from.
func (r *Recorder) StartedAfter(from time.Time) []Tenure {
	var out []Tenure
	for _, t := range r.All() {
		if t.Start.After(from) {
			out = append(out, t)
		}
	}
	return out
}

// LeaderSince returns how long after from a leader first existed: zero if
// one led at from, else the wait until the next tenure started; false if
// none has.
func (r *Recorder) LeaderSince(from time.Time) (time.Duration, bool) {
	best, found := time.Duration(0), false
	now := time.Now()
	for _, t := range r.All() {
		if !t.Start.After(from) && t.EndOr(now).After(from) {
			return 0, true
		}
		if t.Start.After(from) && (!found || t.Start.Sub(from) < best) {
			best, found = t.Start.Sub(from), true
		}
	}
	return best, found
}

// Overlap is two candidates leading at the same time.
type Overlap struct {
	// Earlier started leading first; Later started while Earlier led.
	Earlier, Later Tenure
	// Length is how long both led.
	Length time.Duration
}

// String describes the overlap for a test failure.
func (o Overlap) String() string {
	return fmt.Sprintf("%s(%s) and %s(%s) both led for %v from %s",
		o.Earlier.ID, o.Earlier.Key, o.Later.ID, o.Later.Key, o.Length, o.Later.Start.Format("15:04:05.000"))
}

// Overlaps returns every pair of tenures of different candidates that share
// time.
func (r *Recorder) Overlaps() []Overlap {
	all := r.All()
	now := time.Now()
	var out []Overlap
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.ID == b.ID || !b.Start.Before(a.EndOr(now)) {
				continue
			}
			end := a.EndOr(now)
			if b.EndOr(now).Before(end) {
				end = b.EndOr(now)
			}
			out = append(out, Overlap{Earlier: a, Later: b, Length: end.Sub(b.Start)})
		}
	}
	return out
}

// MostAtOnce returns the largest number of candidates that led at one time.
func (r *Recorder) MostAtOnce() int {
	type edge struct {
		at    time.Time
		delta int
	}
	now := time.Now()
	var edges []edge
	for _, t := range r.All() {
		edges = append(edges, edge{t.Start, +1}, edge{t.EndOr(now), -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	most, cur := 0, 0
	for _, e := range edges {
		cur += e.delta
		most = max(most, cur)
	}
	return most
}
