package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// leaderMetrics is one candidate's /metrics: the leader gauge and the
// slow-path counter of its election, in its own registry.
type leaderMetrics struct {
	registry *prometheus.Registry
	leader   *prometheus.GaugeVec
	slowpath *prometheus.CounterVec
}

func newLeaderMetrics() *leaderMetrics {
	m := &leaderMetrics{
		registry: prometheus.NewRegistry(),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leader_election_master_status",
			Help: "1 while this process leads the election called name, else 0.",
		}, []string{"name"}),
		slowpath: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leader_election_slowpath_total",
			Help: "Renewals that had to read the lock because the optimistic write failed.",
		}, []string{"name"}),
	}
	m.registry.MustRegister(m.leader, m.slowpath)
	return m
}

// metricsRouter is the one MetricsProvider a process may install. Every
// elector reports to it under its election Name; it passes each call on to
// the candidate whose election has that name.
type metricsRouter struct {
	mu     sync.Mutex
	byName map[string]*leaderMetrics
}

func (r *metricsRouter) add(name string, m *leaderMetrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName[name] = m
}

func (r *metricsRouter) lookup(name string) *leaderMetrics {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[name]
}

// NewLeaderMetric hands out the router itself: it tells elections apart by
// the name each call carries.
func (r *metricsRouter) NewLeaderMetric() switchMetric { return r }

func (r *metricsRouter) On(name string) {
	if m := r.lookup(name); m != nil {
		m.leader.WithLabelValues(name).Set(1)
	}
}

func (r *metricsRouter) Off(name string) {
	if m := r.lookup(name); m != nil {
		m.leader.WithLabelValues(name).Set(0)
	}
}

func (r *metricsRouter) SlowpathExercised(name string) {
	if m := r.lookup(name); m != nil {
		m.slowpath.WithLabelValues(name).Inc()
	}
}
