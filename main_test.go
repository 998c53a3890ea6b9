package k8sleaderelection

import (
	"flag"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/klog/v2"
)

func TestMain(m *testing.M) {
	// Every elector made in these tests reports to one provider, which files
	// the metrics under each election's Name.
	SetProvider(testMetrics)
	// The elector logs every acquisition and step-down; thousands of virtual
	// minutes of them would bury a failure. KLOG_TESTS=1 keeps them.
	if os.Getenv("KLOG_TESTS") == "" {
		flags := flag.NewFlagSet("klog", flag.PanicOnError)
		klog.InitFlags(flags)
		_ = flags.Set("logtostderr", "false")
		_ = flags.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	}
	goleak.VerifyTestMain(m)
}

var testMetrics = &recordingProvider{byName: map[string][]string{}, events: map[string][]electionEvent{}}

// recordingProvider records, per election name, the metric calls made: the
// SwitchMetric ones in byName, the ElectionMetric ones in events.
type recordingProvider struct {
	mu     sync.Mutex
	byName map[string][]string
	events map[string][]electionEvent
}

// electionEvent is one ElectionMetric call: what is "leader <identity>",
// "renewed", "renewal failed", "handed over" or "stolen".
type electionEvent struct {
	what string
	at   time.Time
	took time.Duration
	err  error
}

func (p *recordingProvider) electionEvents(name string) []electionEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]electionEvent(nil), p.events[name]...)
}

func (p *recordingProvider) addEvent(name string, ev electionEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events[name] = append(p.events[name], ev)
}

func (p *recordingProvider) NewLeaderMetric() SwitchMetric { return recordingMetric{p} }

func (p *recordingProvider) calls(name string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.byName[name]...)
}

func (p *recordingProvider) add(name, call string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.byName[name] = append(p.byName[name], call)
}

type recordingMetric struct{ p *recordingProvider }

func (m recordingMetric) On(name string)                { m.p.add(name, "on") }
func (m recordingMetric) Off(name string)               { m.p.add(name, "off") }
func (m recordingMetric) SlowpathExercised(name string) { m.p.add(name, "slowpath") }

func (m recordingMetric) LeaderObserved(name, identity string, at time.Time) {
	m.p.addEvent(name, electionEvent{what: "leader " + identity, at: at})
}

func (m recordingMetric) RenewalAttempted(name string, took time.Duration, err error) {
	what := "renewed"
	if err != nil {
		what = "renewal failed"
	}
	m.p.addEvent(name, electionEvent{what: what, took: took, err: err})
}

func (m recordingMetric) Preempted(name string, handedOver bool) {
	what := "stolen"
	if handedOver {
		what = "handed over"
	}
	m.p.addEvent(name, electionEvent{what: what})
}
