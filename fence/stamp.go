package fence

import (
	"context"
	"errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
)

// TermAnnotation is the annotation a fenced write carries: the term it was
// made in, as Term.String writes it ("<uid>/<leaseTransitions>/<holder>").
const TermAnnotation = "k8sleaderelection.github.io/term"

// ErrNoTerm is returned for a write that cannot be stamped: its context
// carries no term, because it does not come from OnStartedLeading's context
// or the elector's lock is not a Lease.
var ErrNoTerm = errors.New("no leader term in the context: fenced writes must use OnStartedLeading's context (or one derived from it), and the elector's lock must be a *k8sresourcelock.LeaseLock (a ConfigMap's or Endpoints' record cannot be checked by an admission policy)")

// Stamp writes the term of ctx into obj's TermAnnotation, so that the API
// server accepts the write only while that term lasts.
func Stamp(ctx context.Context, obj metav1.Object) error {
	if nilness.Is(obj) {
		return errors.New("fence: Stamp needs an object, got nil")
	}
	term, ok := le.TermFromContext(ctx)
	if !ok {
		return ErrNoTerm
	}
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[TermAnnotation] = term.String()
	obj.SetAnnotations(annotations)
	return nil
}
