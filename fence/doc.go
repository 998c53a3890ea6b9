// Package fence makes the API server refuse the writes of a deposed leader.
//
// A leader that lost its Lease (preempted, cut off, paused) can still send
// writes, and requests it gave up on can land seconds later. A
// ValidatingAdmissionPolicy whose parameter is the Lease closes that hole:
// every write to the fenced resources carries the term it was made in (an
// annotation, TermAnnotation, holding the Lease's spec.leaseTransitions and
// holder as the leader saw them), and the API server refuses it unless the
// Lease still holds that term.
//
// The leader learns its term from OnStartedLeading's context
// (k8sleaderelection.TermFromContext); Stamp writes it into an object, and
// Transport stamps every create, update and patch of chosen resources made
// with that context. Policy builds the policy and binding for a namespace,
// and cmd/fence-policy prints them as YAML.
//
// Only Lease locks can be fenced: a ConfigMap's or an Endpoints' record is a
// JSON string in an annotation, which a policy cannot read.
package fence
