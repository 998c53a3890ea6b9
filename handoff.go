package k8sleaderelection

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// The handoff protocol. A holder that offers handoffs writes an offer into
// the lock with each renewal. A candidate whose key outranks the holder's
// writes a request into the lock instead of taking it, and waits as long as
// the offer says. The holder stops its work, then writes the lock over to
// the requester. A requester that outranks a pending one replaces its
// request; one that stops campaigning withdraws its own. On a clientset
// that accepts stale writes (client-go's stock fake) a holder's renewal can
// put a just-withdrawn request back; a watching holder sees the withdrawal
// before its own write and honours it, a polling one cannot (the exception
// the package doc states).
//
// An operator steps a holder down through the same protocol (kubectl
// election step-down and handoff write a StepDownRequest into the lock). A
// request that names no candidate is answered like a handoff request: the
// holder stops its work, then hands the lock to the candidate whose request
// is pending, or releases it if none is, so that the others take it at once.
// A request that names a candidate makes that candidate ask for the lock,
// whatever its key, and the holder answers its request as any other. Either
// way the holder then stays out of the election for the time asked, so that
// its key, however high, does not take the lock straight back. A request
// lapses with the holder's term and at its expiry, by the holder's clock.
//
// handoff holds one candidate's state in that protocol, on both sides, and
// the rules that read it; the elector's methods below do the reads and
// writes it calls for.
type handoff struct {
	// me is our identity, and off is DisableHandoff: we neither ask nor
	// answer.
	me  string
	off bool

	// asked is the handoff we asked a holder for, as a requester.
	asked handoffAsk

	// honoring is the request we are carrying out, as a holder; stopping
	// is set while our work stops before a handoff or a release, when a
	// request (or the control plane's end of our term) is already being
	// answered.
	honoring rl.HandoffRequest
	stopping bool
	// handing is set from the moment we take up a request until our term
	// ends: every state of the lock seen meanwhile that another candidate
	// wrote updates honoring (see follow).
	handing bool
	// leaving is the operator's step-down request we carry out, as a
	// holder, and outUntil is when we may compete again after it.
	leaving  rl.StepDownRequest
	outUntil time.Time

	// wrote is the record our last successful write left in the lock. A
	// clientset that accepts stale writes (client-go's stock fake) gives no
	// resourceVersion to tell our own state from another's, so its content
	// does. away is set once a read showed the lock in another state since
	// that write, so that the same content read again was put back by
	// someone else (a requester withdrawing a request it wrote over that
	// state). echo is the watch (see watcher.generation) that will deliver
	// that write's own event, until it has: one that was running when we
	// wrote; 0 when none will (a watch started after the write delivers
	// only later states, or the state as it is then).
	wrote rl.LeaderElectionRecord
	away  bool
	echo  int
}

// handoffAsk is a handoff this candidate asked a holder for: the holder and
// its term, and until when the holder may take to answer.
type handoffAsk struct {
	to       string
	term     int
	deadline time.Time
}

// pending reports whether we have asked anyone.
func (a handoffAsk) pending() bool { return a.to != "" }

// of reports whether a was asked of the holder of record, in its term.
func (a handoffAsk) of(record *rl.LeaderElectionRecord) bool {
	return a.to != "" && a.to == record.HolderIdentity && a.term == record.LeaderTransitions
}

// requestPending reports whether the record's request asks its holder to
// hand over now: it names a requester, and the holder and term of the
// record. A request lapses once the lock changes hands, or the same holder
// starts a new term.
func requestPending(record *rl.LeaderElectionRecord) bool {
	r := record.HandoffRequest
	return r.HolderIdentity != "" && r.To == record.HolderIdentity && r.Term == record.LeaderTransitions
}

// offerStands reports whether the record's offer was made by its holder: an
// elector that knows nothing of handoffs leaves the offer of the holder
// before it in place when it takes the lock.
func offerStands(record *rl.LeaderElectionRecord) bool {
	o := record.Handoff
	return o.Holder != "" && o.Holder == record.HolderIdentity
}

