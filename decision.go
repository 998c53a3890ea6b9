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
	// verdictTakeExpired: another holder, known or not, let its lease run
	// out; take it.
	verdictTakeExpired
	// verdictPreempt: another holder's lease is running, but our key
	// outranks its key; take the lock now.
	verdictPreempt
	// verdictRenew: the lock names us; write it again to extend our lease.
	verdictRenew
	// verdictStepDown: we were leading, and the lock no longer names us:
	// it changed hands since our last write. Stop at once.
	verdictStepDown
	// verdictRequestHandoff: our key outranks the holder's, and the holder
	// offers to hand the lock over; ask it to, and wait.
	verdictRequestHandoff
	// verdictHandOver: we lead, and a candidate that outranks us asked for
	// the lock: stop our work, then write the lock over to it. In a
	// coordinated election: the control plane ended our term; stop our
	// work, then release the lock for the holder it prefers.
	verdictHandOver
	// verdictNewTerm: the lock names us from before this term, and it
	// carries a term (it can be fenced): write it again, starting a new
	// term with a number of its own.
	verdictNewTerm
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
	case verdictRequestHandoff:
		return "request handoff"
	case verdictHandOver:
		return "hand over"
	case verdictNewTerm:
		return "renew in a new term"
	}
	return "unknown"
}

// writes reports whether the verdict is carried out by writing the lock
// with us as its holder.
func (v verdict) writes() bool {
	return v != verdictWait && v != verdictStepDown && v != verdictRequestHandoff && v != verdictHandOver
}

// writesLock reports whether carrying out the verdict writes the lock at
// all: with us as its holder, or with a request to its holder.
func (v verdict) writesLock() bool {
	return v.writes() || v == verdictRequestHandoff
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
	// ours: the record names us as its holder.
	ours bool
	// free: the record names no holder; the last one released it.
	free bool
	// leading: we lead now (between acquiring and losing).
	leading bool
	// expired: the lock has not changed for the holder's lease duration by
	// our clock. For a record nobody can read, our own LeaseDuration.
	expired bool
	// outranks: KeyComparison says our key outranks the holder's (and the
	// key of any other candidate whose handoff request is pending), and we
	// are ready to lead. Only asked when rankMatters, and never for a
	// holder whose key is unknown or equal to ours.
	outranks bool
	// asked: a handoff request of ours to this holder is pending, and the
	// holder's time to answer it has not run out.
	asked bool
	// mayAsk: the holder offers handoffs, we use them, and we have not
	// already waited one out from this holder.
	mayAsk bool
	// handoffAsked: the lock names us, and a candidate asked us to hand
	// it over. A leader stops its work first; a candidate that holds the
	// lock without leading (it restarted, or gave up waiting for work that
	// would not stop) has none to stop.
	handoffAsked bool
	// coordinated: the control plane picks the holder (Coordinated); we
	// never create, take or preempt the lock, only renew it while it
	// names us.
	coordinated bool
	// endOfTerm: in a coordinated election, the lock names us and the
	// control plane prefers another holder.
	endOfTerm bool
	// termed: the lock carries a term (k8sresourcelock.TermLock), which
	// writes can be fenced with.
	termed bool
	// handedToUs: the lock names us because the holder we asked handed it
	// over, which started our term already.
	handedToUs bool
	// nominated: an operator asked the holder to hand the lock to us, and
	// we are ready to lead: we ask for it whatever our key.
	nominated bool
	// excluded: we stepped down at an operator's request and stay out of
	// the election for now, whatever our key.
	excluded bool
}

// rankMatters reports whether the holder's rank can change the verdict, so
// that KeyComparison, which is user code, is only called when it counts.
func (s situation) rankMatters() bool {
	return s.exists && !s.leading && !s.ours && !s.free && !s.expired && !s.coordinated
}

// renewal is the verdict for a lock that names us and that nobody asked us
// to hand over. A leader renews it, keeping its term. One that finds it
// naming us from before this term (it restarted, lost its last term to
// failed renewals, or the control plane gave it the lock) starts a new
// term, with a number of its own, so that writes stamped in the last term
// (by a process of ours that may still run) are not taken for this one's
// (see package fence); unless the holder it asked handed the lock over,
// which started its term already. A lock without terms, which cannot be
// fenced, keeps its term, as a leader that restarts mid-migration does.
func renewal(s situation) verdict {
	if s.termed && !s.leading && !s.handedToUs {
		return verdictNewTerm
	}
	return verdictRenew
}

// decide is the election rule.
//
// A leader keeps leading only while the lock names it. If it finds anything
// else (another holder, no holder, a record it cannot read, no lock at all),
// the lock has changed since its last write and it can no longer prove that
// nobody else leads: it steps down. A holder that was asked to hand over
// does so. A candidate that stepped down at an operator's request waits
// until its time out has run, unless the lock names it and another
// candidate asks for it. A candidate creates an absent lock, and takes one
// that names it, names nobody, or has expired. One whose key outranks the holder's asks a
// holder that offers handoffs to hand over, and waits for it for as long as
// the holder said it might take; it takes the lock from any other holder at
// once. One an operator named asks for the lock whatever its key, but never
// takes it. Otherwise it waits.
func decide(s situation) verdict {
	switch {
	case s.leading && !s.ours:
		return verdictStepDown
	case s.coordinated:
		return decideCoordinated(s)
	case s.excluded && !s.leading && !(s.ours && s.handoffAsked):
		// Even a lock that still names us (our handover or release
		// failed) is left to run out, unless a candidate asks for it.
		return verdictWait
	case !s.exists:
		return verdictCreate
	case s.ours && s.handoffAsked:
		return verdictHandOver
	case s.ours:
		return renewal(s)
	case s.free:
		return verdictTakeFree
	case s.expired:
		return verdictTakeExpired
	case s.nominated && s.mayAsk && !s.asked:
		return verdictRequestHandoff
	case !s.outranks, s.asked:
		return verdictWait
	case s.mayAsk:
		return verdictRequestHandoff
	default:
		return verdictPreempt
	}
}
