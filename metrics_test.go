package k8sleaderelection

import (
	"slices"
	"testing"
)

type switchOnly struct{ calls *[]string }

func (s switchOnly) On(name string)  { *s.calls = append(*s.calls, "on "+name) }
func (s switchOnly) Off(name string) { *s.calls = append(*s.calls, "off "+name) }

type providerFunc func() SwitchMetric

func (f providerFunc) NewLeaderMetric() SwitchMetric { return f() }

func TestMetricsFactoryFirstProviderWins(t *testing.T) {
	var first, second []string
	var f metricsFactory
	f.setProvider(nil) // ignored: does not use up the one setting
	f.setProvider(providerFunc(func() SwitchMetric { return switchOnly{&first} }))
	f.setProvider(providerFunc(func() SwitchMetric { return switchOnly{&second} }))
	m := f.newLeaderMetrics()
	m.leaderOn("e")
	m.slowpathExercised("e") // a SwitchMetric without it is simply not told
	m.leaderOff("e")
	if !slices.Equal(first, []string{"on e", "off e"}) || len(second) != 0 {
		t.Fatalf("first provider got %v, second %v", first, second)
	}
}

func TestMetricsWithoutProviderOrMetric(t *testing.T) {
	var f metricsFactory
	m := f.newLeaderMetrics()
	m.leaderOn("e")
	m.leaderOff("e")
	m.slowpathExercised("e")
	f.setProvider(providerFunc(func() SwitchMetric { return nil }))
	m = f.newLeaderMetrics()
	m.leaderOn("e")
	m.slowpathExercised("e")
}

// upstreamProvider is written as client-go's providers are
// (component-base's, controller-runtime's): NewLeaderMetric returns a
// LeaderMetric that also counts slow-path renewals.
type upstreamProvider struct{ calls *[]string }

type upstreamMetric struct{ calls *[]string }

func (m upstreamMetric) On(name string)                { *m.calls = append(*m.calls, "on "+name) }
func (m upstreamMetric) Off(name string)               { *m.calls = append(*m.calls, "off "+name) }
func (m upstreamMetric) SlowpathExercised(name string) { *m.calls = append(*m.calls, "slowpath "+name) }

func (p upstreamProvider) NewLeaderMetric() LeaderMetric { return upstreamMetric(p) }

var _ MetricsProvider = upstreamProvider{}

// TestUpstreamStyleProvider: a provider written for client-go is taken as
// it is, and its metric hears of every slow-path renewal.
func TestUpstreamStyleProvider(t *testing.T) {
	var calls []string
	var f metricsFactory
	f.setProvider(upstreamProvider{&calls})
	m := f.newLeaderMetrics()
	m.leaderOn("e")
	m.slowpathExercised("e")
	m.leaderOff("e")
	if want := []string{"on e", "slowpath e", "off e"}; !slices.Equal(calls, want) {
		t.Fatalf("an upstream-style metric got %v, want %v", calls, want)
	}
}