// PendingHandoff returns the handoff request the record carries, and
// whether it is pending by the elector's rule: it asks the record's holder,
// in the record's term. Tools that show an election (kubectl election, a
// test fake, a demo) read a record as the elector does through it, rather
// than by a rule of their own.
func PendingHandoff(record *rl.LeaderElectionRecord) (rl.HandoffRequest, bool) {
	if record == nil || !requestPending(record) {
		return rl.HandoffRequest{}, false
	}
	return record.HandoffRequest, true
}

// StandingOffer returns the handoff offer the record carries, and whether
// it stands by the elector's rule: the holder made it, so a candidate that
// outranks the holder asks for the lock instead of taking it.
func StandingOffer(record *rl.LeaderElectionRecord) (rl.HandoffOffer, bool) {
	if record == nil || !offerStands(record) {
		return rl.HandoffOffer{}, false
	}
	return record.Handoff, true
}

// MaxStepDownOut is the longest an elector stays out of the election after
// stepping down at an operator's request; a request that asks for longer
// gets this.
const MaxStepDownOut = 24 * time.Hour

// stepDownPending reports whether the record's step-down request asks its
// holder, in the record's term, and has not expired at now. A request
// without a readable expiry never acts.
func stepDownPending(record *rl.LeaderElectionRecord, now time.Time) bool {
	r := record.StepDown
	if r.Holder == "" || r.Holder != record.HolderIdentity || r.Term != record.LeaderTransitions {
		return false
	}
	expires, err := time.Parse(time.RFC3339, r.ExpiresAt)
	return err == nil && now.Before(expires)
}

// PendingStepDown returns the operator's step-down request the record
// carries, and whether it is pending at now by the elector's rule: it asks
// the record's holder, in the record's term, and has not expired.
func PendingStepDown(record *rl.LeaderElectionRecord, now time.Time) (rl.StepDownRequest, bool) {
	if record == nil || !stepDownPending(record, now) {
		return rl.StepDownRequest{}, false
	}
	return record.StepDown, true
}

// outStands reports whether r, a step-down request carried out, still
// keeps its holder out at now. An OutUntil further ahead than
// MaxStepDownOut was written by nobody who meant it, and keeps nobody out.
func outStands(r rl.StepDownRequest, now time.Time) bool {
	if r.Holder == "" || r.OutUntil == "" {
		return false
	}
	until, err := time.Parse(time.RFC3339, r.OutUntil)
	return err == nil && now.Before(until) && !until.After(now.Add(MaxStepDownOut))
}

// SteppedDown returns who stepped down at an operator's request and stays
// out of the election until when, as the record says, if that time is
// still ahead at now. The lock keeps one such note: a later step-down
// request written over it lets that holder back in early (kubectl election
// refuses to write one then).
func SteppedDown(record *rl.LeaderElectionRecord, now time.Time) (identity string, until time.Time, ok bool) {
	if record == nil || !outStands(record.StepDown, now) {
		return "", time.Time{}, false
	}
	until, _ = time.Parse(time.RFC3339, record.StepDown.OutUntil)
	return record.StepDown.Holder, until, true
}

// StepDownOut is how long a holder that carries out request stays out of
// the election: ForSeconds, within zero and MaxStepDownOut.
func StepDownOut(request rl.StepDownRequest) time.Duration {
	return min(durations.Seconds(max(request.ForSeconds, 0)), MaxStepDownOut)
}

// rivalRequest reports whether the record carries a pending request of
// another candidate's.
func (h *handoff) rivalRequest(record *rl.LeaderElectionRecord) bool {
	return requestPending(record) && record.HandoffRequest.HolderIdentity != h.me
}

// The requester's side.

// mayReplace reports whether a candidate whose key (ours) outranks the
// holder's may also take the place of another candidate that asked for the
// lock first: only if it outranks that one too (by outranks, which is
// KeyComparison). So a pending request is replaced only by a higher one,
// and the request in the lock is the highest that was made.
func (h *handoff) mayReplace(record *rl.LeaderElectionRecord, ours string, outranks func(key string) bool) bool {
	if !h.rivalRequest(record) {
		return true
	}
	rival := record.HandoffRequest.HolderKey
	return rival != ours && outranks(rival)
}

