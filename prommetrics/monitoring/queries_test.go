package monitoring

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/k8sleaderelection/k8sleaderelection/prommetrics"
)

const dashboardFile = "dashboard.json"

// exported is what prommetrics exports, as a scrape shows it.
type exported struct {
	// family is the metric family of each series name: a histogram's
	// _bucket, _sum and _count series belong to the histogram.
	family map[string]string
	// values are the values each label takes on each series name.
	values map[string]map[string][]string
}

// exportedMetrics registers a prommetrics provider on a fresh registry,
// has it hear of one election, and gathers: the names come from the
// provider itself, not from a list that could drift from it.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := prommetrics.NewProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	// An elector says Off when it is made; from then on every series of
	// its election exists.
	p.NewLeaderMetric().Off("probe")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	e := exported{family: map[string]string{}, values: map[string]map[string][]string{}}
	add := func(series, family string, ls []*dto.LabelPair, extra ...string) {
		e.family[series] = family
		if e.values[series] == nil {
			e.values[series] = map[string][]string{}
		}
		pairs := slices.Clone(extra)
		for _, l := range ls {
			pairs = append(pairs, l.GetName(), l.GetValue())
		}
		for i := 0; i < len(pairs); i += 2 {
			if !slices.Contains(e.values[series][pairs[i]], pairs[i+1]) {
				e.values[series][pairs[i]] = append(e.values[series][pairs[i]], pairs[i+1])
			}
		}
	}
	for _, f := range families {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					add(name+"_bucket", name, m.GetLabel(), "le", fmt.Sprint(b.GetUpperBound()))
				}
				add(name+"_bucket", name, m.GetLabel(), "le", "+Inf")
				add(name+"_sum", name, m.GetLabel())
				add(name+"_count", name, m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, name, m.GetLabel())
				add(name+"_sum", name, m.GetLabel())
				add(name+"_count", name, m.GetLabel())
			default:
				add(name, name, m.GetLabel())
			}
		}
	}
	if len(e.family) == 0 {
		t.Fatal("the provider exported no series")
	}
	return e
}

// grafanaMacros are the durations Grafana fills in before it sends a
// query; any one will do for parsing.
var grafanaMacros = strings.NewReplacer(
	"${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__interval}", "1m", "$__interval", "1m",
	"${__range}", "6h", "$__range", "6h",
)

// checkQuery parses query with Prometheus' PromQL parser and returns the
// families it reads, or what is wrong with it: a selector without a metric
// name, a metric prommetrics does not export, or a label value it never
// sets.
func (e exported) checkQuery(query string) (families []string, err error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaMacros.Replace(query))
	if err != nil {
		return nil, fmt.Errorf("query %q does not parse: %w", query, err)
	}
	var problems []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		family, ok := e.family[name]
		switch {
		case name == "":
			problems = append(problems, fmt.Sprintf("selector %s names no metric", vs))
			return nil
		case !ok:
			problems = append(problems, fmt.Sprintf("metric %s is not one prommetrics exports", name))
			return nil
		}
		families = append(families, family)
		for _, m := range vs.LabelMatchers {
			known := e.values[name][m.Name]
			// name is the election's, free text; labels we do not set come
			// from the scrape (namespace, pod, job) and are not ours to know.
			if m.Name == "name" || m.Name == labels.MetricName || known == nil {
				continue
			}
			if (m.Type == labels.MatchEqual || m.Type == labels.MatchNotEqual) && !slices.Contains(known, m.Value) {
				problems = append(problems, fmt.Sprintf("%s{%s}: prommetrics sets %s only to %q", name, m, m.Name, known))
			}
		}
		return nil
	})
	if problems != nil {
		return families, fmt.Errorf("query %q: %s", query, strings.Join(problems, "; "))
	}
	return families, nil
}

