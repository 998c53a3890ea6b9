package prommetrics_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

var errTest = errors.New("test error")

// The help texts client-go's providers (component-base's,
// controller-runtime's) register their two metrics with.
const (
	upstreamStatusHelp   = "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name."
	upstreamSlowpathHelp = "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease. Please make sure to group by name."
)

// upstreamCollectors are what controller-runtime registers into its
// metrics.Registry when it is imported.
func upstreamCollectors() (*prometheus.GaugeVec, *prometheus.CounterVec) {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: prommetrics.MasterStatus, Help: upstreamStatusHelp}, []string{"name"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: prommetrics.Slowpath, Help: upstreamSlowpathHelp}, []string{"name"})
}

func TestNewProviderNeedsARegisterer(t *testing.T) {
	if _, err := prommetrics.NewProvider(nil); err == nil || !strings.Contains(err.Error(), "registerer is nil") {
		t.Fatalf("NewProvider(nil) = %v; want an error naming the nil registerer", err)
	}
	if _, err := prommetrics.NewProvider(prometheus.NewRegistry(), prommetrics.WithClock(nil)); err == nil || !strings.Contains(err.Error(), "nil clock") {
		t.Fatalf("NewProvider(WithClock(nil)) = %v; want an error naming the nil clock", err)
	}
	// What a constructor that failed leaves behind: set, but its methods
	// would panic at the first scrape.
	if _, err := prommetrics.NewProvider(prometheus.NewRegistry(), prommetrics.WithClock((*clocktesting.FakeClock)(nil))); err == nil || !strings.Contains(err.Error(), "nil clock") {
		t.Fatalf("NewProvider(WithClock(typed nil)) = %v; want an error naming the nil clock", err)
	}
	var registerer *prometheus.Registry
	if _, err := prommetrics.NewProvider(registerer); err == nil || !strings.Contains(err.Error(), "registerer is nil") {
		t.Fatalf("NewProvider(typed nil) = %v; want an error naming the nil registerer", err)
	}
}

// refusing is a registry that refuses to register the metric called name,
// and passes everything else on to Registry.
type refusing struct {
	*prometheus.Registry
	name string
}

func (r refusing) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc, 10)
	c.Describe(descs)
	close(descs)
	for d := range descs {
		if strings.Contains(d.String(), `"`+r.name+`"`) {
			return errTest
		}
	}
	return r.Registry.Register(c)
}

// TestNewProviderReportsARefusal: a metric the registerer refuses is an
// error naming it and wrapping the registerer's, and the metrics already
// registered are taken out again.
func TestNewProviderReportsARefusal(t *testing.T) {
	for _, name := range []string{prommetrics.MasterStatus, prommetrics.RenewalFailures, prommetrics.LeaderlessSeconds} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			_, err := prommetrics.NewProvider(refusing{reg, name})
			if err == nil || !strings.Contains(err.Error(), name) || !errors.Is(err, errTest) {
				t.Fatalf("NewProvider = %v; want an error naming %s and wrapping the refusal", err, name)
			}
			// A registry keeps the help and labels of a name for good,
			// but takes an identical collector again only once the
			// first is gone.
			status, slowpath := upstreamCollectors()
			for _, c := range []prometheus.Collector{status, slowpath} {
				if err := reg.Register(c); err != nil {
					t.Errorf("our collector was left registered after the refusal: %v", err)
				}
			}
		})
	}
}

// TestNewProviderJoinsControllerRuntimesCollectors: a registry that already
// holds the two metrics client-go's providers register (as
// controller-runtime's does) is no error, and our values land in its
// collectors.
func TestNewProviderJoinsControllerRuntimesCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	status, slowpath := upstreamCollectors()
	reg.MustRegister(status, slowpath)
	status.WithLabelValues("theirs").Set(1)

	p, err := prommetrics.NewProvider(reg)
	if err != nil {
		t.Fatalf("NewProvider over controller-runtime's collectors: %v", err)
	}
	m := p.NewLeaderMetric()
	m.On("ours")
	m.(interface{ SlowpathExercised(string) }).SlowpathExercised("ours")
	if got := testutil.ToFloat64(status.WithLabelValues("ours")); got != 1 {
		t.Errorf("their status gauge for our election = %v, want 1", got)
	}
	if got := testutil.ToFloat64(slowpath.WithLabelValues("ours")); got != 1 {
		t.Errorf("their slow-path counter for our election = %v, want 1", got)
	}
	check(t, reg, "theirs", map[string]float64{prommetrics.MasterStatus: 1})
	check(t, reg, "ours", map[string]float64{prommetrics.MasterStatus: 1, prommetrics.Transitions: 0})
	m.Off("ours")
	if got := testutil.ToFloat64(status.WithLabelValues("ours")); got != 0 {
		t.Errorf("their status gauge after Off = %v, want 0", got)
	}
}

