package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Coordinated election (LeaderElectionConfig.Coordinated, Kubernetes'
// CoordinatedLeaderElection): the control plane writes the holder it picks
// among the LeaseCandidates (NewCandidate) into the Lease. The elector never
// creates, takes or preempts the lock and makes no handoff offer (see
// offer); it leads while the Lease names it, renewing it, and when the
// control plane prefers another holder it stops its work, renewing
// meanwhile, then releases the Lease for that holder. A Lease deleted
// mid-term ends our term without waiting for our work (decide steps down):
// the Lease is not ours to create, so nothing holds the control plane's next
// pick off while our work stops, and only a fence keeps that work's writes
// out (the new Lease has a new UID). A candidate reads the Lease again each
// time a watch of it opens: it writes nothing before it leads, so a change
// between its last read and the watch's start, which a watch need not show
// (client-go's stock fake replays nothing), would otherwise go unseen for
// good.

// validateCoordinated reports what a coordinated election cannot work with.
// The control plane picks the leader among LeaseCandidates, so nothing of
// ours may rank candidates, and the lock must be the Lease the control plane
// writes.
func validateCoordinated(lec *LeaderElectionConfig) []error {
	if !lec.Coordinated {
		return nil
	}
	var errs []error
	if lec.KeyComparison != nil {
		errs = append(errs, errors.New("KeyComparison must be nil when Coordinated is set: the control plane picks the leader"))
	}
	if _, ok := lec.Lock.(*rl.LeaseLock); lec.Lock != nil && !ok {
		errs = append(errs, fmt.Errorf("Coordinated needs a Lease lock (*k8sresourcelock.LeaseLock), not %T: the control plane elects through a Lease", lec.Lock))
	}
	return errs
}

// decideCoordinated is the rule of a coordinated election, where the
// control plane writes the holder into the lock. A candidate leads while the
// lock names it, even if its lease ran out: the control plane keeps an
// expired Lease on the holder it still prefers without writing it again, so
// waiting would wait for good, and if it gives the Lease to another at the
// same moment, one of the two writes conflicts. When the control plane
// prefers another holder, we stop our work and release. Anything else is
// the control plane's to change: we wait.
func decideCoordinated(s situation) verdict {
	switch {
	case s.ours && s.endOfTerm:
		return verdictHandOver
	case s.ours:
		return renewal(s)
	default:
		return verdictWait
	}
}

// endMark is the control plane's mark on a term of ours: the holder it
// prefers, and the term (the lock's transitions) it marked.
type endMark struct {
	preferred   string
	transitions int
}

// noteEndMark remembers the end of our term in any state of the lock that
// shows it. The control plane never takes its mark back while the Lease
// names the holder it marked, so once seen the term is over, even if the
// state we judge by lacks the mark: on a clientset that does not check
// resourceVersions (client-go's stock fake) a renewal that read the Lease
// just before the mark writes it away, and only the watch's earlier event
// still shows it. The mark lasts the Run it was seen in (see forgetEndMark).
func (le *LeaderElector) noteEndMark() {
	id := le.config.Lock.Identity()
	if preferred := le.seen.record.PreferredHolder; le.config.Coordinated && le.seen.names(id) && preferred != "" && preferred != id {
		le.endMark = endMark{preferred: preferred, transitions: le.seen.record.LeaderTransitions}
	}
}

// forgetEndMark forgets the mark of a term of ours once that term is over:
// at the start of each Run, since the last one either released the Lease
// or left it to expire. The control plane may give an expired Lease to
// another and then back to us, clearing its mark but keeping the Lease's
// transitions (kube-apiserver's controller never changes them), while we
// do not look (we were not running, or our last term's work was still
// stopping): the transitions alone would take that new term for the
// marked one and end it at once.
func (le *LeaderElector) forgetEndMark() { le.endMark = endMark{} }

// preferredHolder is the holder the control plane prefers to us in the
// term the lock shows, or "" if it has not ended that term.
func (le *LeaderElector) preferredHolder() string {
	id := le.config.Lock.Identity()
	if preferred := le.seen.record.PreferredHolder; preferred != "" && preferred != id {
		return preferred
	}
	if le.seen.names(id) && le.endMark.transitions == le.seen.record.LeaderTransitions {
		return le.endMark.preferred
	}
	return ""
}

// endOfTerm reports whether the control plane ended our term: the Lease,
// which names us, prefers another holder. While our work stops we keep
// renewing; the end of term is already being answered then.
func (le *LeaderElector) endOfTerm() bool {
	return le.preferredHolder() != "" && !le.handoff.windingDown()
}

// keepControlPlaneFields copies into r, a record of ours, the fields that
// are the control plane's: written away, the strategy would be written
// back, and the preferred holder is the end of our term, which our renewals
// while our work stops must not undo (nor one that wrote it away unseen).
func (le *LeaderElector) keepControlPlaneFields(r *rl.LeaderElectionRecord) {
	r.Strategy, r.PreferredHolder = le.seen.record.Strategy, le.seen.record.PreferredHolder
	if r.PreferredHolder == "" && le.seen.names(le.config.Lock.Identity()) {
		r.PreferredHolder = le.preferredHolder()
	}
}

// termEndedByControlPlane is the end of a term the control plane ended by
// preferring another holder.
func (le *LeaderElector) termEndedByControlPlane(logger klog.Logger) ending {
	preferred := le.preferredHolder()
	logger.Info("The control plane ended our term; stopping our work, then releasing the lease", "preferredHolder", preferred)
	return ending{why: "the control plane prefers " + preferred, handOver: true}
}

// releaseToPreferred gives the lock up at the end of a term the control
// plane ended, once our work has stopped: the control plane gives it to the
// holder it prefers once nobody holds it. It gives up when ctx ends.
func (le *LeaderElector) releaseToPreferred(ctx context.Context, logger klog.Logger) {
	le.releaseWithin(ctx, logger)
}

// endCoordinatedTerm makes released, the record that releases a Lease of a
// coordinated election, end our term. The control plane gives a released
// Lease to its pick by naming it and nothing else: were it us again, the
// Lease would read as our ended term until we renewed. Our term is over,
// so its number goes.
func endCoordinatedTerm(released *rl.LeaderElectionRecord) {
	released.LeaderTransitions++
}

// tellNoLease says, once, why a coordinated candidate waits for a Lease
// that does not exist: only the control plane creates it, and only where
// coordinated leader election is switched on.
func (le *LeaderElector) tellNoLease(logger klog.Logger) {
	if !le.config.Coordinated || !le.seen.absent || le.toldNoLease {
		return
	}
	le.toldNoLease = true
	logger.Error(nil, "Coordinated election: the Lease does not exist, and only the control plane creates it. Waiting for it; it needs kube-apiserver with the CoordinatedLeaderElection feature gate on, coordination.k8s.io/v1beta1 served (--runtime-config), and a LeaseCandidate (NewCandidate) naming this Lease",
		"lock", le.config.Lock.Describe())
}
