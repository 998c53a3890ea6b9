// Package group runs a group of elections for the replicas of a
// controller, and spreads their leadership evenly over the replicas, moving
// it from one to another only by handoff. It is named for what it runs: one
// call, Run, takes part for this replica in every election of the group
// (istiod's eleven, or the S shards of a sharded controller).
//
// # Members
//
// There is no central component. Each replica announces itself with a
// Lease of its own in the group's namespace, labelled GroupLabel, and
// follows the others' by one label-selected list and watch; no member
// polls. A member's Lease is renewed every half of MemberLeaseDuration
// (by default twice LeaseDuration, so at most one write per LeaseDuration),
// and a member is alive while its Lease has changed within the duration it
// wrote, by our clock, from when we saw it change. A member that leaves
// deletes its Lease, and the others drop it at once. A member whose list
// or watch of the others fails asks for nothing (it drops every mark) until
// it sees them again: to it, their Leases would seem to run out.
//
// # Assignment
//
// Every member computes the same assignment from the same view (Assign):
// only the members with the highest key present are eligible (Outranks,
// the pairwise form of the elector's KeyComparison), and each of them owns
// ⌊E/M⌋ or ⌈E/M⌉ of the E elections. The view includes who leads each
// election now, so that an election stays where it is whenever the balance
// allows: a fourth member joining three that share twelve takes exactly
// three, one from each.
//
// # Moves
//
// Each election is an ordinary elector of package k8sleaderelection, on a
// Lease named for the election, with the shared watch; every member
// campaigns for every election, so every member is a warm standby. What
// moves leadership is the key: a member campaigns with its own key for the
// elections it does not own, and with its key followed by OwnerMark for
// those it owns, and between equal keys only an owner's outranks another.
// So an owner asks a holder with the same key for the lock only when the
// holder has dropped the mark, that is when the holder too sees that it
// does not own the election; the holder then stops its work and hands the
// lock over, by the elector's handoff protocol, with no overlap. Only an
// owner asks, and the members' own keys still come first: an owner asks a
// holder with a lower key (a canary, while a new default revision joins)
// whatever that holder's view says, so each election goes straight from the
// lower key to the higher-key member that owns it, within Settle. Should
// the owner never ask, any member with a higher key than the holder's asks
// too, once its view has stayed the same for Settle and the time a handoff
// takes.
//
// A member drops its mark at once when its view says it no longer owns an
// election, and puts a mark on only after its view of the members has not
// changed for Settle. Two members that disagree for a moment therefore
// either both carry the mark (equal keys: nobody moves) or both lack it
// (nobody moves), or the one that carries it is the one both would choose
// once they agree; an election moves only when the holder has given it up
// and the new owner wants it, which is once per change of the view. Safety
// does not rest on the views at all: each election is still one lock, and
// the elector never lets two candidates lead it at once except by a steal
// of a holder that does not answer (see package k8sleaderelection).
//
// A member whose Run's context ends leaves cleanly: it deletes its Lease,
// drops every mark, and waits (at most Settle plus the time a handoff may
// take) for the others to ask for its elections, handing each over; it then
// stops its electors, which release whatever is left.
//
// A member that crashes stops renewing. As soon as one of its elections'
// leases runs out unrenewed, the others treat it as gone for the
// assignment, without waiting for its member Lease to run out, and each of
// its elections is taken by the member that the assignment without it
// names: the others hold off taking it for one RetryPeriod, by when the
// owner, which sees the lease run out when they do, has taken it. So each
// election moves once, and the survivors are balanced the moment all are
// led again. Should the owner not take it (it is dead or slow too), the
// others take it once the hold-off is over, a jittered RetryPeriod later
// at most. A member so treated as gone is back as soon as its member Lease
// is seen to change.
package group

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
	"github.com/k8sleaderelection/k8sleaderelection/internal/nilness"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// DefaultSettle is the Settle used when none is set.
const DefaultSettle = time.Second

