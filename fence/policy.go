package fence

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Mode says which writes to the fenced resources the policy checks.
type Mode string

const (
	// StampedOnly checks only writes that carry a term, and lets through
	// those of anyone who does not fence (a person with kubectl, another
	// controller).
	StampedOnly Mode = "StampedOnly"
	// EveryWrite refuses any write without the current term.
	EveryWrite Mode = "EveryWrite"
)

// Resource is a resource to fence, as an admission rule names it.
type Resource struct {
	// Group is the API group; "" for the core group.
	Group string
	// Resource is the plural name, such as "configmaps". Subresources
	// cannot be fenced: a write to one keeps the stored metadata, stamp
	// included.
	Resource string
}

// String names r as kubectl does: configmaps, deployments.apps.
func (r Resource) String() string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

// PolicyOptions says what to fence.
type PolicyOptions struct {
	// Name names the policy and its binding. Empty means
	// "fence-<lease>".
	Name string
	// Namespace is where the Lease and the fenced objects live.
	Namespace string
	// Lease is the name of the Lease the leader holds.
	Lease string
	// Resources are the resources whose creates and updates are checked.
	Resources []Resource
	// Mode is StampedOnly (the default) or EveryWrite.
	Mode Mode
	// Writers, if set, are the only users whose writes are checked (for
	// a controller, its service account:
	// "system:serviceaccount:<namespace>:<name>"). Writes by anyone else
	// (a person with kubectl, the garbage collector removing a
	// finalizer) pass, even on an object whose stamp is from an ended
	// term. Empty checks every user's writes.
	Writers []string
}

// Policy returns the ValidatingAdmissionPolicy and its binding that make
// the API server refuse a create or update of opts.Resources in
// opts.Namespace whose TermAnnotation is not the Lease's current term
// ("<metadata.uid>/<spec.leaseTransitions>/<spec.holderIdentity>", as
// k8sleaderelection.Term.String writes it). A stamp in the format before
// the UID was part of it ("<leaseTransitions>/<holder>") never equals that,
// so it is refused: see the package doc for the upgrade. The
// Lease is the policy's parameter: while it is missing, every checked write
// is refused. Creating them needs RBAC to create validatingadmissionpolicies
// and validatingadmissionpolicybindings (admissionregistration.k8s.io), and
// the API server reads the Lease itself; the leader needs nothing more.
func Policy(opts PolicyOptions) (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding, error) {
	if err := opts.check(); err != nil {
		return nil, nil, err
	}
	name := opts.Name
	if name == "" {
		name = "fence-" + opts.Lease
	}
	var rules []admissionv1.NamedRuleWithOperations
	for _, r := range opts.Resources {
		rules = append(rules, admissionv1.NamedRuleWithOperations{RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
			Rule: admissionv1.Rule{
				APIGroups:   []string{r.Group},
				APIVersions: []string{"*"},
				Resources:   []string{r.Resource},
			},
		}})
	}
	fail := admissionv1.Fail
	var conditions []admissionv1.MatchCondition
	if len(opts.Writers) > 0 {
		quoted := make([]string, len(opts.Writers))
		for i, w := range opts.Writers {
			quoted[i] = strconv.Quote(w)
		}
		conditions = []admissionv1.MatchCondition{{
			Name:       "fenced-writers",
			Expression: "request.userInfo.username in [" + strings.Join(quoted, ", ") + "]",
		}}
	}
	policy := &admissionv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			ParamKind:        &admissionv1.ParamKind{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: rules},
			MatchConditions:  conditions,
			FailurePolicy:    &fail,
			Variables: []admissionv1.Variable{
				{Name: "stamp", Expression: fmt.Sprintf(`has(object.metadata.annotations) && %q in object.metadata.annotations ? object.metadata.annotations[%q] : ""`, TermAnnotation, TermAnnotation)},
				{Name: "uid", Expression: `has(params.metadata.uid) ? params.metadata.uid : ""`},
				{Name: "term", Expression: `variables.uid + "/" + string(has(params.spec.leaseTransitions) ? params.spec.leaseTransitions : 0) + "/" + (has(params.spec.holderIdentity) ? params.spec.holderIdentity : "")`},
			},
			Validations: []admissionv1.Validation{{
				Expression:        check(opts.mode()),
				MessageExpression: message(opts.Namespace + "/" + opts.Lease),
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name,
			ParamRef: &admissionv1.ParamRef{
				Name:                    opts.Lease,
				Namespace:               opts.Namespace,
				ParameterNotFoundAction: ptrTo(admissionv1.DenyAction),
			},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": opts.Namespace},
			}},
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
		},
	}
	return policy, binding, nil
}