// askState says, for a candidate whose key outranks the holder's, whether a
// request of ours is pending and may still be answered (asked), and whether
// asking is possible at all (mayAsk): the holder offers handoffs, we use
// them, and we have not already waited one out from this holder in this
// term.
func (h *handoff) askState(record *rl.LeaderElectionRecord, now time.Time) (asked, mayAsk bool) {
	ours := requestPending(record) && record.HandoffRequest.HolderIdentity == h.me
	thisTerm := h.asked.of(record)
	inTime := now.Before(h.asked.deadline)
	asked = thisTerm && ours && inTime
	mayAsk = !h.off && offerStands(record) && !(thisTerm && !inTime)
	return asked, mayAsk
}

// sent notes a request written at start to the holder of record. The
// holder's time runs from our first request of its term.
func (h *handoff) sent(record *rl.LeaderElectionRecord, start time.Time) {
	if h.asked.of(record) {
		return
	}
	within := durations.Seconds(record.Handoff.WithinSeconds)
	h.asked = handoffAsk{to: record.HolderIdentity, term: record.LeaderTransitions, deadline: start.Add(within)}
}

// awaiting reports whether we wait for the holder of record to answer a
// request of ours, and until when it may take.
func (h *handoff) awaiting(record *rl.LeaderElectionRecord) (bool, time.Time) {
	return h.asked.of(record), h.asked.deadline
}

// handedToUs reports whether record, which names us, is the one the holder
// we asked wrote to hand the lock over: the term right after the one we
// asked in.
func (h *handoff) handedToUs(record *rl.LeaderElectionRecord) bool {
	return h.asked.to != "" && record.LeaderTransitions == h.asked.term+1
}

// forgetAsk drops what we asked: we lead now, or campaign afresh.
func (h *handoff) forgetAsk() { h.asked = handoffAsk{} }

// nominated reports whether an operator asked the holder of record to hand
// the lock to us, and we may ask for it whatever our key: the holder offers
// handoffs, and no other candidate's request is pending (the holder answers
// that one first).
func (h *handoff) nominated(record *rl.LeaderElectionRecord, now time.Time) bool {
	return !h.off && stepDownPending(record, now) && record.StepDown.To == h.me &&
		offerStands(record) && !h.rivalRequest(record)
}

// excluded reports whether we stepped down at an operator's request and
// stay out of the election at now: by our own note, or by the lock's, left
// by an elector of ours before this one.
func (h *handoff) excluded(record *rl.LeaderElectionRecord, now time.Time) bool {
	return now.Before(h.outUntil) || record.StepDown.Holder == h.me && outStands(record.StepDown, now)
}

// withdrawal is the record to write, over the state seen, to take our
// pending request out of the lock; false if there is none to take out.
func (h *handoff) withdrawal(seen *observation) (rl.LeaderElectionRecord, bool) {
	record := seen.record
	if seen.absent || seen.unreadable || !requestPending(&record) || record.HandoffRequest.HolderIdentity != h.me {
		return rl.LeaderElectionRecord{}, false
	}
	record.HandoffRequest = rl.HandoffRequest{}
	return record, true
}

// The holder's side.

// askedOfUs reports whether the lock, which names us, carries a request
// from another candidate, or an operator's request that we step down in
// favour of any candidate, that we have not begun to honour. A step-down
// request that names a candidate waits for that candidate's own request.
func (h *handoff) askedOfUs(record *rl.LeaderElectionRecord, now time.Time) bool {
	if h.off || h.stopping {
		return false
	}
	return h.rivalRequest(record) || stepDownPending(record, now) && record.StepDown.To == ""
}