// Election is one election of the group: the name of its Lease, and what
// to do while leading it.
type Election struct {
	// Name names the election's Lease (in Config.Namespace) and the
	// election in logs and metrics.
	Name string
	// Callbacks are called as this member's leadership of the election
	// starts and stops, as for an elector's RunAndRejoin: each term has its
	// own OnStartedLeading and OnStoppedLeading call, and OnStoppedLeading
	// is called once more when Run ends while the election is not led
	// here. OnStartedLeading and OnStoppedLeading are required.
	Callbacks le.LeaderCallbacks
}

// Config configures this member of a group.
type Config struct {
	// Name names the group: the value of GroupLabel on the members'
	// Leases, and the first part of their names.
	Name string
	// Namespace holds the members' Leases and the elections' Leases.
	Namespace string
	// Client reads, writes and watches the Leases.
	Client coordinationv1client.LeasesGetter
	// Identity is this member's identity, unique in the group.
	Identity string
	// Key is this member's priority key; it may be empty.
	Key string
	// Outranks orders the members' keys, as KeyComparison does for one
	// election: only the members whose key no other member's key outranks
	// own elections. Nil means all keys rank alike; a call that panics is
	// logged and read as false.
	Outranks OutranksFunc
	// Elections are the elections of the group. Every member must run the
	// same set.
	Elections []Election

	// LeaseDuration, RenewDeadline, RetryPeriod and StopTimeout are each
	// election's, as in k8sleaderelection.LeaderElectionConfig.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	StopTimeout   time.Duration

	// MemberLeaseDuration is the duration of this member's own Lease,
	// which it renews every half of it. Zero means twice LeaseDuration:
	// one write per LeaseDuration.
	MemberLeaseDuration time.Duration
	// Settle is how long this member's view of the members must stay the
	// same before it asks for the elections the view gives it. Zero means
	// DefaultSettle.
	Settle time.Duration

	// Clock, if set, is the clock the group and its electors read and wait
	// on. Nil means the real clock.
	Clock clock.WithDelayedExecution
}

// Run runs this member of the group until ctx is done, then leaves the
// group cleanly (see the package documentation) and returns once every
// elector and every goroutine it started has ended. It returns an error at
// once, running nothing, if config is invalid.
func Run(ctx context.Context, config Config) error {
	g, err := newMember(config)
	if err != nil {
		return err
	}
	g.run(ctx)
	return nil
}

// member is this replica's part in a group.
type member struct {
	config     Config
	clock      clock.WithDelayedExecution
	members    *membership
	candidates []*candidate
	names      []string // the elections' names, in the order of candidates
	wake       chan struct{}

	mu      sync.Mutex
	holders map[string]string

	// leaving is set once this member leaves; the electors read it.
	leaving atomic.Bool

	// Only run's goroutine touches the fields below.
	view        string
	stableSince time.Time
}

// candidate is this member's elector of one election, and the key it
// campaigns with now.
type candidate struct {
	name    string
	key     atomic.Pointer[string]
	elector *le.LeaderElector
}

func (c *candidate) currentKey() string { return *c.key.Load() }

func newMember(config Config) (*member, error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	if config.MemberLeaseDuration == 0 {
		config.MemberLeaseDuration = durations.Add(config.LeaseDuration, config.LeaseDuration)
	}
	if config.Settle == 0 {
		config.Settle = DefaultSettle
	}
	config.Outranks = recovering(config.Outranks)
	var clk clock.WithDelayedExecution = clock.RealClock{}
	if config.Clock != nil {
		clk = config.Clock
	}
	g := &member{config: config, clock: clk, wake: make(chan struct{}, 1), holders: map[string]string{}}
	g.members = newMembership(&g.config, clk, g.poke)
	for _, e := range config.Elections {
		c := &candidate{name: e.Name}
		standby := rankedKey(config.Key, false)
		c.key.Store(&standby)
		callbacks := e.Callbacks
		userNewLeader := callbacks.OnNewLeader
		name := e.Name
		callbacks.OnNewLeader = func(identity string) {
			g.sawHolder(name, identity)
			if userNewLeader != nil {
				userNewLeader(identity)
			}
		}
		lock := &rankedLock{candidate: c, group: g, LeaseLock: &rl.LeaseLock{
			LeaseMeta:  metaOf(config.Namespace, e.Name),
			Client:     config.Client,
			LockConfig: rl.ResourceLockConfig{Identity: config.Identity, Key: config.Key},
		}}
		elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   config.LeaseDuration,
			RenewDeadline:   config.RenewDeadline,
			RetryPeriod:     config.RetryPeriod,
			StopTimeout:     config.StopTimeout,
			KeyComparison:   func(existing string) bool { return keyOutranks(config.Outranks, c.currentKey(), existing) },
			Callbacks:       callbacks,
			ReleaseOnCancel: true,
			Name:            e.Name,
			Clock:           config.Clock,
		})
		if err != nil {
			return nil, fmt.Errorf("group %s: election %s: %w", config.Name, e.Name, err)
		}
		c.elector = elector
		g.candidates = append(g.candidates, c)
		g.names = append(g.names, e.Name)
	}
	return g, nil
}

