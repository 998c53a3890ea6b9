package crelection

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
)

// ApplyFencePolicy installs the ValidatingAdmissionPolicy and binding of
// package fence for opts (see fence.Policy), creating what is missing and
// setting the spec of what differs, so that a manager made WithFencing for
// the same Lease and resources has its late writes refused. It needs RBAC to
// get, create and update validatingadmissionpolicies and
// validatingadmissionpolicybindings; a controller usually leaves that to
// its installer (kubectl apply of cmd/fence-policy's output) and calls
// CheckFencePolicy instead.
func ApplyFencePolicy(ctx context.Context, client admissionv1client.AdmissionregistrationV1Interface, opts fence.PolicyOptions) error {
	policy, binding, err := desiredPolicy(client, opts)
	if err != nil {
		return err
	}
	if err := apply(ctx, client.ValidatingAdmissionPolicies(), "validatingadmissionpolicy", policy,
		func(p *admissionv1.ValidatingAdmissionPolicy) any { return p.Spec },
		func(current, desired *admissionv1.ValidatingAdmissionPolicy) { current.Spec = desired.Spec }); err != nil {
		return err
	}
	return apply(ctx, client.ValidatingAdmissionPolicyBindings(), "validatingadmissionpolicybinding", binding,
		func(b *admissionv1.ValidatingAdmissionPolicyBinding) any { return b.Spec },
		func(current, desired *admissionv1.ValidatingAdmissionPolicyBinding) { current.Spec = desired.Spec })
}

