package k8sleaderelection

import "sync"

// SwitchMetric is a per-election on/off gauge: On(name) when this process
// starts leading the election called name, Off(name) when it stops. A
// SwitchMetric that also has a SlowpathExercised(name string) method (as
// client-go's LeaderMetric does) is told each time a leader had to read the
// lock to renew it because its optimistic renewal failed.
type SwitchMetric interface {
	On(name string)
	Off(name string)
}

// LeaderMetric is client-go's name for the metric a MetricsProvider makes.
// It is SwitchMetric itself, so that a provider written for client-go (whose
// NewLeaderMetric returns a LeaderMetric with On, Off and SlowpathExercised,
// as controller-runtime's and component-base's do) and one written for
// Istio's fork (returning a SwitchMetric) both compile against this package
// unchanged; the slow-path count reaches the metrics that have it.
type LeaderMetric = SwitchMetric

// MetricsProvider makes the metrics of each new LeaderElector.
type MetricsProvider interface {
	NewLeaderMetric() SwitchMetric
}

// SetProvider sets the provider that the LeaderElectors created from now on
// take their metrics from. Only the first call with a non-nil provider has an
// effect; electors created before it keep reporting nowhere.
func SetProvider(metricsProvider MetricsProvider) {
	globalMetrics.setProvider(metricsProvider)
}

var globalMetrics metricsFactory

// metricsFactory holds the provider set by SetProvider.
type metricsFactory struct {
	mu       sync.Mutex
	provider MetricsProvider
}

func (f *metricsFactory) setProvider(p MetricsProvider) {
	if p == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.provider == nil {
		f.provider = p
	}
}

func (f *metricsFactory) newLeaderMetrics() leaderMetrics {
	f.mu.Lock()
	p := f.provider
	f.mu.Unlock()
	if p == nil {
		return leaderMetrics{}
	}
	m := p.NewLeaderMetric()
	slowpath, _ := m.(interface{ SlowpathExercised(name string) })
	return leaderMetrics{leader: m, slowpath: slowpath}
}

// leaderMetrics is one elector's metrics; its zero value reports nothing.
type leaderMetrics struct {
	leader   SwitchMetric
	slowpath interface{ SlowpathExercised(name string) }
}

func (m leaderMetrics) leaderOn(name string) {
	if m.leader != nil {
		m.leader.On(name)
	}
}

func (m leaderMetrics) leaderOff(name string) {
	if m.leader != nil {
		m.leader.Off(name)
	}
}

func (m leaderMetrics) slowpathExercised(name string) {
	if m.slowpath != nil {
		m.slowpath.SlowpathExercised(name)
	}
}
