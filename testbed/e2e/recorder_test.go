package e2e

import (
	"testing"
	"time"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/tenures"
)

// recorder is the suite's view of a tenures.Recorder.
type recorder struct{ tenures.Recorder }

func newRecorder() *recorder { return &recorder{} }

// callbacks are a member's callbacks: they record its tenures, and its
// work takes windDown to stop (never, before hang closes, if negative).
func (r *recorder) callbacks(id, key string, windDown time.Duration, hang <-chan struct{}) le.LeaderCallbacks {
	return le.LeaderCallbacks{OnStartedLeading: r.Work(id, key, windDown, hang), OnStoppedLeading: func() {}}
}

// assertSafe fails t for any overlap of two tenures (a tenure lasts until
// its work has returned). Only if steals may happen (a holder that cannot
// hand over, or handoffs switched off) may a preemption (the later member's
// key outranks the earlier's, by rank) overlap, for at most one RetryPeriod
// plus slack. It returns the overlaps it allowed.
func (r *recorder) assertSafe(t *testing.T, rank map[string]int, steals bool) []time.Duration {
	t.Helper()
	var allowed []time.Duration
	for _, o := range r.Overlaps() {
		preemption := rank != nil && rank[o.Later.Key] > rank[o.Earlier.Key]
		switch {
		case !preemption || !steals:
			t.Errorf("two leaders at once: %v", o)
		case o.Length > retryPeriod+slack:
			t.Errorf("steal overlap longer than RetryPeriod (%v) + slack: %v", retryPeriod, o)
		default:
			allowed = append(allowed, o.Length)
		}
	}
	return allowed
}
