// Package istiokeyed is written against Istio's fork the way its callers
// use it: the lock New returns is asked for its key, and a lock of the
// caller's own carries a key as the fork's Interface requires. The callers
// test builds it with the imports swapped for this library's.
package istiokeyed

import (
	"context"

	"k8s.io/client-go/kubernetes"

	"istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection"
	"istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection/k8sresourcelock"
)

// Key returns the key of the lock New builds.
func Key(client kubernetes.Interface, revision string) (string, error) {
	lock, err := k8sresourcelock.New(k8sresourcelock.LeasesResourceLock, "istio-system", "istio-leader",
		client.CoreV1(), client.CoordinationV1(),
		k8sresourcelock.ResourceLockConfig{Identity: "istiod-1", Key: revision})
	if err != nil {
		return "", err
	}
	return lock.Key(), nil
}

// revisionLock is a caller's own lock with a key, wrapping one of the
// fork's.
type revisionLock struct {
	k8sresourcelock.Interface
	revision string
}

func (l *revisionLock) Key() string { return l.revision }

// Config runs an election on a lock of the caller's own.
func Config(inner k8sresourcelock.Interface, revision string) k8sleaderelection.LeaderElectionConfig {
	var lock k8sresourcelock.Interface = &revisionLock{Interface: inner, revision: revision}
	return k8sleaderelection.LeaderElectionConfig{
		Lock: lock,
		Callbacks: k8sleaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
		KeyComparison: func(existing string) bool { return existing != revision },
	}
}
