package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

// electionMetric is everything an elector may report to: the metric a
// prommetrics provider makes.
type electionMetric interface {
	le.SwitchMetric
	le.ElectionMetric
	SlowpathExercised(name string)
}

// leaderMetrics is one candidate's /metrics: a registry of its own, with the
// prommetrics collectors its elections report to.
type leaderMetrics struct {
	registry *prometheus.Registry
	metric   electionMetric
}

func newLeaderMetrics() (*leaderMetrics, error) {
	registry := prometheus.NewRegistry()
	p, err := prommetrics.NewProvider(registry)
	if err != nil {
		return nil, err
	}
	m, ok := p.NewLeaderMetric().(electionMetric)
	if !ok {
		return nil, fmt.Errorf("prommetrics made a %T, which does not report everything an elector tells", p.NewLeaderMetric())
	}
	return &leaderMetrics{registry: registry, metric: m}, nil
}

// metricsRouter is the one MetricsProvider a process may install. The demo
// runs three replicas in one process, each serving its own /metrics as its
// own process would: every elector reports to the router under its election
// Name, and the router passes each call on to the metrics of the candidate
// whose elections have that name.
type metricsRouter struct {
	mu     sync.Mutex
	byName map[string]*leaderMetrics
}

func (r *metricsRouter) add(name string, m *leaderMetrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName[name] = m
}

// to returns the metric of the candidate whose elections are called name,
// or one that reports nowhere.
func (r *metricsRouter) to(name string) electionMetric {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.byName[name]; m != nil {
		return m.metric
	}
	return nowhere{}
}

// NewLeaderMetric hands out the router itself: it tells elections apart by
// the name each call carries.
func (r *metricsRouter) NewLeaderMetric() le.SwitchMetric { return r }

func (r *metricsRouter) On(name string)                { r.to(name).On(name) }
func (r *metricsRouter) Off(name string)               { r.to(name).Off(name) }
func (r *metricsRouter) SlowpathExercised(name string) { r.to(name).SlowpathExercised(name) }

func (r *metricsRouter) LeaderObserved(name, identity string, at time.Time) {
	r.to(name).LeaderObserved(name, identity, at)
}

func (r *metricsRouter) RenewalAttempted(name string, took time.Duration, err error) {
	r.to(name).RenewalAttempted(name, took, err)
}

func (r *metricsRouter) Preempted(name string, handedOver bool) {
	r.to(name).Preempted(name, handedOver)
}

// nowhere is the metric of an election no candidate claimed.
type nowhere struct{}

func (nowhere) On(string)                                     {}
func (nowhere) Off(string)                                    {}
func (nowhere) SlowpathExercised(string)                      {}
func (nowhere) LeaderObserved(string, string, time.Time)      {}
func (nowhere) RenewalAttempted(string, time.Duration, error) {}
func (nowhere) Preempted(string, bool)                        {}
