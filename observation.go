package k8sleaderelection

import (
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// MaxLeaseDuration is the longest lease an elector honours or takes. A
// LeaseDuration above it is rejected by NewLeaderElector, and a holder whose
// record asks for more is treated like one whose duration is zero, negative
// or unreadable: its lease lasts our own LeaseDuration. So a dead holder that
// wrote an absurd duration delays the election by one LeaseDuration, not by
// years.
const MaxLeaseDuration = time.Hour

// observation is what a candidate knows of its lock: the last state of it
// that it saw, and when, by the local clock, it first saw that state.
//
// Every change of state counts as a sign of life of the holder, whether the
// record in it can be read or not: a record nobody can decode may hide a
// renewal by a live leader, and a change we cannot tell apart from a renewal
// must restart the lease. So a lock keeps being held for as long as anything
// keeps writing it, and is taken only after a whole lease without a change.
type observation struct {
	// version tells states apart: the lock's resourceVersion when it has
	// one (it changes on every write), else the bytes of its record.
	version string
	// since is the local time we first saw this state; for a state we
	// wrote, when our write started.
	since time.Time
	// known is false until the first read or write.
	known bool
	// absent: the lock object does not exist.
	absent bool
	// unreadable: the record could not be decoded, so its holder, key and
	// lease are unknown.
	unreadable bool
	// record is the decoded record; zero when absent or unreadable.
	record rl.LeaderElectionRecord
	// written: this state is the one our last write produced.
	written bool
}

// sawRecord notes a read that returned record. The time restarts only if the
// state differs from the one last seen.
func (o *observation) sawRecord(version string, record rl.LeaderElectionRecord, now time.Time) {
	o.see(observation{version: version, record: record}, now)
}

// sawUnreadable notes a read of a record that could not be decoded.
func (o *observation) sawUnreadable(version string, now time.Time) {
	o.see(observation{version: version, unreadable: true}, now)
}

// sawAbsent notes a read that found no lock object.
func (o *observation) sawAbsent(now time.Time) {
	o.see(observation{absent: true}, now)
}

func (o *observation) see(next observation, now time.Time) {
	if o.known && o.absent == next.absent && o.unreadable == next.unreadable && o.version == next.version {
		return
	}
	next.known, next.since = true, now
	*o = next
}

// wrote notes that our write of record, started at start, succeeded and left
// the lock at version. version may be empty when the lock cannot tell it; a
// read that follows then counts as a change, which is true.
func (o *observation) wrote(version string, record rl.LeaderElectionRecord, start time.Time) {
	*o = observation{version: version, since: start, known: true, record: record, written: true}
}

// holder is the identity the lock names, "" if none, and UnknownLeader when
// it cannot be read.
func (o *observation) holder() string {
	if o.unreadable {
		return rl.UnknownLeader
	}
	return o.record.HolderIdentity
}

// names reports whether the lock names identity as its holder.
func (o *observation) names(identity string) bool {
	return o.known && !o.absent && !o.unreadable && o.record.HolderIdentity == identity
}

// free reports whether the lock exists and names no holder.
func (o *observation) free() bool {
	return o.names("")
}

// rankableKey returns the holder's key when it can be ranked against ours:
// the record is readable, names a holder that is not UnknownLeader (a
// MultiLock whose halves disagree), and the key differs from ours. Equal keys
// never preempt, whatever KeyComparison says.
func (o *observation) rankableKey(ours string) (string, bool) {
	holder := o.holder()
	if !o.known || o.absent || o.unreadable || holder == "" || holder == rl.UnknownLeader || o.record.HolderKey == ours {
		return "", false
	}
	return o.record.HolderKey, true
}

// lease is how long the holder may go without changing the lock. A duration
// that is unreadable, not positive, or above MaxLeaseDuration is nobody's
// real lease: fallback (our own LeaseDuration) stands in for it.
func (o *observation) lease(fallback time.Duration) time.Duration {
	secs := o.record.LeaseDurationSeconds
	if o.unreadable || secs < 1 || secs > int(MaxLeaseDuration/time.Second) {
		return fallback
	}
	return time.Duration(secs) * time.Second
}

// expired reports whether the lease ran out at now: the state has not
// changed for a whole lease since we first saw it.
func (o *observation) expired(now time.Time, fallback time.Duration) bool {
	return !now.Before(o.since.Add(o.lease(fallback)))
}

// heldBy reports whether a renewal may write over the last state we know
// without reading it first: it is our own write naming identity, its lease
// is still running, and it has a resourceVersion, so that the write is
// conditional and the API server refuses it if anyone wrote in between.
// Without one (a lock that cannot tell it, or a clientset that does not
// version objects, as client-go's stock fake) an update is unconditional and
// would overwrite a new holder unseen, so the leader reads first.
func (o *observation) heldBy(identity string, now time.Time, fallback time.Duration) bool {
	return o.written && o.version != "" && o.names(identity) && !o.expired(now, fallback)
}
