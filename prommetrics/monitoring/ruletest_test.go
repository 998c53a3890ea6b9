package monitoring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"go.yaml.in/yaml/v2"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// This file runs rule unit tests written in Prometheus' own format, the one
// `promtool test rules` reads, on Prometheus' own series loader
// (promqltest), PromQL engine and rule groups (rules.Group, whose alerting
// rules keep their pending and firing state as a Prometheus server does).
// promtool's runner is in package main and cannot be imported, so the
// stepping and comparing are written here, to promtool's documented
// semantics, for the subset of the format our tests use. A field outside
// that subset is an error, never silently ignored.

// ruleTestFile is a rule unit test file.
type ruleTestFile struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval model.Duration  `yaml:"evaluation_interval"`
	Tests              []ruleTestGroup `yaml:"tests"`
}

// ruleTestGroup is one test: input series and what to expect of them.
type ruleTestGroup struct {
	Name        string         `yaml:"name"`
	Interval    model.Duration `yaml:"interval"`
	InputSeries []inputSeries  `yaml:"input_series"`
	AlertTests  []alertTest    `yaml:"alert_rule_test"`
	ExprTests   []exprTest     `yaml:"promql_expr_test"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

// alertTest lists the alerts of one name that fire at EvalTime; none
// listed means none fires.
type alertTest struct {
	EvalTime  model.Duration  `yaml:"eval_time"`
	Alertname string          `yaml:"alertname"`
	ExpAlerts []expectedAlert `yaml:"exp_alerts"`
}

type expectedAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

// exprTest is an instant query at EvalTime and the samples it returns.
type exprTest struct {
	Expr       string           `yaml:"expr"`
	EvalTime   model.Duration   `yaml:"eval_time"`
	ExpSamples []expectedSample `yaml:"exp_samples"`
}

type expectedSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// loadRuleTests reads a rule unit test file, resolving its rule files
// against its directory as promtool does.
func loadRuleTests(path string) (*ruleTestFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f ruleTestFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("rule test file %s: %w", path, err)
	}
	if f.EvaluationInterval == 0 {
		f.EvaluationInterval = model.Duration(time.Minute)
	}
	var files []string
	for _, rf := range f.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(path), rf)
		}
		matched, err := filepath.Glob(rf)
		if err != nil {
			return nil, fmt.Errorf("rule test file %s: rule_files entry %q: %w", path, rf, err)
		}
		if len(matched) == 0 {
			return nil, fmt.Errorf("rule test file %s: rule_files entry %q matches no file", path, rf)
		}
		files = append(files, matched...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("rule test file %s: rule_files is empty", path)
	}
	f.RuleFiles = files
	for i := range f.Tests {
		if f.Tests[i].Interval == 0 {
			f.Tests[i].Interval = f.EvaluationInterval
		}
	}
	return &f, nil
}

// run loads the group's series, evaluates the rule files over them from
// time 0 to the last eval_time, one evaluation interval at a time, and
// returns every expectation that did not hold.
func (tg *ruleTestGroup) run(ruleFiles []string, every time.Duration) (failures []error) {
	promQL := parser.NewParser(parser.Options{})
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", tg.Interval)
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	series, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               promQL,
	})
	if err != nil {
		return []error{fmt.Errorf("input_series: %w", err)}
	}
	defer func() {
		if err := series.Close(); err != nil {
			failures = append(failures, fmt.Errorf("close the series: %w", err))
		}
	}()
	series.SubqueryInterval = every

	manager := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(series.QueryEngine(), series.Storage()),
		AppendableV2: series.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       promslog.NewNopLogger(),
		Parser:       promQL,
	})
	groupsByName, errs := manager.LoadGroups(time.Duration(tg.Interval), labels.EmptyLabels(), "", nil, false, ruleFiles...)
	if errs != nil {
		return errs
	}
	var groups []*rules.Group
	for _, g := range groupsByName {
		groups = append(groups, g)
	}
	// With one group, or groups that read no other's output, the order is
	// not seen; promtool's group_eval_order, which would fix it, is not
	// supported.
	slices.SortFunc(groups, func(a, b *rules.Group) int { return strings.Compare(a.Name(), b.Name()) })
	alerting := map[string][]*rules.AlertingRule{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				// As if the server had restored its state at start: the
				// rules then write the ALERTS series from the first step.
				ar.SetRestored(true)
				alerting[ar.Name()] = append(alerting[ar.Name()], ar)
			}
		}
	}

	alertTests := slices.Clone(tg.AlertTests)
	for _, at := range alertTests {
		if at.Alertname == "" {
			return []error{fmt.Errorf("alert_rule_test at eval_time %s has no alertname", at.EvalTime)}
		}
		if alerting[at.Alertname] == nil {
			return []error{fmt.Errorf("alert_rule_test at eval_time %s: no alerting rule is named %s", at.EvalTime, at.Alertname)}
		}
	}
	slices.SortStableFunc(alertTests, func(a, b alertTest) int { return compareDurations(a.EvalTime, b.EvalTime) })
	last := time.Duration(0)
	for _, at := range alertTests {
		last = max(last, time.Duration(at.EvalTime))
	}
	for _, et := range tg.ExprTests {
		last = max(last, time.Duration(et.EvalTime))
	}

	start := time.Unix(0, 0).UTC()
	for at := time.Duration(0); at <= last; at += every {
		var evalErrs []error
		series.WithSamplesTill(start.Add(at), func(err error) {
			if err != nil {
				evalErrs = append(evalErrs, fmt.Errorf("load the series up to %s: %w", at, err))
				return
			}
			for _, g := range groups {
				g.Eval(series.Context(), start.Add(at))
				for _, r := range g.Rules() {
					if err := r.LastError(); err != nil {
						evalErrs = append(evalErrs, fmt.Errorf("rule %s at %s: %w", r.Name(), at, err))
					}
				}
			}
		})
		if evalErrs != nil {
			return append(failures, evalErrs...)
		}
		// An eval_time between two evaluations sees the earlier one, as
		// on a server.
		for len(alertTests) > 0 && time.Duration(alertTests[0].EvalTime) < at+every {
			at := alertTests[0]
			alertTests = alertTests[1:]
			if err := checkAlerts(at, alerting[at.Alertname]); err != nil {
				failures = append(failures, err)
			}
		}
	}

	for _, et := range tg.ExprTests {
		if err := checkExpr(series, promQL, start, et); err != nil {
			failures = append(failures, err)
		}
	}
	return failures
}

func compareDurations(a, b model.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkAlerts compares the firing alerts of the rules named at.Alertname
// with those expected: labels (alertname included) and annotations, all of
// them, as sets.
func checkAlerts(at alertTest, rs []*rules.AlertingRule) error {
	var got []string
	for _, r := range rs {
		for _, a := range r.ActiveAlerts() {
			if a.State == rules.StateFiring {
				got = append(got, describeAlert(a.Labels, a.Annotations))
			}
		}
	}
	var want []string
	for _, e := range at.ExpAlerts {
		ls := map[string]string{labels.AlertName: at.Alertname}
		for k, v := range e.ExpLabels {
			ls[k] = v
		}
		want = append(want, describeAlert(labels.FromMap(ls), labels.FromMap(e.ExpAnnotations)))
	}
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return nil
	}
	return fmt.Errorf("alert %s at %s:\n  want firing: %s\n  got firing:  %s",
		at.Alertname, at.EvalTime, listOrNone(want), listOrNone(got))
}

func describeAlert(ls, annotations labels.Labels) string {
	return "labels " + ls.String() + " annotations " + annotations.String()
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return "\n    " + strings.Join(items, "\n    ")
}

// checkExpr runs et's query at its eval_time and compares the samples, as
// sets of series and values.
func checkExpr(series *promqltest.LazyLoader, promQL parser.Parser, start time.Time, et exprTest) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("expr %q at %s: "+format, append([]any{et.Expr, et.EvalTime}, args...)...)
	}
	q, err := series.QueryEngine().NewInstantQuery(series.Context(), series.Queryable(), nil, et.Expr, start.Add(time.Duration(et.EvalTime)))
	if err != nil {
		return fail("%w", err)
	}
	res := q.Exec(series.Context())
	if res.Err != nil {
		return fail("%w", res.Err)
	}
	var got []string
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			if s.H != nil {
				return fail("native histograms are not supported here; got %s", s.H)
			}
			got = append(got, describeSample(s.Metric, s.F))
		}
	case promql.Scalar:
		got = append(got, describeSample(labels.EmptyLabels(), v.V))
	default:
		return fail("the result is a %s, not a vector or a scalar", res.Value.Type())
	}
	var want []string
	for _, s := range et.ExpSamples {
		ls, err := promQL.ParseMetric(s.Labels)
		if err != nil {
			return fail("exp_samples labels %q: %w", s.Labels, err)
		}
		want = append(want, describeSample(ls, s.Value))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fail("\n  want: %s\n  got:  %s", listOrNone(want), listOrNone(got))
	}
	return nil
}

func describeSample(ls labels.Labels, v float64) string {
	return ls.String() + " " + strconv.FormatFloat(v, 'g', -1, 64)
}

// errNoTests is returned for a test file without tests: a file that tests
// nothing must not pass as one that tests well.
var errNoTests = errors.New("the file has no tests")
