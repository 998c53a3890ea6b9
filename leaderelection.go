// Package k8sleaderelection elects one leader among the replicas of a
// Kubernetes controller, and lets a candidate with a higher priority take
// over from the current leader without waiting for its lease to run out.
//
// It is a drop-in fork of client-go's tools/leaderelection (and of Istio's
// prioritized fork of it): the same types and functions, plus
// LeaderElectionConfig.KeyComparison and ResourceLockConfig.Key.
//
// # What is promised, and what is not
//
// This is the safety model in short; docs/promises.md in the module's
// repository states each promise in full, with its exceptions and the
// tests that check it, and agrees with what follows.
//
// The lock is an ordinary API object (see package k8sresourcelock). By
// itself it does not fence: nothing in the lock stops a replica that
// believes it leads from writing while another has already taken over (a
// pause, a partition, a request that lands late). For a Lease lock, package
// fence closes that window but for the few milliseconds the API server's
// cache takes to see the Lease change: OnStartedLeading's context carries
// the term (TermFromContext), and the API server refuses a write stamped
// with it (fence.Stamp, fence.Config) once the Lease has moved past it.
// Callers of other lock kinds, or who do not stamp their writes, must guard
// them themselves.
//
// Time is judged by the local clock only. The timestamps in the record are
// never compared with local time: a candidate notes when it first saw the
// lock in its current state, and the holder's lease runs from then. So clocks
// may be skewed arbitrarily, but not run at arbitrarily different rates: the
// ratio LeaseDuration/RenewDeadline is the rate skew tolerated (for twice as
// fast, use for example 60s and 30s). Larger clusters, whose API servers
// answer more slowly, need longer periods; raise RetryPeriod and
// LeaseDuration until the rate of LeaderTransitions is low and steady. A
// coordinated election (see Coordinated) is the exception: the control
// plane judges a Lease's expiry by the renewTime in it against its own
// clock, so there clocks must agree to within a lease.
//
// # Leading
//
// A leader leads only while the lock names it. It stops leading (its context
// is cancelled, then OnStoppedLeading runs) when Run's context is done, when
// it has not renewed for RenewDeadline since its last successful renewal, or
// as soon as its watch or a renewal shows the lock in any state but its own
// since its last write: another holder, no holder (it was preempted and the
// lock released since), a record nobody can decode, or no lock at all. Each
// of those means the lock changed since its last write, and it can no longer
// prove that nobody else leads. Because LeaseDuration is greater than
// RenewDeadline, a leader that is merely cut off stops before any other
// candidate may take the lock.
//
// A renewal is one write and no read: the leader writes over the state it
// last wrote, with that state's resourceVersion, so the API server refuses
// the write if anyone wrote in between, and only then does the leader read.
// Where the lock has no resourceVersion to offer (a clientset that does not
// version objects, as client-go's stock fake, or a custom lock that does not
// implement k8sresourcelock.Versioned) an update would be unconditional and
// could overwrite a new holder unseen, so the leader reads before it writes.
//
// # Renewal pace
//
// A leader that watches its lock learns of a steal, a release, a handoff
// request or a deletion from its watch at once, so it renews only to keep
// its lease running in the eyes of the others: every RenewPeriod, by default
// the shortest of LeaseDuration/3, RenewDeadline/2 and LeaseDuration minus
// (2+JitterFactor) times RetryPeriod (5s at 15s/10s/2s, where client-go's
// elector renews every 2s). After a failed renewal, while its watch is
// broken, and while its work winds down before a handoff or a release, it
// tries every RetryPeriod; a leader that polls (DisableWatch, a lock without
// a watch) always does. The promises above do not change with the pace: a
// leader stops within RenewDeadline of its last successful renewal, and a
// follower that polls, as client-go's and Istio's fork's do, sees each
// renewal before the lease it last saw runs out. The price is tolerance of
// an API server that stalls: RenewDeadline minus RenewPeriod (5s), not minus
// RetryPeriod (see docs/renewal.md).
//
// # Following
//
// Every candidate watches its lock (unless DisableWatch is set, or the lock
// cannot be watched: then it reads it every jittered RetryPeriod). A
// follower reads the lock once, then decides from what the watch delivers:
// it takes a released lock the moment it sees the release, takes an expired
// one the moment the lease runs out, and sends no request while nothing
// changes. A broken watch is replaced, with backoff, and the follower polls
// every jittered RetryPeriod until the new one is open. A watch is opened on
// a goroutine of its own (for every lock kind of package k8sresourcelock),
// so a watch request that never returns holds up neither a follower, which
// polls meanwhile and takes a release within a RetryPeriod, nor a leader,
// which renews every RetryPeriod meanwhile (see docs/promises.md).
//
// # Leases
//
// A candidate takes the lock when it is absent, names nobody (it was
// released), names the candidate itself (it restarted), or has not changed
// for the holder's lease. Every change of the lock restarts the lease: a
// change of its resourceVersion (so two renewals within one second both
// count) or of its record's bytes. A change counts whether or not the record
// in it can be decoded, because a record nobody can read may hide a live
// leader's renewal. The holder's lease is the LeaseDurationSeconds it wrote;
// a duration that is zero, negative, above MaxLeaseDuration, or unreadable is
// nobody's real lease, and the longer of our own LeaseDuration and the last
// real lease we saw stands in for it. So a corrupt record is taken over one
// lease after its last change, while something that keeps rewriting the
// lock faster than that keeps every candidate out (nobody can tell its
// writes from renewals) and makes a leader step down. A lock whose holder
// is wiped out without a release (the object deleted, or its record emptied)
// while its lease runs stays held, by nobody we know, until that lease has
// run out, so that the leader, which steps down on seeing the wipe, is gone
// first. In a coordinated election the control plane, which waits for
// nobody, creates a deleted Lease again at once (see Coordinated).
//
// When two candidates take a free or expired lock at the same instant, the
// API server accepts one write and refuses the other with a Conflict. On a
// clientset that accepts both (client-go's stock fake), both may start
// leading; a watching one steps down the moment it sees the other's write,
// a polling one at its next renewal.
//
// # Priority
//
// Each candidate has a key (ResourceLockConfig.Key), written into the record
// with its identity. A candidate that finds the lock held by another, and
// not expired, asks its KeyComparison whether its own key outranks the
// holder's key. KeyComparison is not asked, and nobody preempts, when the
// keys are equal, when the record cannot be decoded, or when the holder is
// UnknownLeader (a MultiLock whose two locks disagree). Without a
// KeyComparison a candidate never preempts.
//
// A candidate whose key outranks the holder's asks a holder that offers it
// (every elector of this package, unless DisableHandoff is set) to hand the
// lock over, by writing a request into the lock. The holder cancels its
// OnStartedLeading context, waits for OnStartedLeading to return (at most
// StopTimeout, renewing meanwhile), runs OnStoppedLeading, and only then
// writes the lock over to the candidate, which starts leading once it sees
// that. The two never lead at once, with one exception chosen by the
// holder: a negative StopTimeout means not to wait for OnStartedLeading, so
// the candidate may start while the holder's work still winds down (as with
// client-go's elector). A candidate that outranks a pending requester
// replaces its request, even while the holder's work stops, and the lock
// goes to it alone; one that does not waits. A candidate whose Run ends
// while its request is pending withdraws it; a holder that had begun to
// stop its work for that request then releases the lock, once the work has
// stopped, instead of handing it over (one that had not yet seen the
// request leads on); except on a clientset that accepts
// stale writes, such as client-go's stock fake, when the holder polls
// (DisableWatch): a withdrawal landing between its read and its renewal is
// overwritten unseen, and the lock may go to the stopped candidate, to be
// free again once that candidate's lease has run out (nobody leads
// meanwhile).
//
// An operator may ask a holder that offers handoffs to step down (kubectl
// election step-down and handoff write a k8sresourcelock.StepDownRequest
// into the lock). The holder stops its work as for a handoff request, then
// hands the lock to the candidate whose request is pending, or releases it
// for the followers to take at once; a request that names a candidate makes
// that candidate ask for the lock whatever its key, and never take it. The
// holder then stays out of the election for the time asked, whatever its
// key, and the lock says so until then, so that a new elector for the same
// identity stays out too. A request lapses with the holder's term, and at
// its expiry by the holder's clock. Other electors ignore it.
//
// A holder that makes no offer (Istio's fork, client-go's elector, or ours
// with DisableHandoff), or does not hand over within the time its offer
// states (its work hangs, or it is cut off), has the lock taken at once (a
// steal), and LeaderTransitions goes up by one as for a handoff. A steal is
// the one case in which two replicas may lead at the same time: a watching
// leader of ours steps down the moment it sees the steal, a polling one at
// its next renewal, one RetryPeriod later at most, plus the time of that
// renewal's requests; only if those requests fail does it last longer, and
// never beyond RenewDeadline after the old leader's last successful
// renewal. Work that must never run twice should not rely on a steal, or
// should check IsLeader before acting.
package k8sleaderelection

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// JitterFactor spreads a candidate's attempts to acquire the lock: each wait
// is RetryPeriod plus up to JitterFactor times RetryPeriod more, chosen at
// random, so that candidates started together do not all ask at once.
const JitterFactor = 1.2

