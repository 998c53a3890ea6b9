package k8sleaderelection

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

const (
	testNamespace = "istio-system"
	testLockName  = "istio-leader"

	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// lockKinds are the lock types every election test runs against.
var lockKinds = []string{
	rl.LeasesResourceLock, rl.ConfigMapsResourceLock, rl.EndpointsResourceLock,
	rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock,
}

func newTestLock(t *testing.T, cs *fakekube.Clientset, kind, identity, key string) rl.Interface {
	t.Helper()
	lock, err := rl.New(kind, testNamespace, testLockName, cs.CoreV1(), cs.CoordinationV1(),
		rl.ResourceLockConfig{Identity: identity, Key: key})
	if err != nil {
		t.Fatalf("new %s lock: %v", kind, err)
	}
	return lock
}

// testConfig is a valid config with callbacks that do nothing.
func testConfig(lock rl.Interface) LeaderElectionConfig {
	return LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		Callbacks: LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	}
}

func newTestElector(t *testing.T, lec LeaderElectionConfig, clk clock.WithDelayedExecution) *LeaderElector {
	t.Helper()
	le, err := NewLeaderElector(lec)
	if err != nil {
		t.Fatalf("NewLeaderElector: %v", err)
	}
	if clk != nil {
		le.clock = clk
	}
	return le
}

// readRecord reads the lock's record as a bystander would.
func readRecord(t *testing.T, cs *fakekube.Clientset, kind string) rl.LeaderElectionRecord {
	t.Helper()
	rec, _, err := newTestLock(t, cs, kind, "bystander", "").Get(context.Background())
	if err != nil {
		t.Fatalf("read %s lock: %v", kind, err)
	}
	return *rec
}

// writeRecord makes the lock hold rec, as another candidate would: reading it
// first and writing over what it read, or creating it.
func writeRecord(t *testing.T, cs *fakekube.Clientset, kind string, rec rl.LeaderElectionRecord) {
	t.Helper()
	lock := newTestLock(t, cs, kind, rec.HolderIdentity, rec.HolderKey)
	ctx := context.Background()
	if _, _, err := lock.Get(ctx); err != nil {
		if err := lock.Create(ctx, rec); err != nil {
			t.Fatalf("create %s lock: %v", kind, err)
		}
		return
	}
	if err := lock.Update(ctx, rec); err != nil {
		t.Fatalf("update %s lock: %v", kind, err)
	}
}

// objectsPerLock is how many objects a lock kind keeps, and so how many
// requests one read or one write of it costs: a MultiLock has two.
func objectsPerLock(kind string) int {
	if kind == rl.ConfigMapsLeasesResourceLock || kind == rl.EndpointsLeasesResourceLock {
		return 2
	}
	return 1
}

var names atomic.Int64

// uniqueName tells apart the metrics of repeated runs of one test, which all
// report to the one provider a process can have.
func uniqueName() string { return fmt.Sprint(names.Add(1)) }