// recovering returns outranks, made to read a panic as "does not outrank",
// as an elector reads a panicking KeyComparison: a faulty comparison must
// not end the group's loop (and with it the process), only leave the keys
// unranked. Nil stays nil.
func recovering(outranks OutranksFunc) OutranksFunc {
	if outranks == nil {
		return nil
	}
	return func(key, other string) (ok bool) {
		defer func() {
			if r := recover(); r != nil {
				klog.Background().Error(fmt.Errorf("panic: %v", r), "Outranks panicked; ranking neither key above the other",
					"key", key, "other", other)
				ok = false
			}
		}()
		return outranks(key, other)
	}
}

// validate names every field of the config that is wrong; the electors'
// own settings are checked by NewLeaderElector.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, msg := range validation.IsDNS1123Subdomain(c.Name) {
		bad("name (%q) must be a valid Lease name: %s", c.Name, msg)
	}
	for _, msg := range validation.IsValidLabelValue(c.Name) {
		bad("name (%q) must be a valid label value: %s", c.Name, msg)
	}
	if c.Namespace == "" {
		bad("namespace must not be empty")
	}
	if nilness.Is(c.Client) {
		bad("client must not be nil")
	}
	if c.Identity == "" {
		bad("identity must not be empty")
	}
	if strings.HasSuffix(c.Key, OwnerMark) {
		bad("key (%q) must not end in %q: the group marks owners' keys with it", c.Key, OwnerMark)
	}
	if len(c.Elections) == 0 {
		bad("elections must not be empty")
	}
	seen := map[string]bool{}
	memberLease := memberLeaseName(c.Name, c.Identity)
	for i, e := range c.Elections {
		switch {
		case e.Name == "":
			bad("elections[%d].name must not be empty", i)
		case seen[e.Name]:
			bad("elections[%d].name (%q) names another election too", i, e.Name)
		case e.Name == memberLease:
			bad("elections[%d].name (%q) is the name of this member's own Lease", i, e.Name)
		}
		seen[e.Name] = true
	}
	if c.MemberLeaseDuration < 0 || c.MemberLeaseDuration > 0 && c.MemberLeaseDuration < 2*time.Second {
		bad("memberLeaseDuration (%v) must be zero (twice leaseDuration) or at least 2s", c.MemberLeaseDuration)
	}
	if c.MemberLeaseDuration > le.MaxLeaseDuration {
		bad("memberLeaseDuration (%v) must be at most MaxLeaseDuration (%v)", c.MemberLeaseDuration, le.MaxLeaseDuration)
	}
	if c.Settle < 0 || c.Settle > le.MaxLeaseDuration {
		bad("settle (%v) must be between zero and MaxLeaseDuration (%v)", c.Settle, le.MaxLeaseDuration)
	}
	if nilness.Is(c.Clock) && c.Clock != nil {
		bad("clock must not be a typed nil")
	}
	if len(errs) > 0 {
		return fmt.Errorf("group %s: %w", c.Name, errors.Join(errs...))
	}
	return nil
}

// poke wakes run's loop to compute the assignment again.
func (g *member) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// sawHolder notes who leads an election, as its elector last saw.
func (g *member) sawHolder(election, identity string) {
	g.mu.Lock()
	g.holders[election] = identity
	g.mu.Unlock()
	g.poke()
}