// KeyComparisonFunc reports whether our key outranks existingKey, the key of
// the candidate that holds the lock. existingKey may be empty.
type KeyComparisonFunc func(existingKey string) bool

// LeaderElectionConfig configures a LeaderElector.
type LeaderElectionConfig struct {
	// Lock is the object the candidates compete for. NewLeaderElector asks
	// a lock that implements k8sresourcelock.Validator whether it is fully
	// built; a lock that implements k8sresourcelock.Versioned lets a leader
	// renew with one write and no read; our key is Key of a lock that is
	// k8sresourcelock.Keyed, and empty for one that is not (a lock written
	// against client-go's Interface). Every lock kind of package
	// k8sresourcelock implements all three.
	Lock rl.Interface

	// LeaseDuration is our lease: written into the record (rounded up to
	// whole seconds) each time we take or renew the lock, it is how long
	// other candidates wait, after they last saw the record change, before
	// they take the lock from us if we stop renewing. A candidate waits out
	// the duration the holder wrote, not its own, so replicas with
	// different settings stay safe. Shorter means faster failover after a
	// crash; longer means more tolerance for clock rate skew and slow API
	// servers. Core Kubernetes components use 15s. At most
	// MaxLeaseDuration.
	LeaseDuration time.Duration
	// RenewDeadline is how long a leader keeps trying to renew after its
	// last successful renewal before it stops leading. It must be less
	// than LeaseDuration. Core components use 10s.
	RenewDeadline time.Duration
	// RetryPeriod is the wait between a leader's renewals and between a
	// candidate's attempts to acquire. Core components use 2s. At least
	// MinRetryPeriod, and RenewDeadline must exceed JitterFactor times it.
	// A leader that watches its lock renews at RenewPeriod instead, and
	// retries every RetryPeriod only after a failed renewal.
	RetryPeriod time.Duration
	// RenewPeriod is how often a leader that watches its lock renews it
	// while its renewals succeed. Its watch tells it at once when the lock
	// changes hands, so it need only keep its lease running in the eyes of
	// the other candidates, a few times per LeaseDuration. Zero, the
	// default, is the longest period the other timings allow: the shortest
	// of LeaseDuration/3, RenewDeadline/2 and LeaseDuration minus
	// (2+JitterFactor) times RetryPeriod, and at least RetryPeriod (5s at
	// 15s/10s/2s). Set it lower for followers that poll more slowly than
	// our RetryPeriod (another elector with a longer RetryPeriod), or for an
	// API server that stalls for longer than RenewDeadline minus it (a
	// leader then has that long left when a renewal is due); set
	// it to RetryPeriod to renew at client-go's pace. If set, it must lie
	// between RetryPeriod and that longest period. A leader without a
	// watch (DisableWatch, a lock that cannot be watched, or a watch that
	// broke and is being started again) renews every RetryPeriod.
	RenewPeriod time.Duration

	// KeyComparison reports whether our key (Lock's Key) outranks the key
	// of the current holder. When it does, we take the lock at once even
	// though the holder's lease is still running. Every candidate's
	// KeyComparison must agree on the order, or candidates will keep
	// taking the lock from each other. It must accept an empty key: a
	// holder need not have one. It is not asked about a holder whose key
	// equals ours (equal keys never preempt), nor about a holder that
	// cannot be known (an undecodable record, UnknownLeader). Nil means we
	// never preempt. When it is set, Lock must be k8sresourcelock.Keyed
	// (for a MultiLock, its Primary): NewLeaderElector refuses a lock
	// without a key to write.
	//
	// It is called from the election loop and must not block: the loop,
	// and Run's return, wait for it. If it panics, the panic is logged as
	// an error and treated as false (we do not preempt), and the election
	// goes on.
	//
	// A holder that offers handoffs (see DisableHandoff) is asked for the
	// lock, and stops its work before it hands the lock over. One that makes
	// no offer, or does not answer within it, has the lock taken: a leader
	// of ours then steps down the moment its watch shows it, or, polling, on
	// its next renewal, and never later than RenewDeadline after its last
	// successful renewal (see the package documentation).
	KeyComparison KeyComparisonFunc

	// Callbacks are called as leadership starts and stops.
	Callbacks LeaderCallbacks

	// WatchDog, if set, is tied to the elector by RunOrDie so that /healthz
	// can report a leader that has stopped renewing. Optional.
	WatchDog *HealthzAdaptor

	// ReleaseOnCancel makes a leader whose Run context is done clear the
	// holder in the lock, so that another candidate can take over at once
	// instead of after LeaseDuration. The leader releases the lock only
	// after OnStartedLeading has returned (it waits at most StopTimeout,
	// renewing meanwhile, and does not release if it has not), so that the
	// next leader does not start while the work the lock guards still runs.
	// A leader whose renewals failed for RenewDeadline, while the lock may
	// still name it, releases it too, once OnStartedLeading has returned
	// (at most StopTimeout, without renewing); a lock that names another
	// holder is left alone.
	ReleaseOnCancel bool

	// Name names the election in metrics and logs.
	Name string

	// DisableHandoff makes a candidate that outranks the holder take the
	// lock at once (a steal), as Istio's fork does, and makes this elector
	// refuse to hand the lock over. By default a candidate whose key
	// outranks the holder's asks a holder that offers it to hand the lock
	// over: the holder cancels OnStartedLeading's context, waits for it to
	// return (at most StopTimeout), runs OnStoppedLeading, and only then
	// writes the lock over to the candidate, which starts leading after
	// that; the two never lead at once. A holder that does not hand over
	// within the time it offered (it hangs, or is cut off), or that cannot
	// (Istio's fork, client-go's elector), has the lock taken as before.
	DisableHandoff bool

	// StopTimeout bounds how long a leader that gives the lock up on
	// purpose (a handoff, or a release on ReleaseOnCancel) waits for
	// OnStartedLeading to return after cancelling its context, renewing
	// the lock meanwhile, so that no successor starts while our work still
	// runs. If OnStartedLeading has not returned by then, the leader gives
	// nothing up: it stops renewing, and the lock expires (or a requester
	// takes it when its wait runs out). Zero means RenewDeadline; a
	// negative value means not to wait, as client-go's elector does not:
	// the successor may then start while our work still runs, the one
	// overlap a handoff or release allows, by this choice.
	// Any positive value is allowed, up to math.MaxInt64 for "as long as it
	// takes": the offer a holder makes to a requester (RetryPeriod plus
	// StopTimeout plus RenewDeadline) stays at the longest Duration rather
	// than wrapping around.
	StopTimeout time.Duration

	// WaitForReady, if set, is called once per Run, in a goroutine of its
	// own, the first time this candidate could preempt the holder; the
	// candidate preempts (asks for a handoff, or steals) only once it has
	// returned nil, so that the holder keeps working until this candidate
	// can take over warm, for example once its informers have synced. An
	// error is logged and it is called again after RetryPeriod. Taking a
	// free or expired lock does not wait for it. It must return when its
	// context is done: Run waits for it.
	WaitForReady func(ctx context.Context) error

	// DisableWatch makes candidates poll the lock every RetryPeriod, as
	// client-go's elector does, instead of watching it. By default every
	// candidate watches its lock (when the lock implements
	// k8sresourcelock.Watcher, as every lock kind of that package does):
	// a follower takes a released lock as soon as it sees the release and
	// sends no requests while nothing changes, and a leader steps down the
	// moment the lock changes hands. Where a watch is impossible (RBAC
	// without the watch verb, a lock that cannot watch) the candidate polls
	// instead and says so once in its log.
	DisableWatch bool

	// Clock, if set, is the clock the elector reads and waits on, for
	// tests that drive an election with a fake clock
	// (k8s.io/utils/clock/testing). Nil means the real clock.
	Clock clock.WithDelayedExecution

	// Coordinated leaves the choice of leader to the control plane
	// (Kubernetes coordinated leader election, the
	// CoordinatedLeaderElection feature gate): each candidate announces
	// itself with a LeaseCandidate (NewCandidate), and kube-apiserver
	// writes the chosen one into the Lease. The elector then never
	// creates, takes or preempts the lock: it leads while the Lease names
	// it, renewing it. When the control plane marks the end of its term
	// (the Lease's preferredHolder names someone else), it stops its work
	// first, renewing meanwhile, and then releases the Lease so that the
	// preferred holder gets it without waiting for the lease to run out.
	// It needs a *k8sresourcelock.LeaseLock and no KeyComparison.
	//
	// A Lease deleted mid-term is an exception: the elector never creates
	// the Lease, so it cannot hold it while its work winds down, and the
	// control plane creates it for its next pick at once. The leader
	// cancels OnStartedLeading's context when it sees the deletion (through
	// the watch at once, at the latest at its next renewal, RetryPeriod
	// after the last) and does not wait for it, so the next pick may lead
	// while that work still runs, for as long as OnStartedLeading takes to
	// return. Return promptly, or fence the work's writes (package fence):
	// the new Lease has a new UID, so writes stamped in the old term are
	// refused.
	Coordinated bool
}

