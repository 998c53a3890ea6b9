package fence

import (
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
)

func TestPolicyBindsTheLeaseAndTheResources(t *testing.T) {
	policy, binding, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}}})
	if err != nil {
		t.Fatal(err)
	}
	if policy.Name != "fence-ctl" || binding.Spec.PolicyName != policy.Name {
		t.Fatalf("names: policy %q, binding's policy %q; want fence-ctl", policy.Name, binding.Spec.PolicyName)
	}
	if pk := policy.Spec.ParamKind; pk == nil || pk.APIVersion != "coordination.k8s.io/v1" || pk.Kind != "Lease" {
		t.Fatalf("paramKind %+v; want the Lease", pk)
	}
	ref := binding.Spec.ParamRef
	if ref == nil || ref.Name != "ctl" || ref.Namespace != "ns1" || ref.ParameterNotFoundAction == nil || *ref.ParameterNotFoundAction != admissionv1.DenyAction {
		t.Fatalf("paramRef %+v; want ns1/ctl, denying while it is missing", ref)
	}
	if got := binding.Spec.MatchResources.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; got != "ns1" {
		t.Fatalf("binding matches namespace %q, want ns1", got)
	}
	rules := policy.Spec.MatchConstraints.ResourceRules
	if len(rules) != 2 || rules[1].APIGroups[0] != "apps" || rules[1].Resources[0] != "deployments" {
		t.Fatalf("rules %+v; want configmaps and apps/deployments", rules)
	}
	for _, r := range rules {
		if ops := r.Operations; len(ops) != 2 || ops[0] != admissionv1.Create || ops[1] != admissionv1.Update {
			t.Fatalf("operations %v; want CREATE and UPDATE (a delete carries no object to stamp)", ops)
		}
	}
	if *policy.Spec.FailurePolicy != admissionv1.Fail || binding.Spec.ValidationActions[0] != admissionv1.Deny {
		t.Fatal("the policy must fail closed and deny")
	}
}

// TestPolicyModes: StampedOnly lets unstamped writes through, EveryWrite
// does not.
func TestPolicyModes(t *testing.T) {
	for mode, want := range map[Mode]string{"": `variables.stamp == "" || variables.stamp == variables.term`, StampedOnly: `variables.stamp == "" || variables.stamp == variables.term`, EveryWrite: `variables.stamp == variables.term`} {
		policy, _, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}}, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if got := policy.Spec.Validations[0].Expression; got != want {
			t.Errorf("mode %q: expression %q, want %q", mode, got, want)
		}
	}
}

func TestPolicyRejectsBadOptions(t *testing.T) {
	ok := func() PolicyOptions {
		return PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}}}
	}
	cases := []struct {
		name   string
		change func(*PolicyOptions)
		want   string
	}{
		{"no namespace", func(o *PolicyOptions) { o.Namespace = "" }, `Namespace ""`},
		{"no lease", func(o *PolicyOptions) { o.Lease = "" }, `Lease ""`},
		{"no resources", func(o *PolicyOptions) { o.Resources = nil }, "name at least one resource"},
		{"wildcard", func(o *PolicyOptions) { o.Resources = []Resource{{Resource: "*"}} }, "no wildcards"},
		{"the lock itself", func(o *PolicyOptions) { o.Resources = []Resource{{Group: "coordination.k8s.io", Resource: "leases"}} }, "fence the lock itself"},
		{"bad mode", func(o *PolicyOptions) { o.Mode = "Sometimes" }, `Mode "Sometimes"`},
		{"bad name", func(o *PolicyOptions) { o.Name = "Fence!" }, `Name "Fence!"`},
		{"a status subresource", func(o *PolicyOptions) { o.Resources = []Resource{{Group: "example.com", Resource: "widgets/status"}} }, "is a subresource"},
	}
	for _, tc := range cases {
		o := ok()
		tc.change(&o)
		if _, _, err := Policy(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseResources(t *testing.T) {
	got, err := ParseResources("configmaps, deployments.apps,deployments.apps/status,widgets.example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := []Resource{{"", "configmaps"}, {"apps", "deployments"}, {"apps", "deployments/status"}, {"example.com", "widgets"}}
	if len(got) != len(want) {
		t.Fatalf("%+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := ParseResources(" , "); err == nil {
		t.Error("an empty list parsed")
	}
}

func TestYAMLHoldsBoth(t *testing.T) {
	out, err := YAML(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}}})
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"kind: ValidatingAdmissionPolicy\n", "---\n", "kind: ValidatingAdmissionPolicyBinding\n", "parameterNotFoundAction: Deny"} {
		if !strings.Contains(text, want) {
			t.Errorf("YAML lacks %q:\n%s", want, text)
		}
	}
}