// run is Run for a valid config.
func (g *member) run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("group", g.config.Name, "identity", g.config.Identity)
	ctx = klog.NewContext(ctx, logger)
	var wg sync.WaitGroup
	// The electors and the member watch outlive ctx while we leave.
	background := context.WithoutCancel(ctx)
	followCtx, stopFollowing := context.WithCancel(background)
	electorsCtx, stopElectors := context.WithCancel(background)
	defer wg.Wait()
	defer stopFollowing()
	announceCtx, stopAnnouncing := context.WithCancel(ctx)
	defer stopAnnouncing()

	wg.Go(func() { g.members.follow(followCtx) })
	var announcing sync.WaitGroup
	announcing.Go(func() { g.members.announce(announceCtx) })
	var electors sync.WaitGroup
	for _, c := range g.candidates {
		electors.Go(func() { c.elector.RunAndRejoin(electorsCtx) })
	}
	logger.Info("Joined the group", "elections", len(g.candidates))

	for ctx.Err() == nil {
		next := g.reconcile(logger)
		g.waitForChange(ctx, next)
	}

	// A renewal still in flight must not put our Lease back after we
	// delete it.
	stopAnnouncing()
	announcing.Wait()
	g.leave(ctx, logger)
	stopElectors()
	electors.Wait()
	logger.Info("Left the group")
}

// waitForChange waits for a change of the view, for next (if set), or for
// ctx to end.
func (g *member) waitForChange(ctx context.Context, next time.Time) {
	var timer <-chan time.Time
	if !next.IsZero() {
		t := g.clock.NewTimer(max(next.Sub(g.clock.Now()), 0))
		defer t.Stop()
		timer = t.C()
	}
	select {
	case <-ctx.Done():
	case <-g.wake:
	case <-timer:
	}
}

// leave withdraws our member Lease and drops every mark, then waits for
// the other members to ask for the elections we lead, and hands each over,
// for at most Settle plus the time a handoff may take (the holder's next
// renewal, its offer: RetryPeriod, StopTimeout, RenewDeadline), unless no
// other member is left to ask.
func (g *member) leave(ctx context.Context, logger klog.Logger) {
	g.leaving.Store(true)
	g.reconcile(logger)
	g.members.withdraw(ctx)
	wait := durations.Add(g.config.Settle, g.handoffTime())
	deadline := g.clock.Now().Add(wait)
	for {
		others, _ := g.members.alive(g.clock.Now())
		led := g.led()
		if len(led) == 0 || len(others) == 0 {
			logger.Info("Leaving the group", "handingOver", len(led), "others", len(others))
			return
		}
		if !g.clock.Now().Before(deadline) {
			logger.Info("Leaving the group before every election was asked for; releasing the rest", "left", led)
			return
		}
		// The electors tell us of each handoff through OnNewLeader; the
		// period bounds the wait should a call come late.
		g.waitForChange(context.Background(), minTime(deadline, g.clock.Now().Add(g.config.RetryPeriod)))
	}
}

// handoffTime is the longest a handoff may take: the holder's next
// renewal and its offer (RetryPeriod each), its work stopping (StopTimeout,
// or RenewDeadline where that is zero), and its write (RenewDeadline). A
// StopTimeout of "as long as it takes" must not keep us waiting for ever:
// it is at most MaxLeaseDuration.
func (g *member) handoffTime() time.Duration {
	stop := g.config.StopTimeout
	if stop == 0 {
		stop = g.config.RenewDeadline
	}
	return min(durations.Add(g.config.RetryPeriod, g.config.RetryPeriod, max(stop, 0), g.config.RenewDeadline), le.MaxLeaseDuration)
}