// honour takes up the record's request, if any: our writes carry it from
// now on, so that the requester sees it is still pending. If an operator
// asked us to step down (or to hand over to this very requester, which
// answered in time by its clock), we stay out of the election from now for
// the time asked.
func (h *handoff) honour(record *rl.LeaderElectionRecord, now time.Time) rl.HandoffRequest {
	h.honoring, h.handing = record.HandoffRequest, true
	step := record.StepDown
	named := step.Holder == h.me && step.Term == record.LeaderTransitions && step.To != "" && step.To == h.honoring.HolderIdentity
	if stepDownPending(record, now) || named {
		h.leaving, h.outUntil = step, now.Add(StepDownOut(step))
	}
	return h.honoring
}

// honoured ends a handoff of ours, whether done or given up.
func (h *handoff) honoured() {
	h.honoring, h.handing, h.leaving = rl.HandoffRequest{}, false, rl.StepDownRequest{}
}

// carriedStepDown is the step-down request our writes over record keep in
// the lock: a pending one, so that the candidate it names can still see
// it, or one carried out whose holder stays out still, so that a new
// elector of that holder's sees it; none once it has lapsed.
func (h *handoff) carriedStepDown(record *rl.LeaderElectionRecord, now time.Time) rl.StepDownRequest {
	if !stepDownPending(record, now) && !outStands(record.StepDown, now) {
		return rl.StepDownRequest{}
	}
	return record.StepDown
}

// leftBehind is what our write that ends our term (handing the lock over,
// or releasing it) over current leaves in the lock at now: stepping down,
// our request, with the time we stay out until; otherwise the note of an
// earlier holder that still stays out, which the next holder's writes keep
// in turn (a term that ends must not let that holder back in early).
//
// A step-down request for us that we had not taken up (it came while our
// work was already stopping for a requester, or while we release the lock
// as Run ends) is carried out with this write: we stay out from now, as
// the operator asked.
func (h *handoff) leftBehind(current *rl.LeaderElectionRecord, now time.Time) rl.StepDownRequest {
	if h.leaving.Holder == "" && current.HolderIdentity == h.me && stepDownPending(current, now) {
		h.leaving, h.outUntil = current.StepDown, now.Add(StepDownOut(current.StepDown))
	}
	if h.leaving.Holder == "" {
		if outStands(current.StepDown, now) {
			return current.StepDown
		}
		return rl.StepDownRequest{}
	}
	mark := h.leaving
	// To the nanosecond: a time cut to the second would let us back in
	// up to a second early.
	mark.OutUntil = h.outUntil.UTC().Format(time.RFC3339Nano)
	return mark
}

// windDown marks the time our work stops before a handoff or a release;
// the returned function ends it.
func (h *handoff) windDown() (done func()) {
	h.stopping = true
	return func() { h.stopping = false }
}

// windingDown reports whether our work is stopping before a handoff or a
// release.
func (h *handoff) windingDown() bool { return h.stopping }

// wroteRecord notes the record our write left in the lock; echo is the
// watch that was running as we wrote, which will deliver the write's own
// event (0 for none).
func (h *handoff) wroteRecord(record rl.LeaderElectionRecord, echo int) {
	h.wrote, h.away, h.echo = record, false, echo
}

// sawRead notes a state of the lock that a read returned, which is the
// lock as it is now. A state that is not the one we last wrote, or that is
// that one again after a read showed another, is another candidate's
// (possibly a copy of ours with its request taken out).
func (h *handoff) sawRead(seen *observation) {
	if !seen.known || seen.absent || seen.unreadable {
		h.away = true
		return
	}
	if !seen.written && !(sameRecord(seen.record, h.wrote) && !h.away) {
		h.away = true
		h.follow(&seen.record)
	}
}

