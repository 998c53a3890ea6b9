package prommetrics

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/k8sleaderelection/k8sleaderelection"
)

// leaderMetric is what each elector reports to: the provider's collectors,
// one series per election name.
type leaderMetric struct{ p *Provider }

// The elector finds these by type assertion: a missing method would only
// go unnoticed.
var (
	_ k8sleaderelection.ElectionMetric            = leaderMetric{}
	_ interface{ SlowpathExercised(name string) } = leaderMetric{}
)

// On notes that this process leads the election called name.
func (m leaderMetric) On(name string) {
	name = labelValue(name)
	m.p.touch(name)
	m.p.status.WithLabelValues(name).Set(1)
}

// Off notes that this process does not lead the election called name. An
// elector calls it when it is made, so the series starts at 0.
func (m leaderMetric) Off(name string) {
	name = labelValue(name)
	m.p.touch(name)
	m.p.status.WithLabelValues(name).Set(0)
}

// SlowpathExercised counts a renewal that had to read the lock.
func (m leaderMetric) SlowpathExercised(name string) {
	name = labelValue(name)
	m.p.touch(name)
	m.p.slowpath.WithLabelValues(name).Inc()
}

// LeaderObserved counts a new leader, and opens or closes a stretch
// without one.
func (m leaderMetric) LeaderObserved(name, identity string, at time.Time) {
	name = labelValue(name)
	m.p.touch(name)
	if m.p.elections.observe(name, identity, at) {
		m.p.transitions.WithLabelValues(name).Inc()
	}
}

// RenewalAttempted records how long a renewal took, and counts it if it
// failed.
func (m leaderMetric) RenewalAttempted(name string, took time.Duration, err error) {
	name = labelValue(name)
	m.p.touch(name)
	m.p.renewals.WithLabelValues(name).Observe(took.Seconds())
	if err != nil {
		m.p.failures.WithLabelValues(name).Inc()
	}
}

// Preempted counts a term that a higher key ended.
func (m leaderMetric) Preempted(name string, handedOver bool) {
	name = labelValue(name)
	m.p.touch(name)
	how := howSteal
	if handedOver {
		how = howHandoff
	}
	m.p.preemptions.WithLabelValues(name, how).Inc()
}

// labelValue is name as a label value: Prometheus takes only valid UTF-8,
// and an election's Name is free text. A name that is not valid UTF-8 is
// reported with its bad bytes replaced, not refused: refused, it would
// break every scrape.
func labelValue(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	return strings.ToValidUTF8(name, "\uFFFD")
}
