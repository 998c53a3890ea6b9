package k8sleaderelection

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func TestHealthzAdaptor(t *testing.T) {
	const timeout = 20 * time.Second
	req := httptest.NewRequest("GET", "/healthz", nil)
	adaptor := NewLeaderHealthzAdaptor(timeout)
	if adaptor.Name() != "leaderElection" {
		t.Fatalf("Name = %q", adaptor.Name())
	}
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check before SetLeaderElection: %v", err)
	}

	cs := fakekube.New()
	clk := clocktesting.NewFakeClock(time.Now())
	lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
	lec.Name = "healthz"
	le := newTestElector(t, lec, clk)
	adaptor.SetLeaderElection(le)
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check of a follower: %v", err)
	}

	if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(clk.Now())
	clk.Step(leaseDuration + timeout)
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check at exactly LeaseDuration+timeout without renewal: %v", err)
	}
	clk.Step(time.Millisecond)
	err := adaptor.Check(req)
	if err == nil || err.Error() != "failed election to renew leadership on lease healthz" {
		t.Fatalf("Check of a stuck leader = %v, want client-go's error naming the election", err)
	}
	if v, err := le.tryAcquireOrRenew(context.Background(), true); err != nil || !v.writes() {
		t.Fatalf("renew: %v %v", v, err)
	}
	le.markRenewed(clk.Now())
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check after a renewal: %v", err)
	}
	clk.Step(time.Hour)
	le.stopLeading()
	if err := adaptor.Check(req); err == nil {
		t.Fatal("Check after leadership ended, with the lock still naming us an hour after our last renewal: healthy, want an error as client-go's")
	}
	writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 1))
	if _, err := le.read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := adaptor.Check(req); err != nil {
		t.Fatalf("Check after another took the lock: %v", err)
	}
}

func TestHealthzAdaptorConcurrentUse(t *testing.T) {
	adaptor := NewLeaderHealthzAdaptor(time.Second)
	le := newTestElector(t, testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", "")), nil)
	req := httptest.NewRequest("GET", "/healthz", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_ = adaptor.Check(req)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			adaptor.SetLeaderElection(le)
			le.startLeading(time.Now())
			le.stopLeading()
		}
	})
	wg.Wait()
}

// memoryLock is a lock kept in memory, as cert-manager's liveness test
// fakes one: no resourceVersion, no watch, and an Update that can be made to
// fail. Unlike cert-manager's, a failed Update stores nothing, so that the
// record a candidate reads stops changing when the updates fail and the
// test does not depend on the jitter between attempts.
type memoryLock struct {
	identity string

	mu          sync.Mutex
	record      *rl.LeaderElectionRecord
	updateError error
}

func (l *memoryLock) Get(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.record == nil {
		return nil, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "leases"}, "memory")
	}
	record := *l.record
	raw, err := json.Marshal(record)
	return &record, raw, err
}

func (l *memoryLock) Create(_ context.Context, record rl.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record = &record
	return nil
}

func (l *memoryLock) Update(_ context.Context, record rl.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.updateError != nil {
		return l.updateError
	}
	l.record = &record
	return nil
}

func (l *memoryLock) failUpdates(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updateError = err
}

func (l *memoryLock) RecordEvent(string) {}
func (l *memoryLock) Identity() string   { return l.identity }
func (l *memoryLock) Describe() string   { return "memory/lock" }

// Timings of cert-manager's liveness test, and its adaptor's timeout.
const (
	livenessLeaseDuration = 500 * time.Millisecond
	livenessRenewDeadline = 400 * time.Millisecond
	livenessRetryPeriod   = 300 * time.Millisecond
)

// livenessConfig is the config cert-manager's liveness test runs with.
func livenessConfig(lock rl.Interface, adaptor *HealthzAdaptor) LeaderElectionConfig {
	return LeaderElectionConfig{
		Lock:          lock,
		Name:          "cert-manager-controller",
		LeaseDuration: livenessLeaseDuration,
		RenewDeadline: livenessRenewDeadline,
		RetryPeriod:   livenessRetryPeriod,
		WatchDog:      adaptor,
		Callbacks: LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	}
}