// CheckFencePolicy reports whether the policy and binding of package fence
// for opts are installed as fence.Policy builds them: it fails, naming each
// difference, when either is missing or a field fence sets has another
// value (a failurePolicy of Ignore, a binding that only warns, other
// resources), or a field fence leaves unset holds other than the API
// server's default for it (a match condition, a selector, an exclusion, a
// rule's scope, any of which can leave the fenced writes unmatched), since
// the API server would then let a deposed manager's writes through. It
// needs RBAC to get both kinds.
func CheckFencePolicy(ctx context.Context, client admissionv1client.AdmissionregistrationV1Interface, opts fence.PolicyOptions) error {
	policy, binding, err := desiredPolicy(client, opts)
	if err != nil {
		return err
	}
	var problems []string
	for _, check := range []func() (string, error){
		func() (string, error) {
			return check(ctx, client.ValidatingAdmissionPolicies(), "validatingadmissionpolicy", policy,
				func(p *admissionv1.ValidatingAdmissionPolicy) any { return p.Spec })
		},
		func() (string, error) {
			return check(ctx, client.ValidatingAdmissionPolicyBindings(), "validatingadmissionpolicybinding", binding,
				func(b *admissionv1.ValidatingAdmissionPolicyBinding) any { return b.Spec })
		},
	} {
		problem, err := check()
		if err != nil {
			return err
		}
		if problem != "" {
			problems = append(problems, problem)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("crelection: fence policy for Lease %s/%s: %s", opts.Namespace, opts.Lease, strings.Join(problems, "; "))
	}
	return nil
}

// desiredPolicy is fence.Policy for opts, once client is known to be set.
func desiredPolicy(client admissionv1client.AdmissionregistrationV1Interface, opts fence.PolicyOptions) (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding, error) {
	if isNil(client) {
		return nil, nil, fmt.Errorf("crelection: fence policy for Lease %s/%s: the admissionregistration client must not be nil (got %T)", opts.Namespace, opts.Lease, client)
	}
	policy, binding, err := fence.Policy(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("crelection: %w", err)
	}
	return policy, binding, nil
}

// objectClient is what apply and check need of a typed client of one kind.
type objectClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// apply creates desired, or sets its spec on the object of its name when
// that differs from it.
func apply[T metav1.Object](ctx context.Context, client objectClient[T], kind string, desired T, spec func(T) any, setSpec func(current, desired T)) error {
	current, err := client.Get(ctx, desired.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := client.Create(ctx, desired, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("crelection: create %s %q: %w", kind, desired.GetName(), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("crelection: get %s %q: %w", kind, desired.GetName(), err)
	}
	diffs, err := differences(spec(current), spec(desired))
	if err != nil || len(diffs) == 0 {
		return err
	}
	setSpec(current, desired)
	if _, err := client.Update(ctx, current, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("crelection: update %s %q (%s): %w", kind, desired.GetName(), strings.Join(diffs, ", "), err)
	}
	return nil
}

// check describes how the installed object of desired's name differs from
// it, "" if it does not.
func check[T metav1.Object](ctx context.Context, client objectClient[T], kind string, desired T, spec func(T) any) (string, error) {
	current, err := client.Get(ctx, desired.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("%s %q is not installed (apply it: crelection.ApplyFencePolicy, or kubectl apply the output of cmd/fence-policy)", kind, desired.GetName()), nil
	}
	if err != nil {
		return "", fmt.Errorf("crelection: get %s %q: %w", kind, desired.GetName(), err)
	}
	diffs, err := differences(spec(current), spec(desired))
	if err != nil || len(diffs) == 0 {
		return "", err
	}
	return fmt.Sprintf("%s %q: %s", kind, desired.GetName(), strings.Join(diffs, ", ")), nil
}

// differences lists where installed differs from desired, comparing only
// what desired sets: the API server adds defaults to what fence leaves
// unset, and those are no difference.
func differences(installed, desired any) ([]string, error) {
	var have, want any
	if err := roundTrip(installed, &have); err != nil {
		return nil, err
	}
	if err := roundTrip(desired, &want); err != nil {
		return nil, err
	}
	var diffs []string
	collectDifferences("spec", have, want, &diffs)
	return diffs, nil
}

func roundTrip(v any, into *any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("crelection: encode fence policy: %w", err)
	}
	return json.Unmarshal(raw, into)
}

// serverDefaults are the values the API server gives the fields of a
// policy and binding that fence leaves unset, by field name; an empty
// value (a selector of {}) is a default too. Any other value of such a
// field can narrow what the policy matches (a selector, an exclusion, a
// match condition, a rule's scope), so it is a difference.
var serverDefaults = map[string]any{
	"matchPolicy":   string(admissionv1.Equivalent),
	"scope":         string(admissionv1.AllScopes),
	"failurePolicy": string(admissionv1.Fail),
}

// collectDifferences appends to diffs each place under path where have
// lacks, or differs from, a value want sets, or sets a field want leaves
// unset to other than the API server's default for it.
func collectDifferences(path string, have, want any, diffs *[]string) {
	switch w := want.(type) {
	case map[string]any:
		h, _ := have.(map[string]any)
		keys := make([]string, 0, len(w)+len(h))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range h {
			if _, set := w[k]; !set {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if _, set := w[k]; !set {
				if !isEmpty(h[k]) && !reflect.DeepEqual(h[k], serverDefaults[k]) {
					*diffs = append(*diffs, fmt.Sprintf("%s.%s is %s, which fence leaves unset", path, k, compact(h[k])))
				}
				continue
			}
			collectDifferences(path+"."+k, h[k], w[k], diffs)
		}
	case []any:
		h, _ := have.([]any)
		if len(h) != len(w) {
			*diffs = append(*diffs, fmt.Sprintf("%s has %d items, want %d (%s)", path, len(h), len(w), compact(w)))
			return
		}
		for i := range w {
			collectDifferences(fmt.Sprintf("%s[%d]", path, i), h[i], w[i], diffs)
		}
	default:
		if have == nil {
			*diffs = append(*diffs, fmt.Sprintf("%s is missing, want %s", path, compact(want)))
		} else if !reflect.DeepEqual(have, want) {
			*diffs = append(*diffs, fmt.Sprintf("%s is %s, want %s", path, compact(have), compact(want)))
		}
	}
}

// isEmpty reports a JSON value that sets nothing: null, "", {} or [].
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

// compact is v as JSON, for a message.
func compact(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(raw)
}
