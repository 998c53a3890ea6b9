package crelection

import (
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/k8sleaderelection/k8sleaderelection"
)

// checkOptions lists every manager option that belongs to
// controller-runtime's own leader election. With LeaderElection on, its
// elector would run beside ours and start the same controllers; the others
// it would silently ignore, and a user who set them (while moving from its
// election to ours) would not get what they asked for.
func checkOptions(options *manager.Options) []string {
	var problems []string
	bad := func(field, instead string) {
		problems = append(problems, "options."+field+" is set, but "+instead)
	}
	if options.LeaderElection {
		bad("LeaderElection", "controller-runtime's own elector would run beside this one (leave it false)")
	}
	if options.LeaderElectionResourceLockInterface != nil {
		bad("LeaderElectionResourceLockInterface", "the lock is election.Lock")
	}
	if options.LeaderElectionResourceLock != "" {
		bad("LeaderElectionResourceLock", "the lock is election.Lock")
	}
	if options.LeaderElectionNamespace != "" {
		bad("LeaderElectionNamespace", "the lock is election.Lock")
	}
	if options.LeaderElectionID != "" {
		bad("LeaderElectionID", "the lock is election.Lock")
	}
	if options.LeaderElectionConfig != nil {
		bad("LeaderElectionConfig", "the lock's client is election.Lock's")
	}
	if len(options.LeaderElectionLabels) > 0 {
		bad("LeaderElectionLabels", "the lock is election.Lock (k8sresourcelock.LeaseLock has Labels)")
	}
	if options.LeaderElectionReleaseOnCancel {
		bad("LeaderElectionReleaseOnCancel", "release is election.ReleaseOnCancel")
	}
	if options.LeaseDuration != nil {
		bad("LeaseDuration", "the lease is election.LeaseDuration")
	}
	if options.RenewDeadline != nil {
		bad("RenewDeadline", "the renew deadline is election.RenewDeadline")
	}
	if options.RetryPeriod != nil {
		bad("RetryPeriod", "the retry period is election.RetryPeriod")
	}
	return problems
}

// checkElection lists what the manager cannot take from the caller's
// election config: OnStartedLeading is the manager's, since it is what
// starts the runnables that need leader election.
func checkElection(election *k8sleaderelection.LeaderElectionConfig) []string {
	var problems []string
	if election.Callbacks.OnStartedLeading != nil {
		problems = append(problems, "election.Callbacks.OnStartedLeading is set, but the manager starts its runnables when it leads (leave it nil and Add a runnable instead)")
	}
	if election.StopTimeout < 0 {
		problems = append(problems, fmt.Sprintf("election.StopTimeout (%v) is negative: the lock would go to another manager before this one's controllers have stopped, and both would reconcile at once", election.StopTimeout))
	}
	return problems
}

// invalidInput is every problem NewManager found, on one line.
type invalidInput struct {
	problems []string
	// election is NewLeaderElector's error, if the config is invalid.
	election error
}

func (e *invalidInput) Error() string {
	all := e.problems
	if e.election != nil {
		all = append(all[:len(all):len(all)], "election: "+e.election.Error())
	}
	return "crelection: " + strings.Join(all, "; ")
}

func (e *invalidInput) Unwrap() error { return e.election }
