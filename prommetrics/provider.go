package prommetrics

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection"
)

// The names of the metrics, for queries and tests; the package
// documentation says what each counts.
const (
	// MasterStatus is the gauge that is 1 while this process leads.
	MasterStatus = "leader_election_master_status"
	// Slowpath counts renewals that had to read the lock.
	Slowpath = "leader_election_slowpath_total"
	// Transitions counts the new leaders this replica saw.
	Transitions = "leader_election_transitions_total"
	// Preemptions counts this replica's terms ended by a higher key.
	Preemptions = "leader_election_preemptions_total"
	// LeaderlessSeconds is the time this replica saw no running lease.
	LeaderlessSeconds = "leader_election_leaderless_seconds_total"
	// RenewalDuration is the histogram of renewal attempts' durations.
	RenewalDuration = "leader_election_renewal_duration_seconds"
	// RenewalFailures counts failed renewal attempts.
	RenewalFailures = "leader_election_renewal_failures_total"
)

// Provider is a k8sleaderelection.MetricsProvider that reports to
// Prometheus collectors. It is safe for concurrent use by many electors.
type Provider struct {
	status      *prometheus.GaugeVec
	slowpath    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	preemptions *prometheus.CounterVec
	renewals    *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	elections   *leaderless
}

var _ k8sleaderelection.MetricsProvider = (*Provider)(nil)

// Option changes how NewProvider builds a Provider.
type Option func(*options)

type options struct {
	clock clock.PassiveClock
}

// WithClock makes the provider measure the stretch without a leader that is
// still running at a scrape on clk instead of the real clock: the clock the
// electors run on, such as a fake clock in tests.
func WithClock(clk clock.PassiveClock) Option {
	return func(o *options) { o.clock = clk }
}

// registering serializes NewProvider's registrations and rollbacks.
var registering sync.Mutex

// NewProvider makes the metrics and registers them with registerer. A
// metric whose name registerer already holds with the same help and label
// is reported into the collector registerer holds, if it is of the same
// kind (controller-runtime's leader_election_master_status is); otherwise,
// or if registerer refuses a metric, NewProvider returns an error naming the
// metric and registers none of its own. A nil registerer is an error: pass
// prometheus.DefaultRegisterer for the default registry.
func NewProvider(registerer prometheus.Registerer, opts ...Option) (*Provider, error) {
	if registerer == nil || reflect.ValueOf(registerer).Kind() == reflect.Pointer && reflect.ValueOf(registerer).IsNil() {
		return nil, errors.New("prommetrics: registerer is nil; pass prometheus.DefaultRegisterer for the default registry")
	}
	// One provider registers at a time in this process: a provider that
	// rolls back must not take away collectors another has just adopted.
	registering.Lock()
	defer registering.Unlock()
	o := options{clock: clock.RealClock{}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.clock == nil {
		return nil, errors.New("prommetrics: WithClock was given a nil clock")
	}
	if v := reflect.ValueOf(o.clock); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("prommetrics: WithClock was given a nil clock (a nil %T)", o.clock)
	}
	r := &registration{registerer: registerer}
	p := &Provider{
		status: register(r, MasterStatus, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MasterStatus,
			// The help text of client-go's providers, word for word: a
			// registry refuses a second collector of one name whose help
			// differs, so only this text lets us share theirs.
			Help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
		}, []string{"name"})),
		slowpath: register(r, Slowpath, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Slowpath,
			Help: "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease. Please make sure to group by name.",
		}, []string{"name"})),
		transitions: register(r, Transitions, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Transitions,
			Help: "Times this replica saw the election called name get a new leader.",
		}, []string{"name"})),
		preemptions: register(r, Preemptions, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Preemptions,
			Help: "Terms of this replica in the election called name that a higher key ended, how=handoff (asked; our work stopped first) or how=steal (taken).",
		}, []string{"name", "how"})),
		renewals: register(r, RenewalDuration, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    RenewalDuration,
			Help:    "Seconds each renewal attempt of this replica took while it led the election called name, failed or not.",
			Buckets: prometheus.DefBuckets,
		}, []string{"name"})),
		failures: register(r, RenewalFailures, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RenewalFailures,
			Help: "Renewal attempts of this replica that failed while it led the election called name.",
		}, []string{"name"})),
		elections: register(r, LeaderlessSeconds, newLeaderless(o.clock)),
	}
	if r.err != nil {
		r.rollBack()
		return nil, r.err
	}
	return p, nil
}

// NewLeaderMetric returns the metric an elector reports to. It implements
// k8sleaderelection.ElectionMetric and SlowpathExercised as well.
func (p *Provider) NewLeaderMetric() k8sleaderelection.SwitchMetric {
	return leaderMetric{p}
}

// touch makes every series of the election called name exist, at zero, the
// first time the provider hears of it, so that a rate over them is defined
// before anything happened.
func (p *Provider) touch(name string) {
	if !p.elections.add(name) {
		return
	}
	p.slowpath.WithLabelValues(name)
	p.transitions.WithLabelValues(name)
	p.preemptions.WithLabelValues(name, howHandoff)
	p.preemptions.WithLabelValues(name, howSteal)
	p.renewals.WithLabelValues(name)
	p.failures.WithLabelValues(name)
}

// The values of the label how of leader_election_preemptions_total.
const (
	howHandoff = "handoff"
	howSteal   = "steal"
)
