package k8sleaderelection

// verdict is what one look at the lock tells a candidate to do.
type verdict int

const (
	// verdictCreate: there is no lock object; create it holding us.
	verdictCreate verdict = iota
	// verdictWait: another holder's lease is running and our key does not
	// outrank it; try again later.
	verdictWait
	// verdictTakeFree: the lock was released (no holder); take it.
	verdictTakeFree
	// verdictTakeExpired: another holder let its lease run out; take it.
	verdictTakeExpired
	// verdictPreempt: another holder's lease is running, but our key
	// outranks its key; take the lock now.
	verdictPreempt
	// verdictRenew: we hold the lock; write it again to extend our lease.
	verdictRenew
	// verdictStepDown: we were leading, and the lock now names someone
	// else: we were preempted (or lost it while cut off). Stop at once.
	verdictStepDown
)

func (v verdict) String() string {
	switch v {
	case verdictCreate:
		return "create"
	case verdictWait:
		return "wait"
	case verdictTakeFree:
		return "take free lock"
	case verdictTakeExpired:
		return "take expired lock"
	case verdictPreempt:
		return "preempt"
	case verdictRenew:
		return "renew"
	case verdictStepDown:
		return "step down"
	}
	return "unknown"
}

// writes reports whether the verdict is carried out by writing the lock
// with us as its holder.
func (v verdict) writes() bool {
	return v != verdictWait && v != verdictStepDown
}

// changesHands reports whether carrying out the verdict makes us the new
// holder, so that LeaderTransitions goes up by one.
func (v verdict) changesHands() bool {
	return v == verdictTakeFree || v == verdictTakeExpired || v == verdictPreempt
}

// situation is everything the election rule looks at, as plain values.
type situation struct {
	// exists is false when the lock object is absent.
	exists bool
	// holder is the identity the lock names; empty when it is free.
	holder string
	// self is our identity.
	self string
	// leading is true while we lead (between acquiring and losing).
	leading bool
	// expired is true when the holder's lease ran out by our clock: it has
	// not changed the record for its lease duration.
	expired bool
	// invalid is true when the record cannot be decoded; holder is then
	// UnknownLeader.
	invalid bool
	// outranks asks KeyComparison whether our key outranks the holder's.
	// It is only asked when the answer matters, because it is user code.
	outranks func() bool
}

// decide is the election rule. A leader that finds another holder steps
// down, whatever that holder's lease or key: it has been preempted, and
// leading on beside the new holder is the one outcome to avoid. A leader
// that finds an undecodable record renews over it: no one can have taken the
// lock with a record no one can read. A candidate takes a lock that is
// absent, free, expired or held by someone its key outranks, and otherwise
// waits.
func decide(s situation) verdict {
	switch {
	case !s.exists:
		return verdictCreate
	case s.holder == s.self, s.leading && s.invalid:
		return verdictRenew
	case s.holder == "":
		return verdictTakeFree
	case s.leading:
		return verdictStepDown
	case s.expired:
		return verdictTakeExpired
	case s.outranks():
		return verdictPreempt
	default:
		return verdictWait
	}
}