// LeaderCallbacks are called as an elector's leadership changes.
type LeaderCallbacks struct {
	// OnStartedLeading is called in a goroutine of its own when we become
	// the leader. Its context is cancelled the moment we stop leading,
	// before OnStoppedLeading is called. When we give the lock up on
	// purpose (a handoff, or ReleaseOnCancel), Run waits for it to return,
	// at most StopTimeout, before the lock goes to anyone else; when the
	// lock is taken from us, Run does not wait. Required.
	OnStartedLeading func(context.Context)
	// OnStoppedLeading is called once per Run, whether or not we ever led:
	// when we hand the lock over, after OnStartedLeading has returned and
	// before the lock is written over to the successor; otherwise when Run
	// returns. Required.
	OnStoppedLeading func()
	// OnNewLeader is called with the holder's identity each time we see the
	// lock change hands, including the first holder we see, and an empty
	// identity if we see the lock released and not yet taken again. Calls
	// come one at a time, in the order the changes were seen, from one
	// goroutine; a slow OnNewLeader delays later calls but never the
	// election. Run does not wait for them: calls still queued when Run
	// returns are made afterwards, in order. Optional.
	OnNewLeader func(identity string)
}

// LeaderElector runs one candidate of an election.
type LeaderElector struct {
	config  LeaderElectionConfig
	clock   clock.WithDelayedExecution
	metrics *leaderMetrics
	// leaseSeconds is LeaseDuration as written into the record.
	leaseSeconds int

	running atomic.Bool

	// mu guards what HealthzAdaptor, GetLeader and IsLeader read while
	// Run writes it.
	mu sync.RWMutex
	// publishedLeader, behind GetLeader and Check, is the holder of the
	// lock as last seen, and publishedSince when we first saw the lock in
	// that state (or wrote it).
	publishedLeader string
	publishedSince  time.Time
	// leading is true from acquiring the lock until we stop leading;
	// renewedAt is when the last successful write of it started.
	leading   bool
	renewedAt time.Time
	// working counts the OnStartedLeading calls that have not returned,
	// which may outlive their term.
	working atomic.Int32
	// cutoff, while we lead, fires at the renew deadline (see
	// cutAtDeadline); cutOff is set from when it ended the term until the
	// step that held the leader up has returned and stopLeading has run.
	cutoff clock.Timer
	cutOff bool

	// Only Run's goroutine touches the fields below.
	seen      observation
	watch     *watcher
	readiness *readiness
	// handoff is our part in the handoff protocol, as requester and as
	// holder.
	handoff handoff
	// announcedLeader, behind OnNewLeader, is the holder last queued for
	// it.
	announcedLeader string
	// metricsLeader, behind the metrics' LeaderObserved, is the holder
	// whose lease it was last told runs; unlike announcedLeader, "" also
	// stands for a lease that ran out.
	metricsLeader sighting
	// notifier delivers OnNewLeader calls; it outlives Run while a
	// callback is still running, and the next Run's notifier waits for it.
	notifier    *leaderNotifier
	lastFailure string
	// toldNoLease is set once a coordinated candidate has said that its
	// Lease does not exist, so that it says so once.
	toldNoLease bool
	// endMark is the control plane's end of a coordinated term of ours,
	// as a state of the lock showed it (see noteEndMark).
	endMark endMark
	// termUID is the UID of the lock's object (a Lease's) when our term
	// began; "" for a lock without one.
	termUID types.UID
	// lastWork is closed when the last term's OnStartedLeading returns; a
	// later Run competes only after that.
	lastWork <-chan struct{}
}

