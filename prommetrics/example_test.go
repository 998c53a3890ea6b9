package prommetrics_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

// A replica reports its elections to the default registry, which /metrics
// serves. Here a canary leads until a replica of the default revision takes
// the lock from it, in an election held in memory on a fake clock.
func Example() {
	p, err := prommetrics.NewProvider(prometheus.DefaultRegisterer)
	if err != nil {
		fmt.Println(err)
		return
	}
	k8sleaderelection.SetProvider(p)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := electiontest.New("istio-system", "istio-leader")
	config := e.Config("istiod-canary", "canary")
	config.DisableHandoff = true // so that a higher key steals rather than asks
	replica, err := e.Start(ctx, config, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	term, _ := replica.WaitLeading(ctx, 1)
	_ = e.Hold(ctx, "istiod-stable", "stable") // a steal: the leader offers no handoff
	_ = e.AdvanceUntil(ctx, func() bool { return term.Err() != nil })
	<-replica.Done()

	// What /metrics shows of this election, but for the renewal times.
	scrape := httptest.NewRecorder()
	promhttp.HandlerFor(prometheus.DefaultGatherer, promhttp.HandlerOpts{}).ServeHTTP(scrape, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(scrape.Body.String(), "\n") {
		if strings.Contains(line, `name="istio-leader"`) && !strings.Contains(line, "renewal_duration") {
			fmt.Println(line)
		}
	}
	// Output:
	// leader_election_leaderless_seconds_total{name="istio-leader"} 0
	// leader_election_master_status{name="istio-leader"} 0
	// leader_election_preemptions_total{how="handoff",name="istio-leader"} 0
	// leader_election_preemptions_total{how="steal",name="istio-leader"} 1
	// leader_election_renewal_failures_total{name="istio-leader"} 0
	// leader_election_slowpath_total{name="istio-leader"} 0
	// leader_election_transitions_total{name="istio-leader"} 2
}
