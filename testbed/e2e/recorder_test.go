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

// callbacks are a member's callbacks: they record its tenures.
func (r *recorder) callbacks(id, key string) le.LeaderCallbacks {
	return le.LeaderCallbacks{OnStartedLeading: r.OnStartedLeading(id, key), OnStoppedLeading: func() {}}
}

// assertSafe fails t for any overlap, except that a preemption (the later
// member's key outranks the earlier's, by rank) may overlap for at most one
// RetryPeriod plus slack. It returns the preemption overlaps it allowed.
func (r *recorder) assertSafe(t *testing.T, rank map[string]int) []time.Duration {
	t.Helper()
	var allowed []time.Duration
	for _, o := range r.Overlaps() {
		preemption := rank != nil && rank[o.Later.Key] > rank[o.Earlier.Key]
		switch {
		case !preemption:
			t.Errorf("two leaders outside a preemption: %v", o)
		case o.Length > retryPeriod+slack:
			t.Errorf("preemption overlap longer than RetryPeriod (%v) + slack: %v", retryPeriod, o)
		default:
			allowed = append(allowed, o.Length)
		}
	}
	return allowed
}
