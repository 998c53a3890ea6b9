// Package crelection runs a controller-runtime manager's leader-election
// runnables (its controllers, and anything else that needs leader election)
// under the prioritized elector of package k8sleaderelection, in place of
// controller-runtime's own client-go elector.
//
// NewManager returns a manager.Manager to use as any other. Caches, webhook
// servers, the metrics and health servers, and runnables that report
// NeedLeaderElection false run on every replica, as usual. The runnables
// that need leader election start when this replica leads, with a context
// that ends when its term does, and Elected is closed then.
//
// # One term per manager
//
// A controller cannot be started twice, so a manager leads at most once.
// When its term ends, its runnables are cancelled and Start returns
// ErrLeadershipLost, as controller-runtime's manager returns an error when
// it loses its election: the process should exit, and a restarted process
// competes again as a standby.
//
// # Preemption
//
// A candidate whose key outranks ours asks for the lock; the elector then
// cancels the term, and the lock goes over to the candidate only once every
// runnable of the term has returned (waiting at most the election's
// StopTimeout). A controller returns once its workers have finished the
// reconciles in flight, so the two managers never reconcile at once. A
// candidate that cannot ask (client-go's elector, Istio's fork, or ours with
// DisableHandoff) steals the lock instead, and the two may overlap as the
// k8sleaderelection package documents.
//
// # Warm takeover
//
// A replica asks for the lock only once the Warmup of every runnable that
// has one has returned; the leader keeps working meanwhile. A controller
// with warmup enabled (controller.Options.EnableWarmup) starts its sources
// and waits for them to sync in Warmup, so a standby built that way takes
// over with its caches full and reconciles at once. Such a controller keeps
// its work queue on its Warmup's context, not on Start's, so that context
// ends with the term too: otherwise its workers would go on reconciling
// after the lock was handed over.
//
// # Fencing
//
// With the option WithFencing, every write of the chosen resources by the
// manager's client carries the manager's term (see package fence), and the
// API server, given fence's policy (ApplyFencePolicy installs it,
// CheckFencePolicy verifies it), refuses those of a manager that no longer
// leads: a reconcile that writes after another replica has taken over (a
// steal, a runnable that outlived StopTimeout, a write that landed late)
// fails instead of overwriting the new leader's work. A write that cannot
// be stamped is refused, never sent unfenced.
//
// # Failures and shutdown
//
// A runnable that fails during the term ends it: the others are cancelled
// and waited for, the elector stops leading (releasing the lock if the
// election's ReleaseOnCancel is set), and Start returns the runnable's
// error. When Start's context is done, the term ends the same way and Start
// returns nil; the lock is released after the runnables have returned if
// ReleaseOnCancel is set, and left to expire otherwise.
//
// Start returns only once the term is settled: its runnables have returned
// and the lock is released or left to expire, or the wait for a runnable
// that does not return has run out (StopTimeout after the elector gave up
// on it). controller-runtime's GracefulShutdownTimeout (30s by default)
// must therefore be at least StopTimeout plus RenewDeadline, or negative:
// NewManager rejects a shorter one, since the inner manager would stop its
// caches and servers under runnables that still run. A StopTimeout beyond
// about 73 years is taken as that ceiling, which waits as long as it takes
// all the same. A manager starts once: a second Start returns an error at
// once and leaves the first alone.
package crelection
