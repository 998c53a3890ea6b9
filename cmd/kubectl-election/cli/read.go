package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// reader reads elections through a clientset.
type reader struct {
	client kubernetes.Interface
	now    func() time.Time
	// warn gets notes that do not stop the command, such as candidates
	// that could not be read.
	warn io.Writer
}

// resource names of the lock kinds, as errors and RBAC name them.
var resources = map[string]string{
	kindLease:     "leases.coordination.k8s.io",
	kindConfigMap: "configmaps",
	kindEndpoints: "endpoints",
}

// apiError names the request that failed (verb, resource, where) in front of
// the API server's own message, which for a 403 names the user.
func apiError(verb, kind, namespace, name string, err error) error {
	where := fmt.Sprintf("in namespace %q", namespace)
	if namespace == "" {
		where = "in all namespaces"
	}
	what := resources[kind]
	if name != "" {
		what += fmt.Sprintf(" %q", name)
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("no permission to %s %s %s: %w", verb, what, where, err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, what, where, err)
}

// list returns every election in namespace ("" for all namespaces), sorted
// by namespace, name and kind.
func (r reader) list(ctx context.Context, namespace string) ([]Election, error) {
	now := r.now()
	var out []Election
	leases, err := r.client.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError("list", kindLease, namespace, "", err)
	}
	for i := range leases.Items {
		out = append(out, fromLease(&leases.Items[i], now))
	}
	configMaps, err := r.client.CoreV1().ConfigMaps(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError("list", kindConfigMap, namespace, "", err)
	}
	for i := range configMaps.Items {
		if e, err := fromAnnotated(&configMaps.Items[i], now); err == nil {
			out = append(out, e)
		}
	}
	endpoints, err := r.client.CoreV1().Endpoints(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError("list", kindEndpoints, namespace, "", err)
	}
	for i := range endpoints.Items {
		if e, err := fromAnnotated(&endpoints.Items[i], now); err == nil {
			out = append(out, e)
		}
	}
	sortElections(out)
	return out, r.addCandidates(ctx, namespace, out)
}

// get returns the elections named by ref ("NAME" or "KIND/NAME") in
// namespace: with a bare name, each lock kind that holds one (a migration's
// MultiLock keeps a ConfigMap or Endpoints and a Lease of one name).
func (r reader) get(ctx context.Context, namespace, ref string) ([]Election, error) {
	kinds, name, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	now := r.now()
	var (
		out         []Election
		notElection []error
	)
	for _, kind := range kinds {
		e, err := r.getOne(ctx, kind, namespace, name, now)
		switch {
		case apierrors.IsNotFound(err):
		case errors.Is(err, errNotElection):
			notElection = append(notElection, err)
		case err != nil:
			return nil, err
		default:
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		if len(notElection) > 0 {
			return nil, errors.Join(notElection...)
		}
		what := kinds[0]
		if len(kinds) > 1 {
			what = strings.Join(kinds[:len(kinds)-1], ", ") + " or " + kinds[len(kinds)-1]
		}
		return nil, fmt.Errorf("election %s/%s not found: no %s of that name in namespace %q", namespace, name, what, namespace)
	}
	return out, r.addCandidates(ctx, namespace, out)
}

// getOne reads one lock object. An absent one gives the API's NotFound.
func (r reader) getOne(ctx context.Context, kind, namespace, name string, now time.Time) (Election, error) {
	var (
		e   Election
		err error
	)
	switch kind {
	case kindLease:
		var lease *coordinationv1.Lease
		if lease, err = r.client.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			return fromLease(lease, now), nil
		}
	case kindConfigMap:
		var cm *corev1.ConfigMap
		if cm, err = r.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			return fromAnnotated(cm, now)
		}
	case kindEndpoints:
		var ep *corev1.Endpoints
		if ep, err = r.client.CoreV1().Endpoints(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			return fromAnnotated(ep, now)
		}
	}
	if apierrors.IsNotFound(err) {
		return e, err
	}
	return e, apiError("get", kind, namespace, name, err)
}

// parseRef splits "KIND/NAME" or "NAME" into the kinds to look in and the
// name. Kinds are accepted as kubectl spells them.
func parseRef(ref string) ([]string, string, error) {
	kindPart, name, hasKind := strings.Cut(ref, "/")
	if !hasKind {
		kindPart, name = "", ref
	}
	if name == "" || strings.Contains(name, "/") {
		return nil, "", fmt.Errorf("election %q: want NAME or KIND/NAME, such as lease/my-controller", ref)
	}
	switch strings.ToLower(kindPart) {
	case "":
		return []string{kindLease, kindConfigMap, kindEndpoints}, name, nil
	case "lease", "leases", "lease.coordination.k8s.io", "leases.coordination.k8s.io":
		return []string{kindLease}, name, nil
	case "configmap", "configmaps", "cm":
		return []string{kindConfigMap}, name, nil
	case "endpoints", "ep":
		return []string{kindEndpoints}, name, nil
	}
	return nil, "", fmt.Errorf("election %q: kind %q is not one of lease, configmap, endpoints", ref, kindPart)
}

// addCandidates fills in the LeaseCandidates (coordination.k8s.io/v1beta1)
// that name each Lease. A server that does not serve them, or a user who
// may not list them, leaves the candidates unknown: they are extra.
func (r reader) addCandidates(ctx context.Context, namespace string, elections []Election) error {
	if !slices.ContainsFunc(elections, func(e Election) bool { return e.Kind == kindLease }) {
		return nil
	}
	list, err := r.client.CoordinationV1beta1().LeaseCandidates(namespace).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsMethodNotSupported(err):
		return nil
	case apierrors.IsForbidden(err):
		fmt.Fprintf(r.warn, "warning: candidates unknown: %v\n", err)
		return nil
	case err != nil:
		return fmt.Errorf("list leasecandidates.coordination.k8s.io: %w", err)
	}
	byLease := map[[2]string][]string{}
	for _, c := range list.Items {
		k := [2]string{c.Namespace, c.Spec.LeaseName}
		byLease[k] = append(byLease[k], c.Name)
	}
	for i := range elections {
		if elections[i].Kind != kindLease {
			continue
		}
		names := byLease[[2]string{elections[i].Namespace, elections[i].Name}]
		slices.Sort(names)
		elections[i].Candidates = names
	}
	return nil
}

func sortElections(es []Election) {
	slices.SortFunc(es, func(a, b Election) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
}