const failedElection = "failed election to renew leadership on lease cert-manager-controller"

// checkStays calls the adaptor's Check every RetryPeriod/3 for d of
// virtual time and fails at the first error.
func checkStays(t *testing.T, adaptor *HealthzAdaptor, d time.Duration, what string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/livez/leaderElection", nil)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(livenessRetryPeriod / 3) {
		if err := adaptor.Check(req); err != nil {
			t.Fatalf("%s: Check = %v after %v, want healthy", what, err, d-time.Until(end))
		}
	}
}

// checkFailsWithin calls the adaptor's Check every RetryPeriod/3 until it
// fails, and fails the test if it has not by d of virtual time, or fails
// with another message than upstream's.
func checkFailsWithin(t *testing.T, adaptor *HealthzAdaptor, d time.Duration, what string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/livez/leaderElection", nil)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(livenessRetryPeriod / 3) {
		if err := adaptor.Check(req); err != nil {
			if err.Error() != failedElection {
				t.Fatalf("%s: Check = %q, want upstream's %q", what, err, failedElection)
			}
			return
		}
	}
	t.Fatalf("%s: Check still healthy after %v", what, d)
}

// TestHealthzFailsAfterRenewalsFailAndRunReturns is cert-manager's
// fail-delayed-update-error: the elector leads, its updates start to fail,
// Run returns at RenewDeadline while the process lives on, and the check
// must fail once the lease it last held is LeaseDuration (plus the
// adaptor's timeout) old, with upstream's message, so that the kubelet
// restarts the process.
func TestHealthzFailsAfterRenewalsFailAndRunReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memoryLock{identity: "local-node"}
		adaptor := NewLeaderHealthzAdaptor(0)
		lec := livenessConfig(lock, adaptor)
		lec.Callbacks.OnNewLeader = func(string) { lock.failUpdates(errors.New("simulated-delayed-update-error")) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			RunOrDie(t.Context(), lec)
		}()
		receive(t, done, "Run to return once its renewals failed for RenewDeadline")
		checkFailsWithin(t, adaptor, 2*livenessLeaseDuration, "after Run returned")
	})
}

// TestHealthzFailsWhileTheLockNamesUsAndCannotBeRenewed is cert-manager's
// fail-immediate-update-error: the lock names this replica from before,
// and every update of it fails, so the replica never leads again while the
// lock, as it last saw it, names it.
func TestHealthzFailsWhileTheLockNamesUsAndCannotBeRenewed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memoryLock{identity: "local-node", record: &rl.LeaderElectionRecord{HolderIdentity: "local-node"}}
		lock.failUpdates(errors.New("simulated-update-error"))
		adaptor := NewLeaderHealthzAdaptor(0)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			RunOrDie(ctx, livenessConfig(lock, adaptor))
		}()
		checkFailsWithin(t, adaptor, 3*time.Second, "while updates fail")
		cancel()
		receive(t, done, "Run to return")
	})
}

// TestHealthzStaysHealthyForAFollowerAndALeader: a follower of a holder
// that renews, and the leader itself, stay healthy for many leases.
func TestHealthzStaysHealthyForAFollowerAndALeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memoryLock{identity: "local-node", record: &rl.LeaderElectionRecord{HolderIdentity: "remote-node", LeaseDurationSeconds: 1}}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		wg.Go(func() { // the remote leader renews
			for ctx.Err() == nil {
				time.Sleep(livenessRetryPeriod)
				lock.mu.Lock()
				if lock.record != nil && lock.record.HolderIdentity == "remote-node" {
					lock.record.RenewTime = metav1.NewTime(time.Now())
				}
				lock.mu.Unlock()
			}
		})
		adaptor := NewLeaderHealthzAdaptor(0)
		done := make(chan struct{})
		wg.Go(func() {
			defer close(done)
			RunOrDie(ctx, livenessConfig(lock, adaptor))
		})
		checkStays(t, adaptor, 10*livenessLeaseDuration, "a follower")

		lock.mu.Lock()
		lock.record = &rl.LeaderElectionRecord{LeaseDurationSeconds: 1} // the remote leader released it
		lock.mu.Unlock()
		for end := time.Now().Add(10 * livenessLeaseDuration); !adaptor.le.IsLeader() && time.Now().Before(end); {
			time.Sleep(livenessRetryPeriod / 3)
		}
		if !adaptor.le.IsLeader() {
			t.Fatalf("the replica did not take the free lock; leader %q", adaptor.le.GetLeader())
		}
		checkStays(t, adaptor, 10*livenessLeaseDuration, "the leader")
		cancel()
		receive(t, done, "Run to return")
	})
}