// NewLeaderElector checks lec and returns an elector for it. The error names
// every field that is wrong.
func NewLeaderElector(lec LeaderElectionConfig) (*LeaderElector, error) {
	if err := validate(&lec); err != nil {
		return nil, err
	}
	var clk clock.WithDelayedExecution = clock.RealClock{}
	if lec.Clock != nil {
		clk = lec.Clock
	}
	le := &LeaderElector{
		config:       lec,
		clock:        clk,
		metrics:      globalMetrics.newLeaderMetrics(),
		leaseSeconds: durations.WholeSeconds(lec.LeaseDuration),
		seen:         observation{ours: lec.LeaseDuration},
		handoff:      handoff{me: lec.Lock.Identity(), off: lec.DisableHandoff},
	}
	work := lec.Callbacks.OnStartedLeading
	le.config.Callbacks.OnStartedLeading = func(ctx context.Context) {
		le.working.Add(1)
		defer le.working.Add(-1)
		work(ctx)
	}
	le.metrics.leaderOff(lec.Name)
	return le, nil
}

// RunOrDie runs an elector for lec until ctx is done or leadership is lost,
// and ties it to lec.WatchDog if there is one. It panics if lec is invalid.
func RunOrDie(ctx context.Context, lec LeaderElectionConfig) {
	le, err := NewLeaderElector(lec)
	if err != nil {
		panic(err)
	}
	if lec.WatchDog != nil {
		lec.WatchDog.SetLeaderElection(le)
	}
	le.Run(ctx)
}

