// Package prommetrics reports the leader elections of package
// k8sleaderelection to Prometheus, without glue code:
//
//	p, err := prommetrics.NewProvider(registry) // e.g. controller-runtime's metrics.Registry
//	if err != nil {
//		return err
//	}
//	k8sleaderelection.SetProvider(p)
//
// Every elector created after SetProvider reports under its election's Name,
// the value of the label name on every metric:
//
//   - leader_election_master_status (gauge): 1 while this process leads
//     the election, 0 otherwise; as client-go's providers report it.
//   - leader_election_slowpath_total (counter): renewals that had to read
//     the lock because the one-write renewal failed; as client-go's
//     providers report it.
//   - leader_election_transitions_total (counter): times this replica saw
//     the election get a new leader, after another or after none; the first
//     leader it sees is not a transition.
//   - leader_election_preemptions_total (counter, label how: "handoff" or
//     "steal"): terms of this replica that a candidate with a higher key
//     ended, by asking for the lock (a handoff: our work stopped first) or by
//     taking it (a steal: the two may have overlapped). Other losses of the
//     lock do not count.
//   - leader_election_leaderless_seconds_total (counter): time in which, as
//     this replica sees the lock, nobody held a running lease (it was
//     released, unreadable, or its lease ran out), including the stretch
//     still running when scraped. Its rate over a window is the share of the
//     window without a leader. A replica whose elector has stopped running
//     sees nothing more, so a stretch it saw begin goes on until its
//     process ends or an elector of that name runs again.
//   - leader_election_renewal_duration_seconds (histogram): how long each
//     renewal attempt of this replica took while it led, failed or not.
//   - leader_election_renewal_failures_total (counter): renewal attempts
//     that failed.
//
// The first two are the metrics that client-go's, component-base's and
// controller-runtime's providers register, with the same help text and
// label. If the registerer already holds a collector of the same name, as
// controller-runtime's metrics.Registry does from its init, NewProvider
// reports into that collector instead of failing, so both electors' values
// show under one metric; a collector of that name it cannot report into
// (another type, other labels or help) is an error naming the metric.
//
// Times come from the electors (LeaderElectionConfig.Clock); the stretch
// without a leader still running at a scrape is measured on the provider's
// clock, the real one unless WithClock says otherwise, so the two should be
// the same.
//
// SetProvider is process-wide and the first call wins: electors of one
// process share a provider, and tell their series apart by Name. Give the
// electors of one process distinct names.
//
// Alerting rules (also as a PrometheusRule) and a Grafana dashboard for
// these metrics, tested against them, are in the repository's
// prommetrics/monitoring directory.
package prommetrics
