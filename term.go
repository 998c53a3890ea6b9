package k8sleaderelection

import (
	"context"
	"fmt"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Term identifies one term of leadership of a Lease lock: the Lease, the
// holder it names, and its spec.leaseTransitions, which goes up by one each
// time the Lease changes hands. The API server stores both in the Lease, so
// a ValidatingAdmissionPolicy that takes the Lease as its parameter can
// refuse a write that carries a term the Lease has moved past (see package
// fence).
type Term struct {
	// Namespace and Lease name the Lease.
	Namespace, Lease string
	// Holder is the identity the Lease names during the term.
	Holder string
	// Transitions is the Lease's spec.leaseTransitions during the term.
	Transitions int32
}

// String is the term as written into a fenced object: transitions and
// holder, which is what a policy compares with the Lease.
func (t Term) String() string { return fmt.Sprintf("%d/%s", t.Transitions, t.Holder) }

type termKey struct{}

// TermFromContext returns the term that OnStartedLeading's context belongs
// to (or any context derived from it). It is there only when the lock is a
// *k8sresourcelock.LeaseLock: other locks keep their record where the API
// server cannot compare it with anything.
func TermFromContext(ctx context.Context) (Term, bool) {
	t, ok := ctx.Value(termKey{}).(Term)
	return t, ok
}

// WithTerm returns a copy of ctx that carries term, as OnStartedLeading's
// context does. The elector sets it itself; this is for tests of code that
// stamps writes, which can then run without an election.
func WithTerm(ctx context.Context, term Term) context.Context {
	return context.WithValue(ctx, termKey{}, term)
}

// withTerm gives ctx the term we lead in, if our lock is a Lease: the holder
// and transitions of the record we last wrote, which is the one that made
// us leader.
func (le *LeaderElector) withTerm(ctx context.Context) context.Context {
	lease, ok := le.config.Lock.(*rl.LeaseLock)
	if !ok {
		return ctx
	}
	return WithTerm(ctx, Term{
		Namespace:   lease.LeaseMeta.Namespace,
		Lease:       lease.LeaseMeta.Name,
		Holder:      le.seen.record.HolderIdentity,
		Transitions: int32(le.seen.record.LeaderTransitions),
	})
}