// message is the policy's explanation of a refusal, naming both terms. A
// stamp that does not start with the Lease's UID was made under another
// Lease of that name (deleted since), or before terms carried the UID.
func message(lease string) string {
	noTerm := fmt.Sprintf(`"fenced: this write carries no leader term (annotation %s); the Lease %s is at term " + variables.term`, TermAnnotation, lease)
	moved := fmt.Sprintf(`"fenced: this write was made in leader term " + variables.stamp + ", but the Lease %s has moved on to term " + variables.term`, lease)
	otherLease := moved + ` + " (the stamp names no term of this Lease, whose UID is " + variables.uid + ": it was made under a Lease of that name since deleted, or in the format before terms carried the Lease's UID, <leaseTransitions>/<holder>)"`
	return fmt.Sprintf(`variables.stamp == "" ? %s : !variables.stamp.startsWith(variables.uid + "/") ? %s : %s`, noTerm, otherLease, moved)
}

// check is the policy's test of a write: it carries the Lease's current
// term, or (StampedOnly) no term at all.
func check(mode Mode) string {
	if mode == EveryWrite {
		return `variables.stamp == variables.term`
	}
	return `variables.stamp == "" || variables.stamp == variables.term`
}

func (o PolicyOptions) mode() Mode {
	if o.Mode == "" {
		return StampedOnly
	}
	return o.Mode
}

// check reports every problem with o, each naming its field.
func (o PolicyOptions) check() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		bad("Namespace %q: %s", o.Namespace, strings.Join(msgs, ", "))
	}
	if msgs := validation.IsDNS1123Subdomain(o.Lease); len(msgs) > 0 {
		bad("Lease %q: %s", o.Lease, strings.Join(msgs, ", "))
	}
	if o.Name != "" {
		if msgs := validation.IsDNS1123Subdomain(o.Name); len(msgs) > 0 {
			bad("Name %q: %s", o.Name, strings.Join(msgs, ", "))
		}
	} else if msgs := validation.IsDNS1123Subdomain("fence-" + o.Lease); o.Lease != "" && len(msgs) > 0 {
		bad("Name: the default %q is too long; set one: %s", "fence-"+o.Lease, strings.Join(msgs, ", "))
	}
	if len(o.Resources) == 0 {
		bad("Resources: name at least one resource to fence")
	}
	for i, r := range o.Resources {
		switch {
		case strings.Contains(r.Resource, "/"):
			bad("Resources[%d]: %q is a subresource: writes to a subresource (status, scale) keep the object's stored metadata, so the stamp they carry is never what the policy sees; fence the resource itself", i, r.Resource)
		case r.Resource == "" || strings.Contains(r.Resource, "*"):
			bad("Resources[%d]: resource %q must be a plural resource name such as configmaps (no wildcards: the Lease itself must never be fenced)", i, r.Resource)
		case len(validation.IsDNS1123Label(r.Resource)) > 0:
			bad("Resources[%d]: resource %q is not a resource name as requests name it (lower case, such as configmaps): it would match nothing", i, r.Resource)
		case r.Group != "" && len(validation.IsDNS1123Subdomain(r.Group)) > 0:
			bad("Resources[%d]: group %q is not an API group name as requests name it (lower case, such as apps): it would match nothing", i, r.Group)
		case r.Group == "coordination.k8s.io" && r.Resource == "leases":
			bad("Resources[%d]: fencing leases would fence the lock itself", i)
		}
	}
	for i, w := range o.Writers {
		if strings.TrimSpace(w) == "" {
			bad("Writers[%d]: empty user name", i)
		}
	}
	if o.Mode != "" && o.Mode != StampedOnly && o.Mode != EveryWrite {
		bad("Mode %q: must be %q or %q", o.Mode, StampedOnly, EveryWrite)
	}
	if len(errs) > 0 {
		return errors.New("fence: invalid policy options: " + strings.Join(errs, "; "))
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }
