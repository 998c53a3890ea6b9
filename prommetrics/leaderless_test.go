package prommetrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// newElectionMetric returns a provider's metric, on a registry of its own
// and a fake clock at t0.
func newElectionMetric(t *testing.T) (k8sleaderelection.ElectionMetric, *prometheus.Registry, *clocktesting.FakeClock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	clk := clocktesting.NewFakeClock(t0)
	p, err := prommetrics.NewProvider(reg, prommetrics.WithClock(clk))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	m, ok := p.NewLeaderMetric().(k8sleaderelection.ElectionMetric)
	if !ok {
		t.Fatal("the provider's metric is not an ElectionMetric")
	}
	return m, reg, clk
}

// TestLeaderlessSecondsCountEveryStretch: closed stretches without a leader
// add up by the elector's times, and a running one counts up to the scrape;
// a new leader is a transition, the first one seen is not.
func TestLeaderlessSecondsCountEveryStretch(t *testing.T) {
	m, reg, clk := newElectionMetric(t)
	const e = "e"
	steps := []struct {
		leader     *string // reported at at, if not nil
		at         time.Duration
		scrapeAt   time.Duration
		leaderless float64
		changes    float64
	}{
		{leader: ptr(""), at: 0, scrapeAt: 5 * time.Second, leaderless: 5, changes: 0},
		{leader: ptr("a"), at: 7 * time.Second, scrapeAt: 100 * time.Second, leaderless: 7, changes: 1},
		{leader: ptr(""), at: 110 * time.Second, scrapeAt: 111 * time.Second, leaderless: 8, changes: 1},
		{leader: ptr("b"), at: 120 * time.Second, scrapeAt: 200 * time.Second, leaderless: 17, changes: 2},
		{leader: ptr("c"), at: 201 * time.Second, scrapeAt: 300 * time.Second, leaderless: 17, changes: 3},
	}
	for i, s := range steps {
		if s.leader != nil {
			m.LeaderObserved(e, *s.leader, t0.Add(s.at))
		}
		clk.SetTime(t0.Add(s.scrapeAt))
		if got := value(t, reg, prommetrics.LeaderlessSeconds, e); got != s.leaderless {
			t.Errorf("step %d: leaderless %vs, want %vs", i, got, s.leaderless)
		}
		if got := value(t, reg, prommetrics.Transitions, e); got != s.changes {
			t.Errorf("step %d: transitions %v, want %v", i, got, s.changes)
		}
	}
}

func ptr(s string) *string { return &s }

// TestLeaderlessSecondsNeverGoDown: when the electors' clock is behind the
// provider's, a stretch closes shorter than it was scraped running; the
// counter holds its value instead of going down, and a clock behind the
// stretch's start counts nothing.
func TestLeaderlessSecondsNeverGoDown(t *testing.T) {
	m, reg, clk := newElectionMetric(t)
	m.LeaderObserved("e", "", t0)
	clk.SetTime(t0.Add(-5 * time.Second))
	if got := value(t, reg, prommetrics.LeaderlessSeconds, "e"); got != 0 {
		t.Fatalf("leaderless %vs with the clock before the stretch began, want 0", got)
	}
	clk.SetTime(t0.Add(50 * time.Second))
	if got := value(t, reg, prommetrics.LeaderlessSeconds, "e"); got != 50 {
		t.Fatalf("leaderless %vs, want 50", got)
	}
	m.LeaderObserved("e", "a", t0.Add(10*time.Second))
	if got := value(t, reg, prommetrics.LeaderlessSeconds, "e"); got != 50 {
		t.Fatalf("leaderless %vs after a stretch closed at 10s, want 50 still", got)
	}
	m.LeaderObserved("e", "", t0.Add(60*time.Second))
	clk.SetTime(t0.Add(100 * time.Second))
	if got := value(t, reg, prommetrics.LeaderlessSeconds, "e"); got != 50 {
		t.Fatalf("leaderless %vs, want 10+40 = 50", got)
	}
	clk.SetTime(t0.Add(101 * time.Second))
	if got := value(t, reg, prommetrics.LeaderlessSeconds, "e"); got != 51 {
		t.Fatalf("leaderless %vs, want 51", got)
	}
}

// TestRenewalsAndPreemptionsCounted: each renewal attempt lands in the
// histogram, each failed one in the failures too; preemptions are counted
// by how.
func TestRenewalsAndPreemptionsCounted(t *testing.T) {
	m, reg, _ := newElectionMetric(t)
	m.RenewalAttempted("e", 20*time.Millisecond, nil)
	m.RenewalAttempted("e", 3*time.Second, errTest)
	m.RenewalAttempted("e", time.Second, nil)
	m.Preempted("e", true)
	m.Preempted("e", false)
	m.Preempted("e", false)
	check(t, reg, "e", map[string]float64{
		prommetrics.RenewalDuration:               3,
		prommetrics.RenewalFailures:               1,
		prommetrics.Preemptions + "{how=handoff}": 1,
		prommetrics.Preemptions + "{how=steal}":   2,
	})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == prommetrics.RenewalDuration {
			if sum := f.GetMetric()[0].GetHistogram().GetSampleSum(); sum != 4.02 {
				t.Fatalf("renewal seconds sum %v, want 4.02", sum)
			}
		}
	}
}
