package crelection

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
)

func policyOptions() fence.PolicyOptions {
	return fence.PolicyOptions{Namespace: "ns", Lease: "lock", Resources: []fence.Resource{{Resource: "configmaps"}}}
}

// TestFencePolicyIsAppliedAndChecked: CheckFencePolicy fails while the
// policy or its binding is missing or differs from fence's, naming what;
// ApplyFencePolicy creates or repairs them; fields the API server fills in
// with defaults do not count as a difference.
func TestFencePolicyIsAppliedAndChecked(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset().AdmissionregistrationV1()
	opts := policyOptions()

	if err := CheckFencePolicy(ctx, client, opts); err == nil || !strings.Contains(err.Error(), `validatingadmissionpolicy "fence-lock" is not installed`) {
		t.Fatalf("CheckFencePolicy with nothing installed: %v; want it to say the policy is not installed", err)
	}
	if err := ApplyFencePolicy(ctx, client, opts); err != nil {
		t.Fatalf("ApplyFencePolicy: %v", err)
	}
	if err := CheckFencePolicy(ctx, client, opts); err != nil {
		t.Fatalf("CheckFencePolicy after ApplyFencePolicy: %v", err)
	}

	// What an API server adds by default is no difference.
	policy, err := client.ValidatingAdmissionPolicies().Get(ctx, "fence-lock", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	equivalent := admissionv1.Equivalent
	policy.Spec.MatchConstraints.MatchPolicy = &equivalent
	policy.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{}
	policy.Spec.MatchConstraints.ResourceRules[0].Scope = ptrTo(admissionv1.AllScopes)
	if _, err := client.ValidatingAdmissionPolicies().Update(ctx, policy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := CheckFencePolicy(ctx, client, opts); err != nil {
		t.Fatalf("CheckFencePolicy with the API server's defaults filled in: %v", err)
	}

	// A policy that fails open, and a binding that only warns, fence nothing.
	ignore := admissionv1.Ignore
	policy.Spec.FailurePolicy = &ignore
	if _, err := client.ValidatingAdmissionPolicies().Update(ctx, policy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding, err := client.ValidatingAdmissionPolicyBindings().Get(ctx, "fence-lock", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding.Spec.ValidationActions = []admissionv1.ValidationAction{admissionv1.Warn}
	if _, err := client.ValidatingAdmissionPolicyBindings().Update(ctx, binding, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = CheckFencePolicy(ctx, client, opts)
	if err == nil || !strings.Contains(err.Error(), `spec.failurePolicy is "Ignore", want "Fail"`) || !strings.Contains(err.Error(), `spec.validationActions[0] is "Warn", want "Deny"`) {
		t.Fatalf("CheckFencePolicy on a policy that fails open and a binding that warns: %v; want both named", err)
	}
	if err := ApplyFencePolicy(ctx, client, opts); err != nil {
		t.Fatalf("ApplyFencePolicy over a changed policy: %v", err)
	}
	if err := CheckFencePolicy(ctx, client, opts); err != nil {
		t.Fatalf("CheckFencePolicy after ApplyFencePolicy repaired them: %v", err)
	}

	if err := ApplyFencePolicy(ctx, client, fence.PolicyOptions{Namespace: "ns", Lease: "lock"}); err == nil || !strings.Contains(err.Error(), "Resources") {
		t.Fatalf("ApplyFencePolicy without resources: %v; want the options' problem named", err)
	}
	if err := CheckFencePolicy(ctx, nil, opts); err == nil || !strings.Contains(err.Error(), "client") {
		t.Fatalf("CheckFencePolicy with a nil client: %v; want it named", err)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestCheckFencePolicyFailsOnAPolicyThatDoesNotFence: a field fence leaves
// unset can still stop the policy from matching the fenced writes (a match
// condition that is never true, a selector or exclusion that leaves the
// resources out, a rule scoped to cluster objects). CheckFencePolicy must
// name such a field, since the API server would let a deposed manager's
// writes through, and ApplyFencePolicy must remove it.
func TestCheckFencePolicyFailsOnAPolicyThatDoesNotFence(t *testing.T) {
	nothing := &metav1.LabelSelector{MatchLabels: map[string]string{"fenced": "never"}}
	configMaps := []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
		Operations: []admissionv1.OperationType{admissionv1.OperationAll},
		Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"*"}, Resources: []string{"configmaps"}},
	}}}
	for _, c := range []struct {
		name    string
		policy  func(*admissionv1.ValidatingAdmissionPolicySpec)
		binding func(*admissionv1.ValidatingAdmissionPolicyBindingSpec)
		want    string
	}{
		{name: "a match condition that is never true", want: "spec.matchConditions",
			policy: func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.MatchConditions = []admissionv1.MatchCondition{{Name: "never", Expression: "false"}}
			}},
		{name: "the policy's object selector", want: "spec.matchConstraints.objectSelector",
			policy: func(s *admissionv1.ValidatingAdmissionPolicySpec) { s.MatchConstraints.ObjectSelector = nothing }},
		{name: "the policy's namespace selector", want: "spec.matchConstraints.namespaceSelector",
			policy: func(s *admissionv1.ValidatingAdmissionPolicySpec) { s.MatchConstraints.NamespaceSelector = nothing }},
		{name: "the policy excludes the resources", want: "spec.matchConstraints.excludeResourceRules",
			policy: func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.MatchConstraints.ExcludeResourceRules = configMaps
			}},
		{name: "a rule for cluster-scoped objects only", want: "spec.matchConstraints.resourceRules[0].scope",
			policy: func(s *admissionv1.ValidatingAdmissionPolicySpec) {
				s.MatchConstraints.ResourceRules[0].Scope = ptrTo(admissionv1.ClusterScope)
			}},
		{name: "the binding's object selector", want: "spec.matchResources.objectSelector",
			binding: func(s *admissionv1.ValidatingAdmissionPolicyBindingSpec) { s.MatchResources.ObjectSelector = nothing }},
		{name: "the binding excludes the resources", want: "spec.matchResources.excludeResourceRules",
			binding: func(s *admissionv1.ValidatingAdmissionPolicyBindingSpec) {
				s.MatchResources.ExcludeResourceRules = configMaps
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			client := fake.NewClientset().AdmissionregistrationV1()
			opts := policyOptions()
			if err := ApplyFencePolicy(ctx, client, opts); err != nil {
				t.Fatalf("ApplyFencePolicy: %v", err)
			}
			if c.policy != nil {
				policy, err := client.ValidatingAdmissionPolicies().Get(ctx, "fence-lock", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				c.policy(&policy.Spec)
				if _, err := client.ValidatingAdmissionPolicies().Update(ctx, policy, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if c.binding != nil {
				binding, err := client.ValidatingAdmissionPolicyBindings().Get(ctx, "fence-lock", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				c.binding(&binding.Spec)
				if _, err := client.ValidatingAdmissionPolicyBindings().Update(ctx, binding, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := CheckFencePolicy(ctx, client, opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckFencePolicy with %s, which fences nothing: %v; want an error naming %s", c.name, err, c.want)
			}
			if err := ApplyFencePolicy(ctx, client, opts); err != nil {
				t.Fatalf("ApplyFencePolicy over %s: %v", c.name, err)
			}
			if err := CheckFencePolicy(ctx, client, opts); err != nil {
				t.Fatalf("CheckFencePolicy after ApplyFencePolicy repaired %s: %v", c.name, err)
			}
		})
	}
}