// TestNewProviderRefusesIncompatibleCollectors: a collector of one of our
// names that we cannot report into is an error naming the metric.
func TestNewProviderRefusesIncompatibleCollectors(t *testing.T) {
	cases := []struct {
		name     string
		existing prometheus.Collector
		metric   string
	}{
		{"a counter as the status", prometheus.NewCounterVec(prometheus.CounterOpts{Name: prommetrics.MasterStatus, Help: upstreamStatusHelp}, []string{"name"}), prommetrics.MasterStatus},
		{"other labels", prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: prommetrics.MasterStatus, Help: upstreamStatusHelp}, []string{"lease"}), prommetrics.MasterStatus},
		{"other help", prometheus.NewCounterVec(prometheus.CounterOpts{Name: prommetrics.Slowpath, Help: "slow paths"}, []string{"name"}), prommetrics.Slowpath},
		{"a plain counter as the leaderless time", prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prommetrics.LeaderlessSeconds,
			Help: "Seconds in which, as this replica saw the lock of the election called name, nobody held a running lease.",
		}, []string{"name"}), prommetrics.LeaderlessSeconds},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(tc.existing)
			_, err := prommetrics.NewProvider(reg)
			if err == nil || !strings.Contains(err.Error(), tc.metric) {
				t.Fatalf("NewProvider = %v; want an error naming %s", err, tc.metric)
			}
		})
	}
}

// TestProvidersShareARegistry: a second provider on the same registry
// reports into the first one's collectors, the time without a leader too.
func TestProvidersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := prommetrics.NewProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := prommetrics.NewProvider(reg)
	if err != nil {
		t.Fatalf("a second provider on the same registry: %v", err)
	}
	a := first.NewLeaderMetric().(k8sleaderelection.ElectionMetric)
	b := second.NewLeaderMetric().(k8sleaderelection.ElectionMetric)
	a.LeaderObserved("e", "x", t0)
	b.LeaderObserved("e", "", t0.Add(10*time.Second))
	a.LeaderObserved("e", "y", t0.Add(30*time.Second))
	b.Preempted("e", true)
	check(t, reg, "e", map[string]float64{
		prommetrics.Transitions:                   1,
		prommetrics.LeaderlessSeconds:             20,
		prommetrics.Preemptions + "{how=handoff}": 1,
	})
}

// TestMetricNamesFollowTheConventions: promlint finds nothing to say of
// our metrics beyond upstream's status gauge, whose name is fixed.
func TestMetricNamesFollowTheConventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := prommetrics.NewProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	m := p.NewLeaderMetric().(k8sleaderelection.ElectionMetric)
	m.LeaderObserved("e", "", t0)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestNewProviderRefusesATypedNilRegisterer: a nil *prometheus.Registry passed
// as the registerer is an error, as a nil registerer is.
//
// Found by an adversarial review of the first version, which it failed:
// NewProvider promises that a nil registerer is an error; a nil
// *prometheus.Registry in the interface (a registry field never set, passed
// on) is not caught and panics inside Register instead.
func TestNewProviderRefusesATypedNilRegisterer(t *testing.T) {
	var reg *prometheus.Registry
	var (
		err       error
		recovered any
	)
	func() {
		defer func() { recovered = recover() }()
		_, err = prommetrics.NewProvider(reg)
	}()
	if recovered != nil {
		t.Fatalf("NewProvider((*prometheus.Registry)(nil)) panicked with %v; want an error as for a nil registerer", recovered)
	}
	if err == nil {
		t.Fatal("NewProvider((*prometheus.Registry)(nil)) succeeded; want an error")
	}
}