// sawDelivered notes a state of the lock that watch (its generation)
// delivered. Events come in the order the lock went through them, but
// possibly after a read that showed a later state, so they say nothing
// about where the lock is now. From the watch that was running as we last
// wrote, the first one that matches that write is its own event, and those
// before it came before the write. Any other state delivered is a later
// one: if it is not our write's, the lock has left that write, and the same
// content seen again was put back by someone else (a requester withdrawing
// a request it wrote over it, before we wrote again).
func (h *handoff) sawDelivered(seen *observation, watch int) {
	if !seen.known || seen.absent || seen.unreadable {
		return
	}
	pending := h.echo != 0 && h.echo == watch
	if pending && (seen.written || sameRecord(seen.record, h.wrote)) {
		h.echo = 0
		return
	}
	if seen.written {
		return
	}
	if !pending {
		h.echo = 0
		if !sameRecord(seen.record, h.wrote) {
			h.away = true
		}
	}
	h.follow(&seen.record)
}

// follow takes the request to honour from a state of the lock, naming us,
// that another candidate wrote while we hand over: requesters replace a
// pending request only with one whose key outranks it, and withdraw their
// own, so the state last written by one of them carries the request to
// answer, or none. Writing an earlier request over a later state would hand
// the lock to a lower requester, or to one that stopped (nobody would then
// lead for the lease it asked for).
func (h *handoff) follow(record *rl.LeaderElectionRecord) {
	if !h.handing || record.HolderIdentity != h.me {
		return
	}
	h.honoring = rl.HandoffRequest{}
	if h.rivalRequest(record) {
		h.honoring = record.HandoffRequest
	}
}

// honouring is the request a leader that winds down for a handoff carries
// in its writes, so that requesters see it is being answered: the one the
// states of the lock seen since we took one up call for (see follow).
func (h *handoff) honouring() rl.HandoffRequest { return h.honoring }

// answer is the request to hand the lock over to, once our work has
// stopped, with the lock in state current: the one we honour, if it still
// asks current's holder in current's term. It reports false if there is none
// (the requester withdrew it): a request the lock carries only because our
// own write carried it counts only while we honour it.
func (h *handoff) answer(current *rl.LeaderElectionRecord) (rl.HandoffRequest, bool) {
	asking := *current
	asking.HandoffRequest = h.honoring
	if !h.rivalRequest(&asking) {
		return rl.HandoffRequest{}, false
	}
	return h.honoring, true
}

// sameRecord reports whether a and b are the same record, to the
// microsecond every lock kind keeps times in.
func sameRecord(a, b rl.LeaderElectionRecord) bool {
	same := func(x, y metav1.Time) bool { return x.Truncate(time.Microsecond).Equal(y.Truncate(time.Microsecond)) }
	if !same(a.AcquireTime, b.AcquireTime) || !same(a.RenewTime, b.RenewTime) {
		return false
	}
	a.AcquireTime, a.RenewTime = b.AcquireTime, b.RenewTime
	return a == b
}

// successor is the record that hands the lock, as current, over to the
// requester of request at now. ourLease stands in for a lease duration the
// requester asked for that nobody can mean.
func successor(request rl.HandoffRequest, current *rl.LeaderElectionRecord, now time.Time, ourLease int) rl.LeaderElectionRecord {
	lease := request.LeaseDurationSeconds
	if lease < 1 || lease > int(MaxLeaseDuration/time.Second) {
		lease = ourLease
	}
	// The offer is the one the successor makes itself, as its request
	// says, so that the record handing the lock over reads as the
	// successor's own renewal would.
	var offer rl.HandoffOffer
	if request.OffersWithinSeconds >= 1 {
		offer = rl.HandoffOffer{Holder: request.HolderIdentity, WithinSeconds: request.OffersWithinSeconds}
	}
	return rl.LeaderElectionRecord{
		HolderIdentity:       request.HolderIdentity,
		HolderKey:            request.HolderKey,
		LeaseDurationSeconds: lease,
		AcquireTime:          metav1.NewTime(now),
		RenewTime:            metav1.NewTime(now),
		LeaderTransitions:    current.LeaderTransitions + 1,
		Handoff:              offer,
	}
}

// What the elector does for the protocol.

