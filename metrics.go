package k8sleaderelection

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
)

// SwitchMetric is a per-election on/off gauge: On(name) when this process
// starts leading the election called name, Off(name) when it stops. A
// SwitchMetric that also has a SlowpathExercised(name string) method (as
// client-go's LeaderMetric does) is told each time a leader had to read the
// lock to renew it because its optimistic renewal failed; one that also
// implements ElectionMetric is told what an operator alerts on.
type SwitchMetric interface {
	On(name string)
	Off(name string)
}

// ElectionMetric is what a SwitchMetric may also implement, found by a type
// assertion as SlowpathExercised is, to hear of the events an operator
// watches an election for: who leads as this replica sees it (and so how
// long it has had no leader), how renewals fare, and when this replica was
// preempted. Every method gets the election's Name.
//
// The elector calls these methods from its election loop, never while it
// holds a lock of its own, so a slow metric delays only its own elector's
// loop; they should return quickly all the same (record a value, nothing
// that waits on the network). Calls for one elector come one at a time;
// electors of one process call concurrently. A metric that panics does not
// stop the election: its panics are recovered, and the first is logged.
type ElectionMetric interface {
	// LeaderObserved is called when the leader this replica sees changes,
	// and once for the first state it sees. identity is the holder of a
	// lease that is running; "" means that nobody holds one as this replica
	// judges it: the lock is absent, released, unreadable, or its holder's
	// lease ran out by this replica's clock without a renewal. at is when
	// the change happened on the elector's clock (LeaderElectionConfig.Clock
	// when set): when this replica first saw the new state, or, for a lease
	// that ran out, the instant it did. It never goes back from one call to
	// the next, so the time between a call with "" and the next call is a
	// stretch without a leader. An elector that is not running (before Run,
	// after it returns) looks at nothing: the last call stands.
	LeaderObserved(name, identity string, at time.Time)
	// RenewalAttempted is called after each attempt of this replica, while
	// it leads, to renew its lease: took is how long the attempt took on
	// the elector's clock, err is nil if it renewed and why not otherwise.
	// An attempt that finds the lock taken from us, or a handoff asked of
	// us, is not a renewal: it ends the term (see Preempted and
	// LeaderObserved) and is not reported here.
	RenewalAttempted(name string, took time.Duration, err error)
	// Preempted is called when this replica stops leading because a
	// candidate whose key outranks ours took the election over: handedOver
	// is true when it asked and we stopped our work to hand the lock over,
	// false when it took the lock from us (a steal: we found the lock
	// naming a holder whose key differs from ours and that we do not
	// outrank). In a coordinated election, the control plane ending our
	// term counts as a handoff. It is called after Off, once per term at
	// most. A term that ends otherwise (Run's context done, renewals
	// failing until RenewDeadline, the lock taken as expired by a key we
	// outrank or share, found free, deleted, unreadable, or a MultiLock
	// whose halves disagree) is not a preemption.
	Preempted(name string, handedOver bool)
}

// LeaderMetric is client-go's name for the metric a MetricsProvider makes.
// It is SwitchMetric itself, so that a provider written for client-go (whose
// NewLeaderMetric returns a LeaderMetric with On, Off and SlowpathExercised,
// as controller-runtime's and component-base's do) and one written for
// Istio's fork (returning a SwitchMetric) both compile against this package
// unchanged; the slow-path count reaches the metrics that have it.
type LeaderMetric = SwitchMetric

// MetricsProvider makes the metrics of each new LeaderElector. A metric
// that is nil, or a nil pointer, gives the elector no metrics.
type MetricsProvider interface {
	NewLeaderMetric() SwitchMetric
}

// SetProvider sets the provider that the LeaderElectors created from now on
// take their metrics from. Only the first call with a non-nil provider has an
// effect; electors created before it keep reporting nowhere. A provider that
// is a nil pointer (a typed nil) counts as nil, and is logged as an error.
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
	if nilness.Is(p) {
		klog.Background().Error(fmt.Errorf("metricsProvider must not be a nil %T", p), "SetProvider ignores the provider; a later call may set one")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.provider == nil {
		f.provider = p
	}
}

func (f *metricsFactory) newLeaderMetrics() *leaderMetrics {
	f.mu.Lock()
	p := f.provider
	f.mu.Unlock()
	if p == nil {
		return &leaderMetrics{}
	}
	m, err := newMetric(p)
	if err == nil && m != nil && nilness.Is(m) {
		err = fmt.Errorf("MetricsProvider.NewLeaderMetric (%T) returned a nil %T", p, m)
	}
	if err != nil || m == nil {
		if err != nil {
			klog.Background().Error(err, "The metrics provider failed to make an elector's metric; this elector reports no metrics")
		}
		return &leaderMetrics{}
	}
	slowpath, _ := m.(interface{ SlowpathExercised(name string) })
	election, _ := m.(ElectionMetric)
	return &leaderMetrics{leader: m, slowpath: slowpath, election: election}
}

// newMetric asks p for a metric; a provider is user code, and its panic
// (a MustRegister called lazily, say) is an error, not a crash of
// NewLeaderElector.
func newMetric(p MetricsProvider) (m SwitchMetric, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("MetricsProvider.NewLeaderMetric panicked: %v", r)
		}
	}()
	return p.NewLeaderMetric(), nil
}

// leaderMetrics is one elector's metrics; with no metric it reports nothing.
type leaderMetrics struct {
	leader   SwitchMetric
	slowpath interface{ SlowpathExercised(name string) }
	election ElectionMetric
	// panicked is set by the first panic of a metric, which alone is
	// logged: a broken metric panics on every renewal.
	panicked atomic.Bool
}

// guard recovers a panic of the metric call it is deferred in, so that a
// broken metric cannot stop the election.
func (m *leaderMetrics) guard(name, call string) {
	r := recover()
	if r == nil || !m.panicked.CompareAndSwap(false, true) {
		return
	}
	klog.Background().Error(fmt.Errorf("panic: %v", r), "Leader election metric panicked; ignoring it and its later panics",
		"election", name, "call", call)
}

func (m *leaderMetrics) leaderOn(name string) {
	if m.leader != nil {
		defer m.guard(name, "On")
		m.leader.On(name)
	}
}

func (m *leaderMetrics) leaderOff(name string) {
	if m.leader != nil {
		defer m.guard(name, "Off")
		m.leader.Off(name)
	}
}

func (m *leaderMetrics) slowpathExercised(name string) {
	if m.slowpath != nil {
		defer m.guard(name, "SlowpathExercised")
		m.slowpath.SlowpathExercised(name)
	}
}

func (m *leaderMetrics) leaderObserved(name, identity string, at time.Time) {
	if m.election != nil {
		defer m.guard(name, "LeaderObserved")
		m.election.LeaderObserved(name, identity, at)
	}
}

func (m *leaderMetrics) renewalAttempted(name string, took time.Duration, err error) {
	if m.election != nil {
		defer m.guard(name, "RenewalAttempted")
		m.election.RenewalAttempted(name, took, err)
	}
}

func (m *leaderMetrics) preempted(name string, handedOver bool) {
	if m.election != nil {
		defer m.guard(name, "Preempted")
		m.election.Preempted(name, handedOver)
	}
}
