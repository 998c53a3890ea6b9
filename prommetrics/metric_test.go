package prommetrics_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// scrapeChild is set in the environment of a child test process that runs
// what would crash the parent.
const scrapeChild = "PROMMETRICS_SCRAPE_CHILD"

// TestInvalidUTF8NameDoesNotCrashAScrape: an election Name that is not valid
// UTF-8 cannot crash the process at the first scrape.
//
// Found by an adversarial review of the first version, which it failed: an
// election Name that is not valid UTF-8 (Name is free text; nothing validates
// it). Making the elector calls Off, which the provider turns into touch: the
// leaderless collector adds the name to its map first, then WithLabelValues
// panics on the invalid label value; the elector recovers that panic and goes
// on. But the name stays in the leaderless collector's map, and every later
// Collect calls prometheus.MustNewConstMetric with it, which panics too. A
// Registry collects in goroutines of its own, so that panic is not
// recoverable: the first scrape of /metrics kills the whole process. The test
// runs the scrape in a child process and fails if the child crashed.
func TestInvalidUTF8NameDoesNotCrashAScrape(t *testing.T) {
	if os.Getenv(scrapeChild) == "1" {
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
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestInvalidUTF8NameDoesNotCrashAScrape$", "-test.count=1")
	cmd.Env = append(os.Environ(), scrapeChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		first, _, _ := strings.Cut(string(out), "\n\n")
		t.Fatalf("a scrape after making an elector whose Name is not valid UTF-8 crashed the process (%v):\n%s", err, first)
	}
}
