package fake

// This file is added to a rewritten copy of controller-runtime's
// pkg/leaderelection/fake, whose lock then implements this library's
// k8sresourcelock.Interface: the lock is the Lock of an election of ours.

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/client-go/rest"
	crleaderelection "sigs.k8s.io/controller-runtime/pkg/leaderelection"

	"github.com/k8sleaderelection/k8sleaderelection"
)

func TestControllerRuntimeFakeLockLeadsAnElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock, err := NewResourceLock(&rest.Config{}, nil, crleaderelection.Options{})
		if err != nil {
			t.Fatalf("NewResourceLock: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		terms := 0
		le, err := k8sleaderelection.NewLeaderElector(k8sleaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: 15 * time.Second,
			RenewDeadline: 10 * time.Second,
			RetryPeriod:   2 * time.Second,
			Callbacks: k8sleaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					terms++
					// Lead through several renewals, then stop.
					time.Sleep(30 * time.Second)
					cancel()
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			t.Fatalf("NewLeaderElector with controller-runtime's fake lock: %v", err)
		}
		done := make(chan struct{})
		go func() { le.Run(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			t.Fatal("Run with controller-runtime's fake lock did not return 5m after the election began")
		}
		if terms != 1 {
			t.Fatalf("led %d times with controller-runtime's fake lock, want 1", terms)
		}
		// Run has returned, so the record is the last one we wrote.
		record, _, err := lock.Get(context.Background())
		if err != nil {
			t.Fatalf("Get after Run: %v", err)
		}
		if record.HolderIdentity != lock.Identity() || record.HolderKey != "" || record.LeaseDurationSeconds != 15 {
			t.Fatalf("record we wrote: holder %q, key %q, lease %ds; want held by %q with the empty key of a lock without Key, for our 15s lease", record.HolderIdentity, record.HolderKey, record.LeaseDurationSeconds, lock.Identity())
		}
	})
}

func TestControllerRuntimeFakeLockBlockedNeverLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock, err := NewResourceLock(&rest.Config{}, nil, crleaderelection.Options{})
		if err != nil {
			t.Fatalf("NewResourceLock: %v", err)
		}
		lock.(ControllableResourceLockInterface).BlockLeaderElection()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		le, err := k8sleaderelection.NewLeaderElector(k8sleaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: 15 * time.Second,
			RenewDeadline: 10 * time.Second,
			RetryPeriod:   2 * time.Second,
			Callbacks: k8sleaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { t.Error("led while the fake lock blocks every write") },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			t.Fatalf("NewLeaderElector: %v", err)
		}
		le.Run(ctx)
		if le.IsLeader() {
			t.Fatal("leader after Run returned on a blocked lock")
		}
	})
}