// offer is the handoff offer our writes carry, unless handoffs are off: it
// tells a candidate that outranks us how long we may take to hand over once
// asked. That is our time to notice the request (one RetryPeriod without a
// watch), to let OnStartedLeading return (StopTimeout), and to write the
// lock over (RenewDeadline).
func (le *LeaderElector) offer() rl.HandoffOffer {
	if le.config.DisableHandoff || le.config.Coordinated {
		return rl.HandoffOffer{}
	}
	within := durations.Add(le.config.RetryPeriod, max(le.stopTimeout(), 0), le.config.RenewDeadline)
	return rl.HandoffOffer{Holder: le.config.Lock.Identity(), WithinSeconds: durations.WholeSeconds(within)}
}

// requestHandoff writes a request for the lock into it, keeping the holder's
// record as we saw it; the write fails if the lock changed since.
func (le *LeaderElector) requestHandoff(ctx context.Context) error {
	lock := le.config.Lock
	current := le.seen.record
	request := rl.HandoffRequest{
		To:                   current.HolderIdentity,
		Term:                 current.LeaderTransitions,
		HolderIdentity:       lock.Identity(),
		HolderKey:            le.key(),
		LeaseDurationSeconds: le.leaseSeconds,
		OffersWithinSeconds:  le.offer().WithinSeconds,
	}
	asking := current
	asking.HandoffRequest = request
	start := le.clock.Now()
	if err := le.write(ctx, lock.Update, asking); err != nil {
		return err
	}
	le.handoff.sent(&current, start)
	why := "Asked the leader to hand the lease over: our key outranks its key"
	if le.handoff.nominated(&current, start) {
		why = "Asked the leader to hand the lease over: an operator named us"
	}
	klog.FromContext(ctx).Info(why,
		"holder", current.HolderIdentity, "holderKey", current.HolderKey, "key", le.key(), "answerBy", le.handoff.asked.deadline)
	return nil
}

// withdrawRequest takes our pending handoff request out of the lock when we
// stop campaigning, so that the holder does not hand the lock to a candidate
// that will not lead: nobody would lead until the lease we asked for ran
// out. Run's context is done by then, so it has RenewDeadline of its own. It
// writes over the lock as last seen, conditionally, or reads it first; on a
// conflict it reads again. It leaves the lock alone once it carries no
// request of ours; if it was handed to us meanwhile, it stays ours until our
// lease runs out.
func (le *LeaderElector) withdrawRequest(ctx context.Context) {
	if !le.handoff.asked.pending() {
		return
	}
	logger := klog.FromContext(ctx)
	ctx, cancel := le.withTimeout(context.WithoutCancel(ctx), le.config.RenewDeadline)
	defer cancel()
	lock := le.config.Lock
	read := !le.seen.versioned()
	for ctx.Err() == nil {
		if read {
			if _, err := le.read(ctx); err != nil {
				logger.Error(err, "Could not read the lock to withdraw our handoff request")
				return
			}
		}
		record, ok := le.handoff.withdrawal(&le.seen)
		if !ok {
			return
		}
		err := le.write(ctx, lock.Update, record)
		if err == nil {
			logger.Info("Withdrew our handoff request: we stopped campaigning", "holder", record.HolderIdentity)
			le.handoff.forgetAsk()
			return
		}
		if !apierrors.IsConflict(err) {
			logger.Error(err, "Could not withdraw our handoff request; the holder may hand the lock to us all the same")
			return
		}
		read = true
	}
}

// askedToHandOver ends our term for the request the lock carries: our
// renewals from now on carry it, so that the requester sees it is still
// pending.
func (le *LeaderElector) askedToHandOver(logger klog.Logger) ending {
	if le.config.Coordinated {
		return le.termEndedByControlPlane(logger)
	}
	request := le.handoff.honour(&le.seen.record, le.clock.Now())
	if step := le.handoff.leaving; step.Holder != "" {
		logger.Info("Asked by an operator to step down; stopping our work first",
			"to", request.HolderIdentity, "key", request.HolderKey, "namedCandidate", step.To, "requestedAt", step.RequestedAt, "out", StepDownOut(step))
		if request.HolderIdentity == "" {
			return ending{why: "stepping down at an operator's request", handOver: true}
		}
		return ending{why: "stepping down at an operator's request, handing over to " + request.HolderIdentity, handOver: true}
	}
	logger.Info("Asked to hand the lease over; stopping our work first",
		"to", request.HolderIdentity, "key", request.HolderKey)
	return ending{why: "handing over to " + request.HolderIdentity, handOver: true}
}

