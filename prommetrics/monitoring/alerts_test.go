package monitoring

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"go.yaml.in/yaml/v2"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	rulesFile     = "alerts.yaml"
	ruleTestsFile = "alerts_test.yaml"
)

// TestAlertRules runs the rule unit tests of alerts_test.yaml on
// Prometheus' engine and rule evaluation.
func TestAlertRules(t *testing.T) {
	f, err := loadRuleTests(ruleTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) == 0 {
		t.Fatalf("%s: %v", ruleTestsFile, errNoTests)
	}
	for _, tg := range f.Tests {
		t.Run(tg.Name, func(t *testing.T) {
			for _, err := range tg.run(f.RuleFiles, time.Duration(f.EvaluationInterval)) {
				t.Error(err)
			}
		})
	}
}

// TestEveryAlertIsTestedBothWays checks that alerts_test.yaml shows each
// alert of alerts.yaml firing at some time and not firing at another, so
// that an alert nobody tests, or one tested only for silence, stands out.
func TestEveryAlertIsTestedBothWays(t *testing.T) {
	f, err := loadRuleTests(ruleTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tg := range f.Tests {
		for _, at := range tg.AlertTests {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				silent[at.Alertname] = true
			}
		}
	}
	for _, r := range alertingRules(t) {
		if !fires[r.Alert] {
			t.Errorf("%s: no test in %s expects alert %s to fire", rulesFile, ruleTestsFile, r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("%s: no test in %s expects alert %s to stay silent", rulesFile, ruleTestsFile, r.Alert)
		}
	}
}

// TestAlertsSayWhatAndHowBad checks what an on-call reader needs of each
// alert: a for duration written down, a severity a router understands, and
// a summary and a description.
func TestAlertsSayWhatAndHowBad(t *testing.T) {
	// rulefmt reads an absent for as 0: only the YAML tells them apart.
	var written struct {
		Groups []struct {
			Rules []struct {
				Alert string  `yaml:"alert"`
				For   *string `yaml:"for"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, rulesFile), &written); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	for _, g := range written.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && r.For == nil {
				t.Errorf("alert %s: no for (write for: 0m if it should fire at once)", r.Alert)
			}
		}
	}
	for _, r := range alertingRules(t) {
		switch s := r.Labels["severity"]; s {
		case "critical", "warning", "info":
		default:
			t.Errorf("alert %s: label severity is %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, a)
			}
		}
	}
}

// alertingRules returns the alerting rules of alerts.yaml, as Prometheus
// parses and checks them when it loads the file.
func alertingRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups := parseRules(t, rulesFile)
	var alerts []rulefmt.Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s has no alerting rules", rulesFile)
	}
	return alerts
}

func parseRules(t *testing.T, path string) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Clean(path), false, model.UTF8Validation, parser.NewParser(parser.Options{}), promslog.NewNopLogger())
	for _, err := range errs {
		t.Errorf("%s: %v", path, err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

// readFile returns the contents of path or ends the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
