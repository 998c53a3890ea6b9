package prommetrics_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

func TestMain(m *testing.M) {
	// A process has one provider. The tests' goes into the default
	// registry, where the Example, which makes its own provider there,
	// shares its collectors whichever of the two SetProvider took.
	p, err := prommetrics.NewProvider(prometheus.DefaultRegisterer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8sleaderelection.SetProvider(p)
	// Electors log each acquisition and step-down; KLOG_TESTS=1 keeps it.
	if os.Getenv("KLOG_TESTS") == "" {
		flags := flag.NewFlagSet("klog", flag.PanicOnError)
		klog.InitFlags(flags)
		_ = flags.Set("logtostderr", "false")
		_ = flags.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	}
	goleak.VerifyTestMain(m)
}

// value gathers g and returns the value of the series of metric for the
// election called name, with the further label pairs in labels; for a
// histogram, how many observations it has. It fails t if there is no such
// series.
func value(t *testing.T, g prometheus.Gatherer, metric, name string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[string]string{"name": name}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, want) {
				switch {
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("no series %s%v gathered", metric, want)
	return 0
}

func matches(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, l := range m.GetLabel() {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

// check fails t unless each metric of the election called name has the
// value given, as "metric value" or "metric{how=x} value" pairs.
func check(t *testing.T, g prometheus.Gatherer, name string, want map[string]float64) {
	t.Helper()
	for key, v := range want {
		metric, labels := key, []string(nil)
		if i := strings.Index(key, "{"); i >= 0 {
			metric = key[:i]
			k, val, _ := strings.Cut(strings.Trim(key[i:], "{}"), "=")
			labels = []string{k, val}
		}
		if got := value(t, g, metric, name, labels...); got != v {
			t.Errorf("%s for %q = %v, want %v", key, name, got, v)
		}
	}
}