// handOver writes the lock over to the candidate whose request we honour,
// once our work has stopped: to the latest requester, if a higher one has
// replaced the first. The write goes over the state just read, so it fails
// if anyone else wrote the lock meanwhile; then we read it again, and write
// once more if it is still ours with a request pending. If the requester
// withdrew its request, we release the lock instead. It gives up after
// RenewDeadline: the requester then takes the lock itself.
func (le *LeaderElector) handOver(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if le.config.Coordinated {
		le.releaseToPreferred(ctx, logger)
		return
	}
	ctx, cancel := le.withTimeout(rl.WithLeaderPriority(ctx), le.config.RenewDeadline)
	defer cancel()
	lock := le.config.Lock
	for ctx.Err() == nil {
		// Read first, so that the write goes over the lock as it is now
		// (a MultiLock's request may have reached one half before the
		// other), and over a state nobody else saw change.
		// States the watch has queued came before the read: they tell
		// whether a request our writes carry was withdrawn or replaced.
		if le.watch != nil {
			le.applyWatch(ctx)
		}
		if _, err := le.read(ctx); err != nil {
			logger.V(4).Info("Could not read the lock to hand it over", "err", err)
			le.sleep(ctx, le.config.RetryPeriod/4)
			continue
		}
		if !le.seen.names(lock.Identity()) {
			logger.Info("Lock changed before we could hand it over; leaving it", "holder", le.seen.holder())
			return
		}
		current := le.seen.record
		request, ok := le.handoff.answer(&current)
		if !ok && le.handoff.leaving.Holder != "" {
			// Stepping down with nobody asking: released, the lock
			// goes at once to the first follower that sees it.
			logger.Info("Stepping down: no candidate asked for the lock; releasing it", "out", StepDownOut(le.handoff.leaving))
			le.releaseWithin(ctx, logger)
			return
		}
		if !ok {
			// The requester withdrew: it stopped. Our work has
			// stopped, so the next candidate need not wait out our
			// lease.
			logger.Info("The handoff request was withdrawn; releasing the lock instead")
			le.releaseWithin(ctx, logger)
			return
		}
		next := successor(request, &current, le.clock.Now(), le.leaseSeconds)
		next.StepDown = le.handoff.leftBehind(&current, le.clock.Now())
		err := le.write(ctx, lock.Update, next)
		if err == nil {
			logger.Info("Handed the lease over", "to", request.HolderIdentity, "transitions", next.LeaderTransitions)
			return
		}
		logger.V(4).Info("Could not hand the lease over; trying again", "err", err)
		if !apierrors.IsConflict(err) {
			le.sleep(ctx, le.config.RetryPeriod/4)
		}
	}
	logger.Error(context.Cause(ctx), "Gave up handing the lease over; the requester will take it", "to", le.handoff.honoring.HolderIdentity)
}

// handOverBy is handOver for a leader whose term ends at deadline (its
// last successful renewal plus RenewDeadline): past it the requester may
// already have taken the lock as expired, and a write naming it could land
// over that term, so the handoff gives up then, or is not tried at all.
func (le *LeaderElector) handOverBy(ctx context.Context, deadline time.Time) {
	left := deadline.Sub(le.clock.Now())
	if left <= 0 {
		klog.FromContext(ctx).Error(nil, "No time left before the renew deadline to hand the lease over; the requester will take it",
			"to", le.handoff.honoring.HolderIdentity, "renewDeadline", le.config.RenewDeadline)
		return
	}
	ctx, cancel := le.withTimeout(ctx, left)
	defer cancel()
	le.handOver(ctx)
}