// GetLeader returns the identity of the holder last seen in the lock: "" if
// none has been seen yet or the lock was released or deleted, and
// k8sresourcelock.UnknownLeader if its record could not be decoded or a
// MultiLock's two locks disagree. It is informational: the holder may have
// changed since.
func (le *LeaderElector) GetLeader() string {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.publishedLeader
}

// publishLeader makes the holder last seen what GetLeader returns.
func (le *LeaderElector) publishLeader() {
	holder := le.seen.holder()
	le.mu.Lock()
	le.publishedLeader, le.publishedSince = holder, le.seen.since
	le.mu.Unlock()
}

// IsLeader reports whether we lead now: we have acquired the lock and have
// not stopped leading since.
func (le *LeaderElector) IsLeader() bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.leading
}

// Check returns an error, "failed election to renew leadership on lease "
// followed by the election's Name, as client-go's does, when this replica is
// stuck in a way that only a restart ends, whether Run still runs or has
// returned:
//   - the lock as we last saw it names us, and we have neither seen it change
//     nor written it for LeaseDuration plus maxTolerableExpiredLease: our
//     lease has run out by then, so we cannot be leading, yet nobody has
//     taken over as far as we know (our renewals fail, or Run has returned
//     while the process lives on), as client-go's elector reports;
//   - we lead, or OnStartedLeading still runs after its term ended, and our
//     last renewal is that old: another replica may lead beside our work.
//
// It returns nil for a follower of a live holder, for a leader that renews,
// and for a replica whose work has returned and whose lock names someone
// else or nobody.
func (le *LeaderElector) Check(maxTolerableExpiredLease time.Duration) error {
	le.mu.RLock()
	// A leader cut off at its renew deadline while stuck in a step (a
	// metric, a lock that ignores its context) is still stuck: that is
	// what the check is for.
	holder, seenSince, renewedAt := le.publishedLeader, le.publishedSince, le.renewedAt
	leading := le.leading || le.cutOff
	le.mu.RUnlock()
	allowed := durations.Add(le.config.LeaseDuration, maxTolerableExpiredLease)
	stale := func(t time.Time) bool { return le.clock.Since(t) > allowed }
	ours := holder == le.config.Lock.Identity() && stale(seenSince)
	working := (leading || le.working.Load() > 0) && stale(renewedAt)
	if !ours && !working {
		return nil
	}
	return fmt.Errorf("failed election to renew leadership on lease %s", le.config.Name)
}

