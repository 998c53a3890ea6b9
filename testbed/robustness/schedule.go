package robustness

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Fault kinds.
const (
	// KindKill: SIGKILL a candidate, start it again after a while.
	KindKill = "kill"
	// KindPause: SIGSTOP a candidate, SIGCONT it after a while.
	KindPause = "pause"
	// KindLatency: delay every byte between a candidate and the API
	// server.
	KindLatency = "latency"
	// KindBlackHole: a candidate's connection swallows every byte.
	KindBlackHole = "blackhole"
	// KindReset: a candidate's connections are closed and new ones
	// refused.
	KindReset = "reset"
	// KindClock: a candidate's clock runs at another rate.
	KindClock = "clock"
	// KindLeaseDeleted: a third party deletes the Lease.
	KindLeaseDeleted = "lease-deleted"
	// KindForeignHolder: a third party writes a holder no candidate
	// knows into the Lease.
	KindForeignHolder = "foreign-holder"
	// KindHandoff: a candidate with a higher key joins, then leaves.
	KindHandoff = "handoff"
	// KindAPIServerRestart: kube-apiserver stops, and starts again on
	// the same etcd data after a while.
	KindAPIServerRestart = "apiserver-restart"
	// KindConflictStorm: a third party rewrites the Lease's annotations
	// and labels many times a second, so that the candidates' writes,
	// conditional on the version they read, conflict.
	KindConflictStorm = "conflict-storm"
	// KindEtcdRestart: etcd stops, and starts again on the same data
	// directory after a while; kube-apiserver keeps running.
	KindEtcdRestart = "etcd-restart"
	// KindEtcdSlowDisk: every byte between kube-apiserver and etcd is
	// delayed, as a member whose disk is slow to sync answers late.
	KindEtcdSlowDisk = "etcd-slow-disk"
)

// Kinds are every fault kind, in the order the schedule draws them from.
var Kinds = []string{KindKill, KindPause, KindLatency, KindBlackHole, KindReset, KindClock, KindLeaseDeleted, KindForeignHolder, KindHandoff,
	KindAPIServerRestart, KindConflictStorm, KindEtcdRestart, KindEtcdSlowDisk}

// KindsBeforeEtcd are the kinds schedules drew from before the etcd faults
// were added: NewScheduleOf(seed, d, t, KindsBeforeEtcd) draws the schedule
// that seed drew then.
var KindsBeforeEtcd = Kinds[:11:11]

// Planned is one fault of a schedule, before it runs.
type Planned struct {
	// At is when it starts, from the schedule's start.
	At time.Duration `json:"at"`
	// For is how long it lasts; 0 for an instant fault.
	For  time.Duration `json:"for"`
	Kind string        `json:"kind"`
	// Target is a candidate's index, or -1 for whoever leads then.
	Target int `json:"target"`
	// Latency is the delay of a latency fault; Rate the clock rate of a
	// clock fault.
	Latency  time.Duration `json:"latency,omitempty"`
	Rate     float64       `json:"rate,omitempty"`
	InBounds bool          `json:"inBounds"`
}

func (p Planned) String() string {
	target := "the leader"
	if p.Target >= 0 {
		target = fmt.Sprintf("c%d", p.Target+1)
	}
	s := fmt.Sprintf("%6.2fs %-14s %-10s for %v", p.At.Seconds(), p.Kind, target, p.For)
	switch p.Kind {
	case KindLatency, KindEtcdSlowDisk:
		s += fmt.Sprintf(" latency %v", p.Latency)
	case KindClock:
		s += fmt.Sprintf(" rate %.2f", p.Rate)
	}
	if !p.InBounds {
		s += " (beyond the bounds)"
	}
	return s
}

// Electors a schedule's candidates run.
const (
	// ElectorOurs is this library's elector.
	ElectorOurs = "ours"
	// ElectorUpstream is client-go's.
	ElectorUpstream = "upstream"
	// ElectorIstio is Istio's fork of client-go's.
	ElectorIstio = "istio"
	// ElectorMixed: each candidate runs the elector Schedule.Electors
	// names.
	ElectorMixed = "mixed"
)

