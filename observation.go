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
	// rv is the lock's resourceVersion in this state, "" if it has none.
	rv string
	// raw is the record's bytes as a read returns them, with its handoff
	// annotations; rawKnown is false for a state we wrote, whose bytes we
	// have not read back.
	raw      string
	rawKnown bool
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
	// wiped: the lock lost its holder without a release (its record was
	// wiped, or the object deleted) while the holder's lease still ran; it
	// stays held, by nobody we know, for one more lease.
	wiped bool

	// The fields below describe the lock across states.

	// rvUseless: the resourceVersion was seen to stay the same across a
	// change (a clientset that keeps whatever version it was given, as
	// client-go's stock fake does): only the bytes tell states apart, and
	// no write over a state is conditional.
	rvUseless bool
	// lastLease is the lease of the last readable record whose duration
	// was one anyone can mean: when a record gives no usable duration, the
	// longer of it and ours stands in, so that a holder with a longer lease
	// than ours is not cut short.
	lastLease time.Duration
	// ours is our own LeaseDuration.
	ours time.Duration
}

// sawRecord notes a read that returned record, with the lock's
// resourceVersion and the record's bytes. The time restarts only if the
// state differs from the one last seen.
func (o *observation) sawRecord(rv, raw string, record rl.LeaderElectionRecord, now time.Time) {
	o.see(observation{rv: rv, raw: raw, rawKnown: true, record: record}, now)
}

// sawUnreadable notes a read of a record that could not be decoded.
func (o *observation) sawUnreadable(rv, raw string, now time.Time) {
	o.see(observation{rv: rv, raw: raw, rawKnown: true, unreadable: true}, now)
}

// sawAbsent notes a read that found no lock object.
func (o *observation) sawAbsent(now time.Time) {
	o.see(observation{absent: true, rawKnown: true}, now)
}

func (o *observation) see(next observation, now time.Time) {
	if o.known && o.absent == next.absent && o.unreadable == next.unreadable {
		sameRV := o.rv == next.rv
		if o.rawKnown && o.raw != next.raw && sameRV && o.rv != "" {
			o.rvUseless = true
		}
		same := sameRV && o.raw == next.raw
		if !o.rawKnown {
			// A state we wrote: only a trustworthy resourceVersion
			// tells whether this is it.
			same = sameRV && o.versioned()
		}
		if same {
			o.raw, o.rawKnown = next.raw, true
			return
		}
	}
	next.wiped = o.wipedBy(next, now)
	next.rvUseless, next.lastLease, next.ours = o.rvUseless, o.lastLease, o.ours
	if secs := next.record.LeaseDurationSeconds; !next.absent && !next.unreadable && saneLease(secs) {
		next.lastLease = time.Duration(secs) * time.Second
	}
	next.known, next.since = true, now
	*o = next
}

// wipedBy reports whether next loses the holder o names without a release
// (a release names no holder with a lease of at least a second), while the
// holder's lease still runs at now.
func (o *observation) wipedBy(next observation, now time.Time) bool {
	emptied := next.absent || !next.unreadable && next.record.HolderIdentity == "" && next.record.LeaseDurationSeconds < 1
	held := o.known && !o.absent && (o.unreadable || o.record.HolderIdentity != "" || o.wiped)
	return emptied && held && !o.expired(now)
}

// wrote notes that our write of record, started at start, succeeded and left
// the lock at resourceVersion rv; before is the resourceVersion it wrote
// over. A write that leaves the version as it was shows that the clientset
// does not version objects.
func (o *observation) wrote(rv, before string, record rl.LeaderElectionRecord, start time.Time) {
	useless := o.rvUseless || before != "" && rv == before
	lastLease := o.lastLease
	if saneLease(record.LeaseDurationSeconds) {
		lastLease = time.Duration(record.LeaseDurationSeconds) * time.Second
	}
	*o = observation{rv: rv, since: start, known: true, record: record, written: true, rvUseless: useless, lastLease: lastLease, ours: o.ours}
}

// saneLease reports whether seconds is a lease duration anyone can mean.
func saneLease(seconds int) bool {
	return seconds >= 1 && seconds <= int(MaxLeaseDuration/time.Second)
}

// holder is the identity the lock names, "" if none, and UnknownLeader when
// it cannot be read.
func (o *observation) holder() string {
	if o.unreadable {
		return rl.UnknownLeader
	}
	return o.record.HolderIdentity
}

// runningHolder is the holder whose lease runs at now, and since when by our
// clock: when we first saw this state. It is "" when nobody's lease runs:
// the lock is absent, released, unreadable, or names UnknownLeader (since we
// saw that), or its holder's lease ran out (since the instant it did).
func (o *observation) runningHolder(now time.Time) (string, time.Time) {
	holder := o.holder()
	if holder == "" || holder == rl.UnknownLeader {
		return "", o.since
	}
	if end := o.since.Add(o.lease()); !now.Before(end) {
		return "", end
	}
	return holder, o.since
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
// real lease: the longer of our own LeaseDuration and the last real lease we
// saw stands in for it.
func (o *observation) lease() time.Duration {
	secs := o.record.LeaseDurationSeconds
	if o.unreadable || o.absent || !saneLease(secs) {
		return max(o.ours, o.lastLease)
	}
	return time.Duration(secs) * time.Second
}

// expired reports whether the lease ran out at now: the state has not
// changed for a whole lease since we first saw it.
func (o *observation) expired(now time.Time) bool {
	return !now.Before(o.since.Add(o.lease()))
}

// versioned reports whether the state last seen has a resourceVersion that
// the clientset keeps up to date, so that a write over it is conditional.
func (o *observation) versioned() bool {
	return o.rv != "" && !o.rvUseless
}

// heldBy reports whether a renewal may write over the last state we know
// without reading it first: it is our own write naming identity, its lease
// is still running, and it has a resourceVersion, so that the write is
// conditional and the API server refuses it if anyone wrote in between.
// Without one (a lock that cannot tell it, or a clientset that does not
// version objects, as client-go's stock fake) an update is unconditional and
// would overwrite a new holder unseen, so the leader reads first.
func (o *observation) heldBy(identity string, now time.Time) bool {
	return o.written && o.versioned() && o.names(identity) && !o.expired(now)
}
