package crelection

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

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
	if election.Clock != nil && isNil(election.Clock) {
		// The manager waits on it too, not only the elector.
		problems = append(problems, fmt.Sprintf("election.Clock is a nil %T (leave it nil for the real clock)", election.Clock))
	}
	if election.StopTimeout < 0 {
		problems = append(problems, fmt.Sprintf("election.StopTimeout (%v) is negative: the lock would go to another manager before this one's controllers have stopped, and both would reconcile at once", election.StopTimeout))
	}
	return problems
}

// defaultGracePeriod is controller-runtime's GracefulShutdownTimeout when
// options leave it nil.
const defaultGracePeriod = 30 * time.Second

// maxStopTimeout is the longest StopTimeout the manager passes on, about 73
// years: a longer one waits as long as it takes all the same, and this one
// leaves the elector room to add its other timings (at most an hour each)
// without overflowing.
const maxStopTimeout = time.Duration(math.MaxInt64 / 4)

// stopTimeout is how long the elector waits for the term's runnables: its
// StopTimeout, or RenewDeadline when that is zero.
func stopTimeout(election *k8sleaderelection.LeaderElectionConfig) time.Duration {
	if election.StopTimeout == 0 {
		return election.RenewDeadline
	}
	return election.StopTimeout
}

// checkGracePeriod lists a grace period too short for the term to end in.
// On shutdown the elector waits up to StopTimeout for the runnables that
// need leader election and then takes up to RenewDeadline to release the
// lock; the inner manager stops its caches, webhooks and servers, and
// returns an error, once its grace period is over, whether or not that has
// happened. A negative grace period waits as long as it takes.
func checkGracePeriod(options *manager.Options, election *k8sleaderelection.LeaderElectionConfig) []string {
	grace := defaultGracePeriod
	if options.GracefulShutdownTimeout != nil {
		grace = *options.GracefulShutdownTimeout
	}
	stop := stopTimeout(election)
	if grace < 0 || stop < 0 || election.RenewDeadline <= 0 {
		// A negative StopTimeout, or an invalid RenewDeadline, is reported
		// on its own.
		return nil
	}
	if need := addDurations(stop, election.RenewDeadline); grace < need {
		return []string{fmt.Sprintf("options.GracefulShutdownTimeout (%v) is shorter than election.StopTimeout (%v) plus election.RenewDeadline (%v): "+
			"the manager would stop its caches and return while the runnables that need leader election still run or the lock is not yet released "+
			"(make it at least %v, or negative to wait as long as it takes)", grace, stop, election.RenewDeadline, need)}
	}
	return nil
}

// addDurations returns a+b for non-negative a and b, or the longest
// duration if the sum overflows.
func addDurations(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// isNil reports whether v is nil, or an interface holding a nil pointer,
// func, map, channel or slice: calling a method on it would panic.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
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
