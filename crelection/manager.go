package crelection

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/k8sleaderelection/k8sleaderelection"
)

// ErrLeadershipLost is what the manager's Start returns when the election
// ended this manager's term: a candidate with a higher key took over, or the
// lock could not be renewed in time, or another candidate took it. The
// runnables that need leader election have been stopped by then; the process
// should exit, and start again as a candidate if it is to stand by. Check it
// with errors.Is.
var ErrLeadershipLost = errors.New("leader election lost")

// errStartedTwice is what a second Start returns. The inner manager would
// refuse it too, but only after the campaign had taken the second call's
// context for its own.
var errStartedTwice = errors.New("crelection: Start was called a second time; a manager starts once, and the first Start goes on as it was")

// NewManager returns a controller-runtime manager whose runnables that need
// leader election run only while this replica leads the election that
// election configures, a prioritized one.
//
// config and options are as for manager.New, with controller-runtime's own
// leader election left off: every option of it (LeaderElection,
// LeaderElectionResourceLockInterface, LeaderElectionID, LeaseDuration, and
// the rest) is rejected, since the election config says all of that. In
// election, Callbacks.OnStartedLeading must be nil (the manager starts its
// runnables then); OnStoppedLeading and OnNewLeader, if set, are called as
// the elector documents; WaitForReady, if set, is asked once the runnables'
// warmups have returned (see Add). A WatchDog, if set, is tied to the
// elector, so that it can back a health check (AddHealthzCheck with
// WatchDog.Check).
//
// opts add to that: WithFencing makes the manager's writes carry its term.
//
// The error names every problem with the options, the election config and
// opts at once.
func NewManager(config *rest.Config, options manager.Options, election k8sleaderelection.LeaderElectionConfig, opts ...Option) (manager.Manager, error) {
	s, problems := settingsOf(opts)
	problems = append(problems, checkOptions(&options)...)
	problems = append(problems, checkElection(&election)...)
	problems = append(problems, checkGracePeriod(&options, &election)...)
	problems = append(problems, checkFencing(s, &options, &election)...)
	// Beyond the ceiling a StopTimeout means "as long as it takes" all the
	// same, and the elector's sums with it stay far from overflowing.
	election.StopTimeout = min(election.StopTimeout, maxStopTimeout)
	t := newTerm()
	warm := newWarmups()
	election.WaitForReady = warm.waitForReady(election.WaitForReady)
	election.Callbacks.OnStartedLeading = t.lead
	if election.Callbacks.OnStoppedLeading == nil {
		// Optional here: the elector requires one, the manager needs none.
		election.Callbacks.OnStoppedLeading = func() {}
	}
	elector, err := k8sleaderelection.NewLeaderElector(election)
	if len(problems) > 0 || err != nil {
		return nil, &invalidInput{problems: problems, election: err}
	}

	inner, err := manager.New(fencedConfig(config, s, t), options)
	if err != nil {
		return nil, fmt.Errorf("crelection: %w", err)
	}
	if election.WatchDog != nil {
		election.WatchDog.SetLeaderElection(elector)
	}
	var clk clock.Clock = clock.RealClock{}
	if election.Clock != nil {
		clk = election.Clock
	}
	c := &campaign{
		elector:     elector,
		term:        t,
		logger:      inner.GetLogger().WithName("leaderelection"),
		clock:       clk,
		stopTimeout: stopTimeout(&election),
		done:        make(chan struct{}),
	}
	if err := inner.Add(c); err != nil {
		return nil, fmt.Errorf("crelection: add the election to the manager: %w", err)
	}
	return &electedManager{Manager: inner, term: t, warmups: warm, campaign: c}, nil
}

// electedManager is a manager whose runnables that need leader election
// wait for its term as leader. Everything else is the inner manager's,
// started and stopped by it as usual.
type electedManager struct {
	manager.Manager
	term     *term
	warmups  *warmups
	campaign *campaign
	started  atomic.Bool
}

// Start starts the manager, and with it the election, which ends as soon
// as ctx does (and does not begin if ctx is already done). It returns only
// once the term is settled: the runnables that need leader election have
// returned and the lock is released (with ReleaseOnCancel) or left to
// expire, or the wait for them has run out (StopTimeout after the elector
// gave up on them). A manager starts once: a second Start returns an error
// at once and leaves the first alone.
func (m *electedManager) Start(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errStartedTwice
	}
	m.campaign.startingWith(ctx)
	err := m.Manager.Start(ctx)
	// The inner manager returns once its grace period is over, whether or
	// not the election has ended; a process that exits when Start returns
	// must not cut the term short.
	<-m.campaign.settled()
	return err
}

// Add keeps r for this manager's term as leader if it needs leader election
// (by controller-runtime's rule: caches and webhook servers never do, and a
// runnable that does not say does), and gives anything else to the inner
// manager. A runnable added while leading starts at once, in the term; one
// added once the term is over is refused. A kept runnable's Warmup, if it
// has one, still runs on every replica as the manager starts, and this
// replica preempts a leader with a lower key only once every such Warmup
// has returned (a controller's, with warmup enabled, once its sources have
// synced), so that it takes over warm.
func (m *electedManager) Add(r manager.Runnable) error {
	if isNil(r) {
		return fmt.Errorf("crelection: Add: the runnable is a nil %T", r)
	}
	if !needsLeaderElection(r) {
		return m.Manager.Add(r)
	}
	if m.term.ended.Err() != nil {
		return errTermOver
	}
	if w, ok := r.(warmer); ok {
		warmup := m.warmups.of(w, m.term.ended)
		if err := m.Manager.Add(warmup); err != nil {
			warmup.done(nil) // its Warmup will never be called
			return err
		}
	}
	return m.term.add(r)
}

// Elected is closed once this manager leads and has started its runnables
// that need leader election.
func (m *electedManager) Elected() <-chan struct{} { return m.term.elected }
