package crelection

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
)

// leader is a probe that says it needs leader election.
type leader struct{ *probe }

func (leader) NeedLeaderElection() bool { return true }

// cacheLike looks like a cache to the manager, though it asks for leader
// election.
type cacheLike struct{ *probe }

func (cacheLike) NeedLeaderElection() bool { return true }
func (cacheLike) GetCache() cache.Cache    { return syncedCache{} }

// syncedCache is a cache that has always synced.
type syncedCache struct{ cache.Cache }

func (syncedCache) WaitForCacheSync(context.Context) bool { return true }

// webhookLike looks like a webhook server to the manager, though it asks for
// leader election.
type webhookLike struct {
	*probe
	webhook.Server
}

func (w webhookLike) Start(ctx context.Context) error { return w.probe.Start(ctx) }
func (webhookLike) NeedLeaderElection() bool          { return true }

// kinds are runnables of every kind the manager tells apart, made afresh.
var kinds = []struct {
	name  string
	make  func(*probe) manager.Runnable
	needs bool
}{
	{"plain", func(p *probe) manager.Runnable { return p }, true},
	{"says it needs", func(p *probe) manager.Runnable { return leader{p} }, true},
	{"says it does not", func(p *probe) manager.Runnable { return everywhere{p} }, false},
	{"with a warmup", func(p *probe) manager.Runnable { return warming{probe: p, warmed: make(chan struct{})} }, true},
	{"cache", func(p *probe) manager.Runnable { return cacheLike{p} }, false},
	{"webhook server", func(p *probe) manager.Runnable { return webhookLike{probe: p} }, false},
}

func TestNeedsLeaderElection(t *testing.T) {
	for _, k := range kinds {
		if got := needsLeaderElection(k.make(newProbe(k.name, nil))); got != k.needs {
			t.Errorf("%s: needsLeaderElection = %v; want %v", k.name, got, k.needs)
		}
	}
	for _, onlyLeader := range []bool{false, true} {
		if got := needsLeaderElection(&manager.Server{OnlyServeWhenLeader: onlyLeader}); got != onlyLeader {
			t.Errorf("manager.Server with OnlyServeWhenLeader %v: needsLeaderElection = %v", onlyLeader, got)
		}
	}
}

// neverLeads is a lock for controller-runtime's own elector that can never
// be read, so that its manager never leads.
type neverLeads struct{}

func (neverLeads) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	return nil, nil, errors.New("unreadable")
}
func (neverLeads) Create(context.Context, resourcelock.LeaderElectionRecord) error {
	return errors.New("unwritable")
}
func (neverLeads) Update(context.Context, resourcelock.LeaderElectionRecord) error {
	return errors.New("unwritable")
}
func (neverLeads) RecordEvent(string) {}
func (neverLeads) Identity() string   { return "never" }
func (neverLeads) Describe() string   { return "never" }

// startedWhileFollowing adds one runnable of each kind to mgr, runs it while
// it does not lead, and reports which started.
func startedWhileFollowing(t *testing.T, mgr manager.Manager) map[string]bool {
	probes := map[string]*probe{}
	for _, k := range kinds {
		p := newProbe(k.name, nil)
		probes[k.name] = p
		if err := mgr.Add(k.make(p)); err != nil {
			t.Fatalf("Add %s: %v", k.name, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := start(ctx, mgr)
	synctest.Wait()
	started := map[string]bool{}
	for name, p := range probes {
		started[name] = p.isStarted()
	}
	cancel()
	<-done
	return started
}

// The rule is controller-runtime's: a manager of ours that does not lead
// starts exactly the runnables that controller-runtime's own manager starts
// while it does not lead.
func TestPlacementMatchesControllerRuntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		theirs, err := manager.New(unreachable, manager.Options{
			Logger:                              logr.Discard(),
			Metrics:                             metricsserver.Options{BindAddress: "0"},
			LeaderElection:                      true,
			LeaderElectionResourceLockInterface: neverLeads{},
		})
		if err != nil {
			t.Fatal(err)
		}
		e := electiontest.New("ns", "lock")
		if err := e.Hold(t.Context(), "other", "other"); err != nil {
			t.Fatal(err)
		}
		ours := newTestManager(t, electionConfig(e, "rev-1", "rev-1"))

		startedTheirs := startedWhileFollowing(t, theirs)
		startedOurs := startedWhileFollowing(t, ours)
		for _, k := range kinds {
			if startedTheirs[k.name] != !k.needs {
				t.Errorf("%s: controller-runtime's manager started it while following: %v; the table says needs leader election: %v",
					k.name, startedTheirs[k.name], k.needs)
			}
			if startedOurs[k.name] != startedTheirs[k.name] {
				t.Errorf("%s: started while following by ours %v, by controller-runtime's %v", k.name, startedOurs[k.name], startedTheirs[k.name])
			}
		}
	})
}