// panickingRegisterer registers into reg until the collector whose
// description names metric, and panics there.
type panickingRegisterer struct {
	*prometheus.Registry
	metric string
}

// describes reports whether one of c's descriptions names metric.
func describes(c prometheus.Collector, metric string) bool {
	ch := make(chan *prometheus.Desc, 10)
	c.Describe(ch)
	close(ch)
	for d := range ch {
		if strings.Contains(d.String(), `"`+metric+`"`) {
			return true
		}
	}
	return false
}

func (r panickingRegisterer) Register(c prometheus.Collector) error {
	if describes(c, r.metric) {
		panic("registry is broken")
	}
	return r.Registry.Register(c)
}

func (r panickingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestNewProviderRollsBackWhenTheRegistererPanics: a registerer that panics
// midway is an error, and NewProvider leaves none of its own collectors
// registered, as after a refusal.
//
// Found by an adversarial review of the first version, which it failed:
// NewProvider registers its collectors one by one and, on a refusal,
// unregisters the ones it registered. A registerer that panics midway (a
// MustRegister-style wrapper, a broken custom registerer) skips the rollback:
// the caller that recovers is left with half of the provider's collectors in
// its registry, and a later NewProvider on it reports into those orphans.
func TestNewProviderRollsBackWhenTheRegistererPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	func() {
		defer func() { _ = recover() }()
		_, _ = prommetrics.NewProvider(panickingRegisterer{reg, prommetrics.Preemptions})
	}()
	probe := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: prommetrics.MasterStatus,
		Help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
	}, []string{"name"})
	if reg.Unregister(probe) {
		t.Fatalf("after NewProvider panicked in Register(%s), %s it had registered before is still registered; want nothing of its own left, as after a refusal",
			prommetrics.Preemptions, prommetrics.MasterStatus)
	}
}

// gatedRegisterer registers into reg, but when it comes to the collector
// of metric it tells reached, waits for release, and refuses it.
type gatedRegisterer struct {
	*prometheus.Registry
	metric  string
	reached chan struct{}
	release chan struct{}
}

func (r gatedRegisterer) Register(c prometheus.Collector) error {
	if describes(c, r.metric) {
		close(r.reached)
		<-r.release
		return errors.New("refused")
	}
	return r.Registry.Register(c)
}

// TestConcurrentNewProvidersKeepEachOthersCollectors: two NewProvider calls on
// one registry at once never take away each other's collectors: the one that
// succeeds reports every metric.
//
// Found by an adversarial review of the first version, which it failed: two
// NewProvider calls on one registry at once (they now take turns). The first
// registers its collectors; the second finds them already registered and
// adopts them (the reuse meant for controller-runtime's); then the first is
// refused its last metric and rolls back, unregistering the collectors the
// second provider now reports into. The second provider succeeded, yet its
// leader_election_master_status and five other metrics never reach a scrape.
func TestConcurrentNewProvidersKeepEachOthersCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	gate := gatedRegisterer{reg, prommetrics.LeaderlessSeconds, make(chan struct{}), make(chan struct{})}
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = prommetrics.NewProvider(gate) })
	select {
	case <-gate.reached:
	case <-time.After(time.Minute):
		t.Fatal("the first NewProvider never reached its last metric")
	}
	// The second runs while the first is held at its last metric: it
	// must wait for the first to finish (and roll back) before it
	// registers, so it is started, then the first released.
	var second *prommetrics.Provider
	var err error
	secondDone := make(chan struct{})
	go func() { defer close(secondDone); second, err = prommetrics.NewProvider(reg) }()
	close(gate.release)
	wg.Wait()
	<-secondDone
	if err != nil {
		t.Fatalf("second NewProvider: %v", err)
	}
	if firstErr == nil {
		t.Fatal("the first NewProvider was not refused")
	}
	m := second.NewLeaderMetric()
	m.On("concurrent")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, f := range families {
		if f.GetName() == prommetrics.MasterStatus {
			return
		}
	}
	t.Fatalf("the second provider succeeded and its elector leads, but %s is not gathered: the first provider's rollback unregistered the collectors the second adopted; gathered %q",
		prommetrics.MasterStatus, names)
}
