package robustness

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// shortSeeds are the short slice's schedules, shortDuration each: between
// them they draw every fault kind (make robustness ARGS="-seeds 33-33
// -dry-run" prints one's faults): kill, pause beyond the bounds, delay
// beyond the bounds, black-hole, reset, slow a clock beyond the bounds,
// delete the Lease, write a foreign holder, hand off, restart the API
// server, storm the Lease with conflicting writes, restart etcd and slow it
// in and beyond the bounds; seed 62 mixes ours and client-go's electors.
var shortSeeds = []uint64{33, 35, 62, 154}

const shortDuration = 30 * time.Second

// TestEveryPropertyHoldsUnderRandomFaults is the robustness suite's short
// slice: a few seeded schedules of faults against candidate processes on an
// embedded control plane, and the named regression schedules
// (Regressions), each history held to every property. A failing
// seed writes its report and can be re-run alone with
// make robustness ARGS="-seed N -duration 30s".
func TestEveryPropertyHoldsUnderRandomFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and candidate processes")
	}
	dir := filepath.Join(os.TempDir(), "k8sleaderelection-robustness-short")
	suite, err := NewSuite(dir, DefaultTiming)
	if err != nil {
		t.Fatal(err)
	}
	defer suite.Close()
	var totals Totals
	var schedules []Schedule
	for _, seed := range shortSeeds {
		schedules = append(schedules, NewSchedule(seed, shortDuration, DefaultTiming))
	}
	for _, name := range slices.Sorted(maps.Keys(Regressions)) {
		schedules = append(schedules, Regressions[name])
	}
	for _, sched := range schedules {
		seed := sched.Seed
		ctx, cancel := context.WithTimeout(context.Background(), sched.Duration+time.Minute)
		h, err := suite.Run(ctx, sched)
		cancel()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		vs, m := Check(h)
		totals.Add(h, vs, m)
		if len(vs) > 0 || len(h.Gaps) > 0 {
			report, err := WriteReport(dir, sched, h, vs, m)
			if err != nil {
				t.Error(err)
			}
			for _, v := range vs {
				t.Errorf("seed %d: %v", seed, v)
			}
			for _, g := range h.Gaps {
				t.Errorf("seed %d: the recording has a gap: %s", seed, g)
			}
			t.Logf("seed %d: report in %s", seed, report)
		}
	}
	t.Log(totals.Summary())
	t.Log(totals.Line())
}
