package robustness

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestScheduleIsReproducibleBySeed(t *testing.T) {
	a := NewSchedule(7, time.Minute, DefaultTiming)
	b := NewSchedule(7, time.Minute, DefaultTiming)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7 drew two schedules:\n%v\n%v", a, b)
	}
	if c := NewSchedule(8, time.Minute, DefaultTiming); reflect.DeepEqual(a.Faults, c.Faults) {
		t.Fatalf("seeds 7 and 8 drew the same faults: %v", a.Faults)
	}
}

// TestSchedulesCoverEveryKindAndLeaveRoomToHeal: over a few seeds every
// fault kind is drawn; in each schedule faults follow one another without
// overlapping, and the last heals a lease and the liveness slack before the
// end, so that liveness is checked after it.
func TestSchedulesCoverEveryKindAndLeaveRoomToHeal(t *testing.T) {
	timing := DefaultTiming
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		s := NewSchedule(seed, 40*time.Second, timing)
		if len(s.Faults) == 0 {
			t.Fatalf("seed %d: no faults in 40s", seed)
		}
		var free time.Duration
		for _, p := range s.Faults {
			seen[p.Kind] = true
			if p.At < free {
				t.Fatalf("seed %d: fault %v starts before the one before it ends (%v)", seed, p, free)
			}
			free = p.At + p.For
		}
		if last := s.Duration - timing.LeaseDuration - timing.LivenessSlack; free > last {
			t.Fatalf("seed %d: the last fault ends at %v, after %v", seed, free, last)
		}
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("no schedule of seeds 1-20 draws fault kind %s", k)
		}
	}
}

// TestSchedulesMixElectorsAndKeepTheirFaults: seeds 6 modulo 8 mix
// electors, c1 always ours and c3 never, a handoff's candidate ours; seeds 7
// modulo 8 run Istio's fork, with no clock faults (it takes no clock).
func TestSchedulesMixElectorsAndKeepTheirFaults(t *testing.T) {
	kinds := map[string]bool{}
	for seed := uint64(6); seed <= 200; seed += 8 {
		s := NewSchedule(seed, 40*time.Second, DefaultTiming)
		if s.Elector != ElectorMixed || len(s.Electors) != Candidates {
			t.Fatalf("seed %d: elector %s %v, want mixed, one per candidate", seed, s.Elector, s.Electors)
		}
		if s.ElectorOf(0) != ElectorOurs || s.ElectorOf(2) == ElectorOurs || s.ElectorOf(Candidates) != ElectorOurs {
			t.Fatalf("seed %d: electors %v, handoff's %s; want c1 ours, c3 another, the handoff's ours", seed, s.Electors, s.ElectorOf(Candidates))
		}
		for _, e := range s.Electors {
			kinds[e] = true
		}
	}
	if len(kinds) != 3 {
		t.Fatalf("mixed schedules of seeds 6-200 run only %v", kinds)
	}
	for seed := uint64(7); seed <= 200; seed += 8 {
		s := NewSchedule(seed, 40*time.Second, DefaultTiming)
		if s.Elector != ElectorIstio || s.ElectorOf(1) != ElectorIstio {
			t.Fatalf("seed %d: elector %s, want istio", seed, s.Elector)
		}
		for _, p := range s.Faults {
			if p.Kind == KindClock {
				t.Fatalf("seed %d: a clock fault for Istio's fork, which takes no clock: %v", seed, p)
			}
		}
	}
}

// TestSchedulesDrawOnlyTheKindsAsked: a schedule drawn from a list of kinds
// has faults of those kinds alone, and an etcd-slow-disk fault in bounds
// delays etcd by at most a fifth of the fence window each way.
func TestSchedulesDrawOnlyTheKindsAsked(t *testing.T) {
	kinds := []string{KindEtcdRestart, KindEtcdSlowDisk}
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 10; seed++ {
		for _, p := range NewScheduleOf(seed, 40*time.Second, DefaultTiming, kinds).Faults {
			if p.Kind != KindEtcdRestart && p.Kind != KindEtcdSlowDisk {
				t.Fatalf("seed %d drew %v from kinds %v", seed, p, kinds)
			}
			if p.Kind == KindEtcdSlowDisk && p.InBounds && p.Latency > DefaultTiming.FenceWindow/5 {
				t.Fatalf("seed %d: %v is in bounds with more than %v", seed, p, DefaultTiming.FenceWindow/5)
			}
			seen[p.Kind+fmt.Sprint(p.InBounds)] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("seeds 1-10 drew only %v of etcd restarts and slow disks in and beyond the bounds", seen)
	}
}
