// Package monitoring holds no code: its directory ships the alerting rules
// and the Grafana dashboard for the metrics of package prommetrics, and its
// tests prove them against Prometheus' own PromQL parser, engine and rule
// evaluation. It is a module of its own so that prommetrics' importers do
// not inherit Prometheus' dependencies.
package monitoring
