package prommetrics_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

// advChild is set in the environment of a child test process that runs
// what would crash the parent.
const advChild = "PROMMETRICS_ADV_CHILD"

// TestAdvInvalidUTF8NameCrashesScrape: an election Name that is not valid
// UTF-8 (Name is free text; nothing validates it). Making the elector calls
// Off, which the provider turns into touch: the leaderless collector adds
// the name to its map first, then WithLabelValues panics on the invalid
// label value; the elector recovers that panic and goes on. But the name
// stays in the leaderless collector's map, and every later Collect calls
// prometheus.MustNewConstMetric with it, which panics too. A Registry
// collects in goroutines of its own, so that panic is not recoverable: the
// first scrape of /metrics kills the whole process. The test runs the
// scrape in a child process and fails if the child crashed.
func TestAdvInvalidUTF8NameCrashesScrape(t *testing.T) {
	if os.Getenv(advChild) == "1" {
		e := electiontest.New("ns", "utf8")
		lec := e.Config("a", "")
		lec.Name = "bad-\xff-name"
		if _, err := k8sleaderelection.NewLeaderElector(lec); err != nil {
			// Refusing the name would be a fine fix too.
			return
		}
		_, _ = prometheus.DefaultGatherer.Gather() // what a scrape does
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAdvInvalidUTF8NameCrashesScrape$", "-test.count=1")
	cmd.Env = append(os.Environ(), advChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		first, _, _ := strings.Cut(string(out), "\n\n")
		t.Fatalf("a scrape after making an elector whose Name is not valid UTF-8 crashed the process (%v):\n%s", err, first)
	}
}

// TestAdvTypedNilRegistererIsAnError: NewProvider promises that a nil
// registerer is an error; a nil *prometheus.Registry in the interface (a
// registry field never set, passed on) is not caught and panics inside
// Register instead.
func TestAdvTypedNilRegistererIsAnError(t *testing.T) {
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

// TestAdvPanickingRegistererRollsBack: NewProvider registers its collectors
// one by one and, on a refusal, unregisters the ones it registered. A
// registerer that panics midway (a MustRegister-style wrapper, a broken
// custom registerer) skips the rollback: the caller that recovers is left
// with half of the provider's collectors in its registry, and a later
// NewProvider on it reports into those orphans.
func TestAdvPanickingRegistererRollsBack(t *testing.T) {
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

// TestAdvConcurrentRollbackRemovesAnotherProvidersCollectors: two
// NewProvider calls on one registry at once (they now take turns). The first registers its
// collectors; the second finds them already registered and adopts them
// (the reuse meant for controller-runtime's); then the first is refused its
// last metric and rolls back, unregistering the collectors the second
// provider now reports into. The second provider succeeded, yet its
// leader_election_master_status and five other metrics never reach a scrape.
func TestAdvConcurrentRollbackRemovesAnotherProvidersCollectors(t *testing.T) {
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
