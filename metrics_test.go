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
