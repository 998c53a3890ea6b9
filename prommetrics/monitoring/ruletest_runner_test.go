package monitoring

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The runner is itself a check: it must fail on every expectation that
// does not hold, or the alerts' tests prove nothing.

const runnerRules = `groups:
  - name: g
    rules:
      - alert: High
        expr: x > 1
        for: 1m
        labels:
          severity: warning
        annotations:
          summary: x is {{ $value }}
`

// runnerTest is a test group on series x, which is 0 until 2m and 5 after;
// High is pending from 2m and fires from 3m.
func runnerTest(expectations string) string {
	return `rule_files: [rules.yaml]
tests:
  - interval: 1m
    input_series:
      - series: x
        values: 0 0 5x10
` + expectations
}

func runRunnerTest(t *testing.T, testFile string) []error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(runnerRules), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules_test.yaml")
	if err := os.WriteFile(path, []byte(testFile), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := loadRuleTests(path)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, tg := range f.Tests {
		errs = append(errs, tg.run(f.RuleFiles, time.Duration(f.EvaluationInterval))...)
	}
	return errs
}

func TestRuleTestRunnerPassesWhatHolds(t *testing.T) {
	errs := runRunnerTest(t, runnerTest(`    alert_rule_test:
      - eval_time: 2m
        alertname: High
        exp_alerts: []
      - eval_time: 3m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations: {summary: x is 5}
    promql_expr_test:
      - expr: x * 2
        eval_time: 4m
        exp_samples:
          - labels: '{}'
            value: 10
`))
	for _, err := range errs {
		t.Errorf("a test whose expectations hold failed: %v", err)
	}
}

func TestRuleTestRunnerFailsWhatDoesNotHold(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{{
		name: "an alert expected that is only pending",
		file: runnerTest(`    alert_rule_test:
      - eval_time: 2m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations: {summary: x is 5}
`),
		want: "got firing:  none",
	}, {
		name: "an alert firing where none is expected",
		file: runnerTest(`    alert_rule_test:
      - eval_time: 3m
        alertname: High
        exp_alerts: []
`),
		want: "want firing: none",
	}, {
		name: "an annotation that differs",
		file: runnerTest(`    alert_rule_test:
      - eval_time: 3m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations: {summary: x is 6}
`),
		want: `summary="x is 5"`,
	}, {
		name: "a label left out",
		file: runnerTest(`    alert_rule_test:
      - eval_time: 3m
        alertname: High
        exp_alerts:
          - exp_annotations: {summary: x is 5}
`),
		want: `severity="warning"`,
	}, {
		name: "a query's value that differs",
		file: runnerTest(`    promql_expr_test:
      - expr: x * 2
        eval_time: 4m
        exp_samples:
          - labels: '{}'
            value: 11
`),
		want: "{} 10",
	}, {
		name: "an alert no rule has",
		file: runnerTest(`    alert_rule_test:
      - eval_time: 3m
        alertname: Hihg
        exp_alerts: []
`),
		want: "no alerting rule is named Hihg",
	}, {
		name: "a field this runner does not support",
		file: runnerTest(`    external_labels: {cluster: a}
`),
		want: "field external_labels not found",
	}, {
		name: "a rule file that is not there",
		file: strings.Replace(runnerTest(""), "rules.yaml", "missing.yaml", 1),
		want: "matches no file",
	}, {
		name: "a series that does not parse",
		file: strings.Replace(runnerTest(""), "0 0 5x10", "0 0 five", 1),
		want: "input_series",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			errs := runRunnerTest(t, tc.file)
			var msgs []string
			for _, err := range errs {
				msgs = append(msgs, err.Error())
			}
			got := strings.Join(msgs, "\n")
			if !strings.Contains(got, tc.want) {
				t.Errorf("want a failure mentioning %q, got: %q", tc.want, got)
			}
		})
	}
}
