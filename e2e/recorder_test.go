package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	le "github.com/k8sleaderelection/k8sleaderelection"
)

// tenure is one stretch of leadership by one member: from OnStartedLeading
// to the cancellation of its leading context (zero end: still leading).
type tenure struct {
	id, key    string
	start, end time.Time
}

func (tn tenure) endOr(now time.Time) time.Time {
	if tn.end.IsZero() {
		return now
	}
	return tn.end
}

// recorder timestamps every member's leadership as it happens, so that a
// test can check after the fact that two members never led at once.
type recorder struct {
	mu      sync.Mutex
	tenures []tenure
}

func newRecorder() *recorder { return &recorder{} }

// callbacks are a member's callbacks: they record its tenures.
func (r *recorder) callbacks(id, key string) le.LeaderCallbacks {
	return le.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			i := r.started(id, key)
			<-ctx.Done()
			r.ended(i)
		},
		OnStoppedLeading: func() {},
	}
}

func (r *recorder) started(id, key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenures = append(r.tenures, tenure{id: id, key: key, start: time.Now()})
	return len(r.tenures) - 1
}

func (r *recorder) ended(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenures[i].end = time.Now()
}

func (r *recorder) snapshot() []tenure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tenure(nil), r.tenures...)
}

// leaders returns the members leading now.
func (r *recorder) leaders() []string {
	var ids []string
	for _, tn := range r.snapshot() {
		if tn.end.IsZero() {
			ids = append(ids, tn.id)
		}
	}
	sort.Strings(ids)
	return ids
}

// leaderSince returns how long after from a leader first existed: zero if
// one led at from, or the wait until the next tenure started.
func (r *recorder) leaderSince(from time.Time) (time.Duration, bool) {
	best, found := time.Duration(0), false
	now := time.Now()
	for _, tn := range r.snapshot() {
		if !tn.start.After(from) && tn.endOr(now).After(from) {
			return 0, true
		}
		if tn.start.After(from) && (!found || tn.start.Sub(from) < best) {
			best, found = tn.start.Sub(from), true
		}
	}
	return best, found
}

// acquisitionsAfter counts tenures that started after from.
func (r *recorder) acquisitionsAfter(from time.Time) []tenure {
	var out []tenure
	for _, tn := range r.snapshot() {
		if tn.start.After(from) {
			out = append(out, tn)
		}
	}
	return out
}

// overlap is two members leading at the same time.
type overlap struct {
	earlier, later tenure
	length         time.Duration
}

func (o overlap) String() string {
	return fmt.Sprintf("%s(%s) and %s(%s) both led for %v from %s",
		o.earlier.id, o.earlier.key, o.later.id, o.later.key, o.length, o.later.start.Format("15:04:05.000"))
}

// overlaps returns every pair of tenures of different members that share
// time.
func (r *recorder) overlaps() []overlap {
	tenures := r.snapshot()
	now := time.Now()
	sort.Slice(tenures, func(i, j int) bool { return tenures[i].start.Before(tenures[j].start) })
	var out []overlap
	for i, a := range tenures {
		for _, b := range tenures[i+1:] {
			if a.id == b.id || !b.start.Before(a.endOr(now)) {
				continue
			}
			end := a.endOr(now)
			if b.endOr(now).Before(end) {
				end = b.endOr(now)
			}
			out = append(out, overlap{earlier: a, later: b, length: end.Sub(b.start)})
		}
	}
	return out
}

// assertSafe fails t for any overlap, except that a preemption (the later
// member's key outranks the earlier's, by rank) may overlap for at most one
// RetryPeriod plus slack. It returns the preemption overlaps it allowed.
func (r *recorder) assertSafe(t *testing.T, rank map[string]int) []time.Duration {
	t.Helper()
	var allowed []time.Duration
	for _, o := range r.overlaps() {
		preemption := rank != nil && rank[o.later.key] > rank[o.earlier.key]
		switch {
		case !preemption:
			t.Errorf("two leaders outside a preemption: %v", o)
		case o.length > retryPeriod+slack:
			t.Errorf("preemption overlap longer than RetryPeriod (%v) + slack: %v", retryPeriod, o)
		default:
			allowed = append(allowed, o.length)
		}
	}
	return allowed
}
