// Package fence makes the API server refuse the writes of a deposed leader.
//
// A leader that lost its Lease (preempted, cut off, paused) can still send
// writes, and requests it gave up on can land seconds later. A
// ValidatingAdmissionPolicy whose parameter is the Lease closes that hole:
// every write to the fenced resources carries the term it was made in (an
// annotation, TermAnnotation, holding the Lease's metadata.uid,
// spec.leaseTransitions and holder as the leader saw them:
// "<uid>/<leaseTransitions>/<holder>"), and the API server refuses it
// unless the Lease still holds that term. The UID keeps terms from ever
// repeating under one Lease name: a Lease deleted (by hand, by the garbage
// collector with its owner, by a restore from a backup) and created again
// starts at leaseTransitions 0 once more, perhaps naming the same holder,
// but under a new UID, so writes stamped in its earlier life stay refused.
//
// Upgrading from a version whose stamps had no UID
// ("<leaseTransitions>/<holder>"): the new policy refuses old-format stamps,
// and an old policy refuses new ones; neither is accepted "if it matches",
// because an old stamp cannot say which life of the Lease it was made in,
// and accepting it would let exactly the writes the UID exists to stop pass.
// So while leader and policy disagree, the leader's fenced writes fail (a
// 422 naming both terms; a controller retries them) and none go out
// unchecked. Apply the new policy (cmd/fence-policy) and roll the
// controller out together; writes succeed again once a leader of the new
// version holds the Lease under the new policy. Writes nobody stamped pass
// as before under StampedOnly.
//
// The leader learns its term from OnStartedLeading's context
// (k8sleaderelection.TermFromContext); Stamp writes it into an object, and
// a client made with Config stamps every create, update and patch of chosen
// resources made with that context, failing a write it cannot fence (see
// WrapTransport). A client made with ConfigForTerm takes the term from a
// function instead, so that a controller that knows its one term (a
// controller-runtime manager: crelection.WithFencing) stamps every write of
// the fenced resources, whatever its context, and refuses one made before
// any term. Policy builds the policy and binding for the Lease's
// namespace, and cmd/fence-policy prints them as YAML.
//
// Only Lease locks can be fenced: a ConfigMap's or an Endpoints' record is a
// JSON string in an annotation, which a policy cannot read.
package fence