// Run competes for the lock until ctx is done or, once leading, until
// leadership is lost; then it calls OnStoppedLeading and returns. An elector
// may Run again after Run returns, but not twice at once: a second concurrent
// call logs an error and returns at once, without calling any callback. A
// Run after a term whose OnStartedLeading has not yet returned (the lock was
// taken from us, and Run does not wait for the work then) competes only once
// it has, so that two terms' work never runs at once.
func (le *LeaderElector) Run(ctx context.Context) {
	le.run(ctx)
}

// RunAndRejoin runs the election until ctx is done: each time this
// candidate stops leading (preempted, stolen from, cut off), it goes back
// to being a candidate, a warm standby, instead of returning as Run does.
// Each term gets a fresh context for OnStartedLeading and ends with its own
// OnStoppedLeading call, and a term starts only once the last one's
// OnStartedLeading has returned: two terms' callbacks never run at once.
// OnStoppedLeading is called as each term ends, and once more if ctx ends
// while this candidate does not lead (each turn of the loop is a Run). It
// returns at once, calling nothing, if the elector is already running.
func (le *LeaderElector) RunAndRejoin(ctx context.Context) {
	for ctx.Err() == nil {
		if !le.run(ctx) {
			return
		}
	}
}

// run is Run; it reports false if it did not run because another Run was
// running.
func (le *LeaderElector) run(ctx context.Context) bool {
	logger := klog.FromContext(ctx).WithValues("lock", le.config.Lock.Describe())
	if le.config.Name != "" {
		logger = logger.WithValues("election", le.config.Name)
	}
	ctx = klog.NewContext(ctx, logger)
	if !le.running.CompareAndSwap(false, true) {
		logger.Error(nil, "Run called while this elector is already running; ignoring the call")
		return false
	}
	defer le.running.Store(false)
	stopped := sync.OnceFunc(le.config.Callbacks.OnStoppedLeading)
	defer stopped()

	le.notifier = startNotifier(le.config.Callbacks.OnNewLeader, le.notifier)
	defer le.notifier.stop()
	le.watch = newWatcher(le.config.Lock, le.config.DisableWatch, le.clock)
	defer le.watch.stop()
	le.readiness = newReadiness(ctx, le.config.WaitForReady, le.config.RetryPeriod, le.clock)
	defer le.readiness.stop()
	le.handoff.forgetAsk()
	le.forgetEndMark()

	if !le.lastTermDone(ctx) {
		return true
	}
	if !le.acquire(ctx) {
		le.withdrawRequest(ctx)
		return true
	}
	le.lead(ctx, stopped)
	return true
}

// lastTermDone waits for the last term's OnStartedLeading to return, and
// reports false if ctx ended first.
func (le *LeaderElector) lastTermDone(ctx context.Context) bool {
	if le.lastWork == nil {
		return true
	}
	select {
	case <-le.lastWork:
		return true
	default:
	}
	klog.FromContext(ctx).Info("Waiting for the last term's OnStartedLeading to return before competing again")
	select {
	case <-le.lastWork:
		return true
	case <-ctx.Done():
		return false
	}
}

// key is our priority key: see lockKey.
func (le *LeaderElector) key() string { return lockKey(le.config.Lock) }

// lockKey is the key of a lock that is Keyed, and "" for any other: a lock
// written against client-go's Interface has none, and competes as a holder
// without a key does. A nil lock has no key either, rather than a panic.
func lockKey(lock rl.Interface) string {
	keyed, ok := lock.(rl.Keyed)
	if !ok || nilness.Is(keyed) {
		return ""
	}
	return keyed.Key()
}
