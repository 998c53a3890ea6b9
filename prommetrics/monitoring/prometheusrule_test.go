package monitoring

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

var update = flag.Bool("update", false, "rewrite prometheusrule.yaml from alerts.yaml")

const prometheusRuleFile = "prometheusrule.yaml"

const prometheusRuleHeader = `# Generated from alerts.yaml by
#   go test -run TestPrometheusRuleMatchesRules -update
# Do not edit: edit alerts.yaml, the one source of these rules.
#
# For the Prometheus Operator: add the labels your Prometheus' ruleSelector
# asks for (kube-prometheus-stack's, for one, selects release: <its release>),
# and apply it in a namespace its ruleNamespaceSelector covers.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: leader-election
  labels:
    app.kubernetes.io/name: k8sleaderelection
    app.kubernetes.io/component: alerts
spec:
`

// prometheusRule is the manifest made of rules, a file in Prometheus'
// rule_files format: its groups become spec.groups, comments and all.
func prometheusRule(rules []byte) ([]byte, bool) {
	start := bytes.Index(rules, []byte("\ngroups:\n"))
	if start < 0 {
		return nil, false
	}
	var b bytes.Buffer
	b.WriteString(prometheusRuleHeader)
	for _, line := range strings.SplitAfter(string(rules[start+1:]), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
	}
	return b.Bytes(), true
}

// TestPrometheusRuleMatchesRules checks that the PrometheusRule manifest
// holds the very groups of alerts.yaml, and is the file its generator
// makes of them.
func TestPrometheusRuleMatchesRules(t *testing.T) {
	rules := readFile(t, rulesFile)
	generated, ok := prometheusRule(rules)
	if !ok {
		t.Fatalf("%s: no line groups: at the top level", rulesFile)
	}
	if *update {
		if err := os.WriteFile(prometheusRuleFile, generated, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var plain struct {
		Groups any `yaml:"groups"`
	}
	if err := yaml.UnmarshalStrict(rules, &plain); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var manifest struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   any    `yaml:"metadata"`
		Spec       struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, prometheusRuleFile), &manifest); err != nil {
		t.Fatalf("%s: %v", prometheusRuleFile, err)
	}
	if manifest.APIVersion != "monitoring.coreos.com/v1" || manifest.Kind != "PrometheusRule" {
		t.Errorf("%s is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", prometheusRuleFile, manifest.APIVersion, manifest.Kind)
	}
	if plain.Groups == nil {
		t.Fatalf("%s has no groups", rulesFile)
	}
	if !reflect.DeepEqual(manifest.Spec.Groups, plain.Groups) {
		t.Errorf("the spec.groups of %s differ from the groups of %s; run go test -run TestPrometheusRuleMatchesRules -update", prometheusRuleFile, rulesFile)
	}
	if on := readFile(t, prometheusRuleFile); !bytes.Equal(on, generated) {
		t.Errorf("%s is not what its generator makes of %s; run go test -run TestPrometheusRuleMatchesRules -update", prometheusRuleFile, rulesFile)
	}
}