// Schedule is one run: which elector the candidates run and the faults, in
// the order they start. Faults do not overlap.
type Schedule struct {
	Seed    uint64 `json:"seed"`
	Elector string `json:"elector"`
	// Electors names each candidate's elector when Elector is
	// ElectorMixed; a handoff's candidate runs ours.
	Electors []string      `json:"electors,omitempty"`
	Duration time.Duration `json:"duration"`
	Faults   []Planned     `json:"faults"`
	// Expect names a check of its own for a regression schedule
	// (ExpectForeignHolderWaitedOut), on top of the properties.
	Expect string `json:"expect,omitempty"`
}

// ExpectForeignHolderWaitedOut: no candidate starts leading within a lease
// (less the liveness slack) of a foreign holder's write.
const ExpectForeignHolderWaitedOut = "foreign holder waited out"

// Candidates is how many candidates compete (besides a handoff's).
const Candidates = 3

// ElectorOf is the elector candidate i runs (i == Candidates: a handoff's).
func (s Schedule) ElectorOf(i int) string {
	if s.Elector != ElectorMixed {
		return s.Elector
	}
	if i < len(s.Electors) {
		return s.Electors[i]
	}
	return ElectorOurs
}

// NewSchedule draws the schedule of seed: the same seed and timing give the
// same schedule. Every fourth seed runs client-go's elector and seeds 7
// modulo 8 Istio's fork, whose writes are not fenced, to compare with; seeds
// 6 modulo 8 mix electors: c1 runs ours, c2 any of the three, c3 one of the
// other two (drawn from a source of their own, so that the faults are those
// the seed would draw anyway).
func NewSchedule(seed uint64, duration time.Duration, t Timing) Schedule {
	return NewScheduleOf(seed, duration, t, Kinds)
}

