package k8sleaderelection

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Term identifies one term of leadership of a Lease lock: the Lease (its
// name and the UID the API server gave it when it was created), the holder
// it names, and its spec.leaseTransitions, which goes up by one each time
// the Lease changes hands. The API server stores all three in the Lease, so
// a ValidatingAdmissionPolicy that takes the Lease as its parameter can
// refuse a write that carries a term the Lease has moved past (see package
// fence). The UID makes terms unique for the life of the Lease's name: a
// Lease deleted and created again starts at leaseTransitions 0 once more,
// perhaps naming the same holder, but under a new UID.
type Term struct {
	// Namespace and Lease name the Lease.
	Namespace, Lease string
	// Holder is the identity the Lease names during the term.
	Holder string
	// Transitions is the Lease's spec.leaseTransitions during the term.
	Transitions int32
	// UID is the Lease's metadata.uid during the term. It is empty only
	// with a clientset that assigns no UIDs (client-go's stock fake); no
	// policy ever accepts a stamp without one.
	UID types.UID
}

// String is the term as written into a fenced object:
// "<uid>/<transitions>/<holder>", which is what a policy compares with the
// Lease. (Before the UID was part of it, a stamp read
// "<transitions>/<holder>"; see package fence for what a policy does with
// one.)
func (t Term) String() string { return fmt.Sprintf("%s/%d/%s", t.UID, t.Transitions, t.Holder) }

type termKey struct{}

// TermFromContext returns the term that OnStartedLeading's context belongs
// to (or any context derived from it). It is there only when the lock has a
// term (k8sresourcelock.TermLock: a *k8sresourcelock.LeaseLock): other locks
// keep their record where the API server cannot compare it with anything.
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

// currentTerm is the term we lead in, if our lock has one: the holder and
// transitions of the record we last wrote, which is the one that made us
// leader, and the UID of the object we wrote it to.
func (le *LeaderElector) currentTerm() (Term, bool) {
	lock, ok := le.config.Lock.(rl.TermLock)
	if !ok {
		return Term{}, false
	}
	namespace, name, uid := lock.TermObject()
	return Term{
		Namespace:   namespace,
		Lease:       name,
		Holder:      le.seen.record.HolderIdentity,
		Transitions: int32(le.seen.record.LeaderTransitions),
		UID:         uid,
	}, true
}

// withTerm gives ctx the term we lead in, if our lock has one.
func (le *LeaderElector) withTerm(ctx context.Context) context.Context {
	term, ok := le.currentTerm()
	if !ok {
		return ctx
	}
	return WithTerm(ctx, term)
}
