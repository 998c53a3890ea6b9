package k8sleaderelection

import (
	"flag"
	"io"
	"os"
	"sync"
	"testing"

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

var testMetrics = &recordingProvider{byName: map[string][]string{}}

// recordingProvider records, per election name, the metric calls made.
type recordingProvider struct {
	mu     sync.Mutex
	byName map[string][]string
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
