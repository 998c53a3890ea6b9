package prommetrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// leaderless is the collector of leader_election_leaderless_seconds_total,
// and keeps, per election name, the leader this replica last saw.
type leaderless struct {
	desc  *prometheus.Desc
	clock clock.PassiveClock

	mu        sync.Mutex
	elections map[string]*sightings
}

// sightings is what one election's electors reported of its leader.
type sightings struct {
	// seen is false until the first LeaderObserved.
	seen   bool
	leader string
	// since is when the stretch without a leader began, while leader is "".
	since time.Time
	// closed is the length of the stretches that have ended.
	closed time.Duration
	// collected is the last value collected: a counter never goes down,
	// even when the elector's clock and ours disagree.
	collected float64
}

func newLeaderless(clk clock.PassiveClock) *leaderless {
	return &leaderless{
		desc: prometheus.NewDesc(LeaderlessSeconds,
			"Seconds in which, as this replica saw the lock of the election called name, nobody held a running lease.",
			[]string{"name"}, nil),
		clock:     clk,
		elections: map[string]*sightings{},
	}
}

// add makes the election called name known, and reports whether it was new.
func (l *leaderless) add(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, added := l.election(name)
	return added
}

// election returns the sightings of the election called name, made now if
// added. l.mu must be held.
func (l *leaderless) election(name string) (s *sightings, added bool) {
	if s = l.elections[name]; s != nil {
		return s, false
	}
	s = &sightings{}
	l.elections[name] = s
	return s, true
}

// observe notes that the leader of the election called name is identity
// ("" for none) from at on, and reports whether that is a transition: a new
// leader seen after another or after none.
func (l *leaderless) observe(name, identity string, at time.Time) (transition bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, _ := l.election(name)
	first := !s.seen
	if s.seen && s.leader == "" {
		s.closed += max(at.Sub(s.since), 0)
	}
	changed := !s.seen || s.leader != identity
	s.seen, s.leader = true, identity
	if identity == "" && changed {
		s.since = at
	}
	return !first && changed && identity != ""
}

// Describe sends the one description of the metric.
func (l *leaderless) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

// Collect sends each election's time without a leader, with the stretch
// still running measured up to now. It sends after letting go of l.mu, so
// that a slow scrape never holds up an elector's report.
func (l *leaderless) Collect(ch chan<- prometheus.Metric) {
	now := l.clock.Now()
	l.mu.Lock()
	metrics := make([]prometheus.Metric, 0, len(l.elections))
	for name, s := range l.elections {
		total := s.closed
		if s.seen && s.leader == "" {
			total += max(now.Sub(s.since), 0)
		}
		s.collected = max(s.collected, total.Seconds())
		// Names reach here as label values already; an error would
		// only make this one series go missing, never the scrape.
		if m, err := prometheus.NewConstMetric(l.desc, prometheus.CounterValue, s.collected, name); err == nil {
			metrics = append(metrics, m)
		}
	}
	l.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}