// led returns the elections we lead, as their electors say.
func (g *member) led() []string {
	var out []string
	for _, c := range g.candidates {
		if c.elector.IsLeader() || c.elector.GetLeader() == g.config.Identity {
			out = append(out, c.name)
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// currentView returns the members alive in our view (us among them unless
// we are leaving), who leads each election as far as we know, and when the
// first of the others' Leases runs out.
func (g *member) currentView(now time.Time) (view []Member, holders map[string]string, expiry time.Time) {
	view, expiry = g.members.alive(now)
	if !g.leaving.Load() {
		view = append(view, Member{Identity: g.config.Identity, Key: g.config.Key})
	}
	g.mu.Lock()
	holders = maps.Clone(g.holders)
	g.mu.Unlock()
	return view, holders, expiry
}

// assignment returns the owner of each election by our view now, or nil
// while we do not see the members (our view may be missing some). The
// electors call it; it reads only what is safe to share.
func (g *member) assignment(now time.Time) map[string]string {
	if !g.members.seeing() {
		return nil
	}
	view, holders, _ := g.currentView(now)
	return Assign(g.names, view, holders, g.config.Outranks)
}

// reconcile computes the assignment from our view and sets each
// candidate's key: unmarked at once where we do not own the election,
// marked where we do once the view has settled. It returns when it must run
// again without a change: when the view settles, or a member's Lease runs
// out.
func (g *member) reconcile(logger klog.Logger) time.Time {
	now := g.clock.Now()
	if !g.members.seeing() && !g.leaving.Load() {
		// Without sight of the members, the others' Leases seem to run
		// out and we would claim their elections: ask for nothing until
		// we see them again and that view has settled. Dropping our marks
		// moves nothing by itself: only an owner asks.
		for _, c := range g.candidates {
			g.setKey(logger, c, false)
		}
		g.view = ""
		return time.Time{}
	}
	view, holders, expiry := g.currentView(now)
	if key := viewKey(view, holders); key != g.view {
		g.view, g.stableSince = key, now
		logger.V(4).Info("Our view of the group changed", "view", key)
	}
	owner := Assign(g.names, view, holders, g.config.Outranks)

	settledAt := g.stableSince.Add(g.config.Settle)
	settled := !now.Before(settledAt)
	// An election that a member with a lower key still leads, once the
	// view has stayed the same long enough for its owner to have taken it,
	// has an owner that does not ask (it lost sight of the others, or runs
	// no electors): we ask for it too, so that no lower key leads while a
	// higher key is there to. We keep asking until we lead it, whatever
	// the view does meanwhile.
	rescueAt := settledAt.Add(g.handoffTime())
	rescue := !now.Before(rescueAt) && !g.leaving.Load()
	keys := make(map[string]string, len(view))
	for _, m := range view {
		keys[m.Identity] = m.Key
	}
	var waitUntil time.Time
	// A time already past must not wake us at once, again and again.
	wake := func(t time.Time) {
		if t.After(now) && (waitUntil.IsZero() || t.Before(waitUntil)) {
			waitUntil = t
		}
	}
	for _, c := range g.candidates {
		mine := owner[c.name] == g.config.Identity && !g.leaving.Load()
		holderKey, outranked := keys[holders[c.name]]
		outranked = outranked && holders[c.name] != g.config.Identity && !g.leaving.Load() &&
			g.config.Outranks != nil && holderKey != g.config.Key && g.config.Outranks(g.config.Key, holderKey)
		switch {
		case mine && settled, !mine && outranked && (rescue || g.marked(c)):
			g.setKey(logger, c, true)
		case mine:
			if !g.marked(c) {
				wake(settledAt)
			}
		default:
			g.setKey(logger, c, false)
			if outranked {
				wake(rescueAt)
			}
		}
	}
	next := expiry
	if !waitUntil.IsZero() && (next.IsZero() || waitUntil.Before(next)) {
		next = waitUntil
	}
	return next
}

func (g *member) marked(c *candidate) bool {
	_, owner := splitKey(c.currentKey())
	return owner
}

// setKey marks or unmarks the candidate's key.
func (g *member) setKey(logger klog.Logger, c *candidate, owner bool) {
	if g.marked(c) == owner {
		return
	}
	key := rankedKey(g.config.Key, owner)
	c.key.Store(&key)
	if owner {
		logger.Info("This member owns the election now; asking for it", "election", c.name)
	} else {
		logger.Info("This member no longer owns the election; giving it up when asked", "election", c.name)
	}
}

// viewKey names a view of the group: its members, whatever their order,
// and who leads each election.
func viewKey(members []Member, holders map[string]string) string {
	parts := make([]string, 0, len(members)+len(holders))
	for _, m := range members {
		parts = append(parts, "member "+m.Identity+"="+m.Key)
	}
	for e, id := range holders {
		parts = append(parts, "election "+e+"="+id)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