// TestPolicyWriters: with Writers, only their writes are checked.
func TestPolicyWriters(t *testing.T) {
	policy, _, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}},
		Writers: []string{"system:serviceaccount:ns1:ctl", `odd"name`}})
	if err != nil {
		t.Fatal(err)
	}
	conditions := policy.Spec.MatchConditions
	if len(conditions) != 1 || conditions[0].Expression != `request.userInfo.username in ["system:serviceaccount:ns1:ctl", "odd\"name"]` {
		t.Fatalf("match conditions %+v; want the writers' names, quoted", conditions)
	}
	if policy, _, _ = Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}}}); len(policy.Spec.MatchConditions) != 0 {
		t.Fatalf("match conditions without Writers: %+v; want none (every user is checked)", policy.Spec.MatchConditions)
	}
	if _, _, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}}, Writers: []string{" "}}); err == nil {
		t.Fatal("an empty writer name was accepted")
	}
}

// TestPolicyTermNamesTheLease: the policy's term is the one Term.String
// writes, UID first, so that a stamp from a Lease of the same name that has
// since been deleted never matches, nor does one of the older format without
// the UID; its refusal says which case it is.
func TestPolicyTermNamesTheLease(t *testing.T) {
	policy, _, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{{Resource: "configmaps"}}})
	if err != nil {
		t.Fatal(err)
	}
	variables := map[string]string{}
	for _, v := range policy.Spec.Variables {
		variables[v.Name] = v.Expression
	}
	if got, want := variables["uid"], `has(params.metadata.uid) ? params.metadata.uid : ""`; got != want {
		t.Errorf("variable uid = %s; want %s", got, want)
	}
	if got, want := variables["term"], `variables.uid + "/" + string(has(params.spec.leaseTransitions) ? params.spec.leaseTransitions : 0) + "/" + (has(params.spec.holderIdentity) ? params.spec.holderIdentity : "")`; got != want {
		t.Errorf("variable term = %s; want %s (Term.String's <uid>/<transitions>/<holder>)", got, want)
	}
	message := policy.Spec.Validations[0].MessageExpression
	for _, want := range []string{`!variables.stamp.startsWith(variables.uid + "/")`, "since deleted", "format before terms carried the Lease's UID", "has moved on to term"} {
		if !strings.Contains(message, want) {
			t.Errorf("message expression lacks %q:\n%s", want, message)
		}
	}
}

// TestParseResourcesReadsResourceVersionGroup: ParseResources reads kubectl's
// resource.version.group form (or refuses it), and never takes the version for
// part of the group.
//
// Found by an adversarial review of the first version, which it failed:
// kubectl also names a resource as resource.version.group
// ("deployments.v1.apps"); ParseResources reads the group as "v1.apps", and
// the policy then fences a group that does not exist: nothing is checked and
// nothing says so.
func TestParseResourcesReadsResourceVersionGroup(t *testing.T) {
	got, err := ParseResources("deployments.v1.apps")
	want := []Resource{{Group: "apps", Resource: "deployments"}}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseResources(deployments.v1.apps) = %+v; want %+v or an error, not a policy for group %q", got, want, got[0].Group)
	}
}

// TestPolicyRefusesResourceNamesThatNeverMatch: Policy refuses resource names
// that the API server rejects or that no request can match.
//
// Found by an adversarial review of the first version, which it failed: Policy
// accepts resource names the API server rejects ("/status": empty resource
// before the subresource) or that can never match a request (admission rules
// compare lowercase plural names exactly: "ConfigMaps", "config maps"), so
// fence-policy prints a policy that kubectl apply refuses, or that fences
// nothing while looking right.
func TestPolicyRefusesResourceNamesThatNeverMatch(t *testing.T) {
	for _, r := range []Resource{
		{Resource: "/status"},
		{Resource: "configmaps/"},
		{Resource: "ConfigMaps"},
		{Resource: "config maps"},
		{Group: "Apps", Resource: "deployments"},
	} {
		if _, _, err := Policy(PolicyOptions{Namespace: "ns1", Lease: "ctl", Resources: []Resource{r}}); err == nil {
			t.Errorf("Policy accepted resource %+v, which no request ever matches (or the API server rejects)", r)
		}
	}
}