// NewScheduleOf is NewSchedule drawing the faults' kinds from kinds alone
// (each of Kinds), so that a run can force the kinds it needs.
func NewScheduleOf(seed uint64, duration time.Duration, t Timing, kinds []string) Schedule {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := Schedule{Seed: seed, Elector: ElectorOurs, Duration: duration}
	switch {
	case seed%4 == 0:
		s.Elector = ElectorUpstream
	case seed%8 == 7:
		s.Elector = ElectorIstio
	case seed%8 == 6:
		s.Elector = ElectorMixed
		er := rand.New(rand.NewPCG(seed, 2))
		others := []string{ElectorUpstream, ElectorIstio}
		s.Electors = []string{ElectorOurs,
			[]string{ElectorOurs, ElectorUpstream, ElectorIstio}[er.IntN(3)],
			others[er.IntN(2)]}
	}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	margin := t.LeaseDuration - t.RenewDeadline
	// A leader first; at the end a quiet stretch, for liveness.
	at := t.LeaseDuration + time.Second
	end := duration - t.LeaseDuration - t.LivenessSlack - time.Second
	for at < end {
		p := Planned{At: at, Kind: kinds[r.IntN(len(kinds))], Target: -1, InBounds: true}
		if r.IntN(10) >= 7 {
			p.Target = r.IntN(Candidates)
		}
		switch p.Kind {
		case KindKill:
			p.For = between(0, 2*time.Second)
		case KindPause:
			if r.IntN(2) == 0 {
				// Shorter than LeaseDuration - RenewDeadline, with a
				// margin for the scheduler.
				p.For = between(margin/10, margin*8/10)
			} else if r.IntN(3) == 0 {
				// Beyond the bounds, but too short for another
				// candidate to take over meanwhile.
				p.For, p.InBounds = between(margin*3/2, t.LeaseDuration), false
			} else {
				// Long enough that another takes over while the
				// leader is stopped: it wakes up believing it leads.
				p.For, p.InBounds = between(t.LeaseDuration, 2*t.LeaseDuration), false
			}
		case KindLatency:
			p.For = between(2*time.Second, 6*time.Second)
			if r.IntN(2) == 0 {
				p.Latency = between(20*time.Millisecond, margin*4/10)
			} else {
				p.Latency, p.InBounds = between(margin*7/10, margin*3/2), false
			}
		case KindBlackHole, KindReset:
			p.For = between(time.Second, 6*time.Second)
		case KindClock:
			if s.Elector == ElectorUpstream || s.Elector == ElectorIstio {
				// client-go's elector and Istio's take no clock.
				p.Kind, p.For = KindReset, between(time.Second, 6*time.Second)
				break
			}
			p.For = between(3*time.Second, 8*time.Second)
			tolerated := float64(t.LeaseDuration) / float64(t.RenewDeadline)
			inside := 1 + (tolerated-1)*(0.2+0.5*r.Float64())
			if r.IntN(2) == 0 {
				p.Rate = inside
			} else {
				p.Rate, p.InBounds = tolerated*(1.2+0.8*r.Float64()), false
			}
			if r.IntN(2) == 0 {
				// Slow instead of fast.
				p.Rate = 1 / p.Rate
			}
		case KindLeaseDeleted, KindForeignHolder:
			p.Target = -1
		case KindAPIServerRestart:
			// Down for this long, then as long as a start takes.
			p.Target, p.For = -1, between(0, 3*time.Second)
		case KindConflictStorm:
			p.Target, p.For = -1, between(2*time.Second, 8*time.Second)
		case KindEtcdRestart:
			// Down for this long, then as long as a start takes.
			p.Target, p.For = -1, between(0, 3*time.Second)
		case KindEtcdSlowDisk:
			p.Target, p.For = -1, between(2*time.Second, 6*time.Second)
			if r.IntN(2) == 0 {
				// Each request to etcd takes at most 2 x 100 ms
				// longer: the policy's cache of the Lease, fed by
				// a watch on etcd, lags by no more than the fence
				// window allows.
				p.Latency = between(10*time.Millisecond, t.FenceWindow/5)
			} else {
				p.Latency, p.InBounds = between(t.FenceWindow*2/5, margin), false
			}
		case KindHandoff:
			if s.Elector == ElectorUpstream {
				// client-go's elector has no keys.
				p.Kind, p.For = KindBlackHole, between(time.Second, 6*time.Second)
				break
			}
			p.Target = -1
			p.For = between(3*time.Second, 8*time.Second)
		}
		if at+p.For > end {
			break
		}
		s.Faults = append(s.Faults, p)
		// Half the gaps are short, so that faults follow each other
		// closely; half are long enough to check that a leader acts
		// within a lease after the faults heal.
		quiet := t.LeaseDuration + t.LivenessSlack
		if r.IntN(2) == 0 {
			at += p.For + between(300*time.Millisecond, 2*time.Second)
		} else {
			at += p.For + between(quiet+500*time.Millisecond, quiet+2*time.Second)
		}
	}
	return s
}

// Regressions are the schedules, by name, that once broke a property: each
// re-runs the fault that found it on its own.
var Regressions = map[string]Schedule{
	// Seed 75: a third party wrote a holder without a key into the Lease;
	// a candidate that outranked keyless holders stole the Lease 3 ms
	// later, while the leader the write had deposed had not yet seen it.
	// Candidates wait such a holder's lease out.
	"foreign-holder-waited-out": {Seed: 75, Elector: ElectorOurs, Duration: 16 * time.Second, Faults: []Planned{
		{At: 5 * time.Second, Kind: KindForeignHolder, Target: -1, InBounds: true},
	}, Expect: ExpectForeignHolderWaitedOut},
	// The second slice: after an API server restart the harness's own
	// watches of the Lease and the log could not resume from the revision
	// they had seen (the new watch cache starts at its start revision)
	// and recorded gaps; they now read the object at the revision the
	// error names and resume from there. A run with a gap fails.
	"apiserver-restart-watches-resume": {Seed: 1001, Elector: ElectorOurs, Duration: 16 * time.Second, Faults: []Planned{
		{At: 5 * time.Second, Kind: KindAPIServerRestart, For: time.Second, Target: -1, InBounds: true},
	}},
}