// TestHealthzFailsWhileWorkOutlivesItsTerm: the lock is taken from us and
// Run returns without waiting for OnStartedLeading, which goes on running.
// Once our lease has run out by LeaseDuration plus the timeout since our
// last renewal, another may lead beside our work: the check fails, and
// passes again once the work has returned.
func TestHealthzFailsWhileWorkOutlivesItsTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memoryLock{identity: "local-node"}
		adaptor := NewLeaderHealthzAdaptor(0)
		lec := livenessConfig(lock, adaptor)
		leading, release := make(chan struct{}), make(chan struct{})
		lec.Callbacks.OnStartedLeading = func(context.Context) {
			close(leading)
			<-release // ignores its context
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			RunOrDie(t.Context(), lec)
		}()
		receive(t, leading, "the replica to lead")
		lock.mu.Lock()
		lock.record = &rl.LeaderElectionRecord{HolderIdentity: "remote-node", HolderKey: "higher", LeaseDurationSeconds: 1, LeaderTransitions: 5}
		lock.mu.Unlock()
		receive(t, done, "Run to return once the lock was taken")
		checkStays(t, adaptor, livenessLeaseDuration-livenessRetryPeriod, "just after the term ended")
		checkFailsWithin(t, adaptor, 2*livenessLeaseDuration, "while the work outlives its term")
		close(release)
		synctest.Wait()
		checkStays(t, adaptor, livenessLeaseDuration, "once the work returned")
	})
}

// TestHealthzAtTheRenewalPace: a watching leader renews only every 5s at
// 15s/10s/2s, and the check stays healthy all along, even with no timeout
// beyond the lease. Once its renewals fail, it fails as client-go's does:
// not before LeaseDuration has passed since the last successful renewal,
// and at once after.
func TestHealthzAtTheRenewalPace(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		lock := &pacedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", "")}
		adaptor := NewLeaderHealthzAdaptor(0)
		lec := testConfig(lock)
		lec.Name = "cert-manager-controller"
		lec.WatchDog = adaptor
		started := make(chan struct{})
		lec.Callbacks.OnStartedLeading = func(context.Context) { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			RunOrDie(t.Context(), lec)
		}()
		receive(t, started, "a to lead")
		req := httptest.NewRequest("GET", "/livez/leaderElection", nil)
		for range 3 * leaseDuration / time.Second {
			if err := adaptor.Check(req); err != nil {
				t.Fatalf("Check = %v while the leader renews every %v", err, corePeriod)
			}
			time.Sleep(time.Second)
		}
		synctest.Wait()
		lock.failAfterLastFor(time.Hour)
		lastRenewal := lock.lastRequest()
		receive(t, done, "Run to return once its renewals failed for RenewDeadline")
		time.Sleep(time.Until(lastRenewal.Add(leaseDuration)) - time.Millisecond)
		if err := adaptor.Check(req); err != nil {
			t.Fatalf("Check = %v %v after the last renewal; want healthy until LeaseDuration (%v)", err, time.Since(lastRenewal), leaseDuration)
		}
		time.Sleep(2 * time.Millisecond)
		if err := adaptor.Check(req); err == nil || err.Error() != failedElection {
			t.Fatalf("Check = %v %v after the last renewal; want upstream's %q", err, time.Since(lastRenewal), failedElection)
		}
	})
}
