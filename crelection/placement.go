package crelection

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// needsLeaderElection tells, by the rule controller-runtime's manager sorts
// runnables with, whether r may run only on the leader. Caches and webhook
// servers run everywhere whatever they say; a runnable that does not say
// (no NeedLeaderElection method) needs leader election. The cases go in the
// manager's order, since a runnable may match more than one.
func needsLeaderElection(r manager.Runnable) bool {
	switch r := r.(type) {
	case *manager.Server:
		return r.NeedLeaderElection()
	case interface{ GetCache() cache.Cache }:
		return false
	case webhook.Server:
		return false
	case manager.LeaderElectionRunnable:
		return r.NeedLeaderElection()
	default:
		return true
	}
}

// warmer is a runnable that can prepare before it leads: controller-runtime
// calls Warmup on every replica as the manager starts (a controller starts
// its sources then, when warmup is enabled), and Start only on the leader.
type warmer interface {
	Warmup(context.Context) error
}

// warmupOnly carries a kept runnable's Warmup to the inner manager, which
// calls Warmup as it would for the runnable itself, and starts nothing
// else: its Start returns at once and it needs no leader election.
type warmupOnly struct {
	w warmer
}

// Warmup calls the kept runnable's Warmup.
func (w warmupOnly) Warmup(ctx context.Context) error { return w.w.Warmup(ctx) }

// Start does nothing: the kept runnable starts when this manager leads.
func (w warmupOnly) Start(context.Context) error { return nil }

// NeedLeaderElection reports false, so that the manager runs Warmup on every
// replica.
func (w warmupOnly) NeedLeaderElection() bool { return false }
