package crelection

import (
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