// labelValuesQuery is Grafana's variable query label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// dashboardQueries returns every query of the dashboard: each expr of its
// panels and rows, wherever nested, and each variable's query.
func dashboardQueries(t *testing.T) (exprs, variables []string) {
	t.Helper()
	var dashboard map[string]any
	if err := json.Unmarshal(readFile(t, dashboardFile), &dashboard); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(dashboard["panels"])
	templating, _ := dashboard["templating"].(map[string]any)
	list, _ := templating["list"].([]any)
	for _, v := range list {
		v, _ := v.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		switch q := v["query"].(type) {
		case string:
			variables = append(variables, q)
		case map[string]any:
			s, _ := q["query"].(string)
			variables = append(variables, s)
		default:
			t.Errorf("%s: variable %v has a query of type %T", dashboardFile, v["name"], q)
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s has no queries", dashboardFile)
	}
	return exprs, variables
}

// TestDashboardQueriesUseExportedMetrics parses every query of the
// dashboard with Prometheus' parser and checks it reads only metrics that
// prommetrics exports, and that the dashboard shows each of them.
func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	e := exportedMetrics(t)
	exprs, variables := dashboardQueries(t)
	used := map[string]bool{}
	for _, q := range exprs {
		families, err := e.checkQuery(q)
		if err != nil {
			t.Errorf("%s: %v", dashboardFile, err)
		}
		for _, f := range families {
			used[f] = true
		}
	}
	for _, q := range variables {
		m := labelValuesQuery.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("%s: variable query %q is not label_values(selector, label)", dashboardFile, q)
			continue
		}
		if _, err := e.checkQuery(m[1]); err != nil {
			t.Errorf("%s: variable query %q: %v", dashboardFile, q, err)
		}
	}
	for _, f := range e.family {
		if !used[f] {
			t.Errorf("%s shows nothing of %s, which prommetrics exports", dashboardFile, f)
		}
	}
}

// TestDashboardAsksForItsDataSource checks that every panel and query
// reads from the dashboard's data source variable, so that the dashboard
// imports into any Grafana, whatever its Prometheus data source is called.
func TestDashboardAsksForItsDataSource(t *testing.T) {
	var dashboard struct {
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
			}
		}
		Panels []struct {
			Title      string
			Datasource struct{ Type, UID string }
			Targets    []struct {
				RefID      string
				Datasource struct{ Type, UID string }
			}
		}
	}
	if err := json.Unmarshal(readFile(t, dashboardFile), &dashboard); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if !slices.ContainsFunc(dashboard.Templating.List, func(v struct {
		Name, Type string
		Query      any
	}) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Errorf("%s has no variable datasource of type datasource for prometheus", dashboardFile)
	}
	const want = "${datasource}"
	for _, p := range dashboard.Panels {
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != want {
			t.Errorf("%s: panel %q reads data source %+v, want prometheus %s", dashboardFile, p.Title, p.Datasource, want)
		}
		for _, q := range p.Targets {
			if q.Datasource.Type != "prometheus" || q.Datasource.UID != want {
				t.Errorf("%s: panel %q query %s reads data source %+v, want prometheus %s", dashboardFile, p.Title, q.RefID, q.Datasource, want)
			}
		}
	}
}

// TestAlertRulesUseExportedMetrics checks the rules' expressions as the
// dashboard's.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	e := exportedMetrics(t)
	for _, g := range parseRules(t, rulesFile).Groups {
		for _, r := range g.Rules {
			if _, err := e.checkQuery(r.Expr); err != nil {
				t.Errorf("%s: rule %s%s: %v", rulesFile, r.Alert, r.Record, err)
			}
		}
	}
}

// TestQueryCheckRefusesWhatPrommetricsDoesNotExport shows the check is not
// vacuous: each kind of mistake it exists for is caught.
func TestQueryCheckRefusesWhatPrommetricsDoesNotExport(t *testing.T) {
	e := exportedMetrics(t)
	for _, tc := range []struct{ query, want string }{
		{`rate(leader_election_transition_total[5m])`, "leader_election_transition_total is not one prommetrics exports"},
		{`leader_election_renewal_duration_seconds`, "is not one prommetrics exports"},
		{`leader_election_preemptions_total{how="stolen"}`, `prommetrics sets how only to`},
		{`{name="x"}`, "names no metric"},
		{`sum(rate(leader_election_slowpath_total[5m])`, "does not parse"},
		{`rate(leader_election_slowpath_total[$window])`, "does not parse"},
	} {
		if _, err := e.checkQuery(tc.query); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("query %q: want an error mentioning %q, got %v", tc.query, tc.want, err)
		}
	}
	if _, err := e.checkQuery(`{__name__="leader_election_preemptions_total", how="steal"}`); err != nil {
		t.Errorf("a metric named by __name__: %v", err)
	}
}
