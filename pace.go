package k8sleaderelection

import (
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
)

// The renewal pace.
//
// Every renewal is a write to etcd. A leader renews for two reasons: to keep
// its lease running in the eyes of the other candidates, and, when it does
// not watch its lock, to find out whether someone took the lock from it (its
// renewal then fails, or reads the thief's record). A leader that watches
// its lock learns of a steal, a release, a handoff request or a deletion from
// its watch the moment it happens, so only the first reason is left, and the
// lease is measured in LeaseDurations, not RetryPeriods. So a watching leader
// renews every renewPeriod, a few times per lease, and only after a failed
// renewal, while it has no watch (the watch broke, and is being started
// again), or while its watch has not shown its last renewal back (it may
// have died without a word), does it try every RetryPeriod, as a polling
// leader always does.
//
// The longest period the timings allow, maxRenewPeriod, is the shortest of:
//
//   - LeaseDuration/3: the lease clock of every follower restarts at least
//     three times per lease, as node heartbeats (10s of a 40s lease) do.
//   - RenewDeadline/2: a renewal due at this period has at least half of
//     RenewDeadline left before the leader must stop (within RenewDeadline
//     of its last successful renewal, as it always did). That is room for a
//     retry only because no attempt may take all of it: a request that
//     hangs until the client's timeout (RenewDeadline/2 from
//     NewFromKubeconfig, all that is left at this period) would otherwise
//     end the term with no retry. So each attempt is cut off RetryPeriod
//     before the deadline (see attemptLimit), and a failed one is retried
//     RetryPeriod after it began, at once if it took longer: at 15s/10s/2s
//     the renewal due at 5s hangs until 8s and is retried at 8s.
//   - LeaseDuration - (2+JitterFactor)*RetryPeriod: a follower that polls
//     (client-go's elector, Istio's fork, ours with DisableWatch) sees a
//     renewal up to (1+JitterFactor)*RetryPeriod after it was written, and
//     its lease runs from when it saw the last change. A renewal that fails
//     and succeeds at its first retry, RetryPeriod later, must still be seen
//     before that lease runs out, or the follower would take the lock from a
//     live leader.
//
// and never less than RetryPeriod: where the timings leave no room, the pace
// is today's. At the core components' 15s/10s/2s that is 5s, 0.2 writes a
// second instead of 0.5; a polling follower then has 15s - (5s + 4.4s) of
// margin before it would see the lease expire.
//
// The safety promises do not depend on the pace: a leader stops within
// RenewDeadline of its last successful renewal, and every follower waits a
// whole LeaseDuration, which is longer, from when it last saw the lock change.

// maxRenewPeriod is the longest renewal period the timings allow a watching
// leader (see above). The timings must be valid.
func maxRenewPeriod(lease, renew, retry time.Duration) time.Duration {
	pollLag := durations.Scale(retry, 1+JitterFactor)
	period := min(lease/3, renew/2, durations.Add(lease, -pollLag, -retry))
	return max(period, retry)
}

// renewPeriod is how often a leader whose watch runs renews while its
// renewals succeed: RenewPeriod, or the longest the timings allow.
func (le *LeaderElector) renewPeriod() time.Duration {
	if le.config.RenewPeriod > 0 {
		return le.config.RenewPeriod
	}
	return maxRenewPeriod(le.config.LeaseDuration, le.config.RenewDeadline, le.config.RetryPeriod)
}

// renewPace is the wait from one renewal attempt, made at lastTry, to the
// next: RetryPeriod after a failed one, or one the watch has not shown
// back (retry; see watcher.echoed), while no watch would tell us that the
// lock changed hands, until a renewal has been made since the watch
// started (a clientset that does not replay what a watch missed, as
// client-go's stock fake, shows nothing written between our last write and
// the watch's start: that renewal does), and while our work winds down before a handoff or a release (the
// renewals then carry the request we answer, at the pace the handoff
// protocol was timed by; it lasts at most StopTimeout); renewPeriod
// otherwise.
func (le *LeaderElector) renewPace(retry bool, lastTry time.Time) time.Duration {
	if retry || !le.watch.watchingSince(lastTry) || le.handoff.windingDown() {
		return le.config.RetryPeriod
	}
	return le.renewPeriod()
}

// attemptLimit is how long a renewal attempt made left before the renew
// deadline may take: left less retry, so that a retry still fits after
// it, but never less than retry, since a failed attempt is retried retry
// after it began (at once, if it took longer) and cutting it any sooner
// would only take time from it, not give any to the retry; and never more
// than left. The one request it cuts off is a hung one, as a stalled API
// server leaves until the client's timeout (RenewDeadline/2 from
// NewFromKubeconfig): waited out, it would take the rest of a paced
// leader's time.
func attemptLimit(left, retry time.Duration) time.Duration {
	return min(max(durations.Add(left, -retry), retry), left)
}
