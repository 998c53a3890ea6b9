package k8sleaderelection

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestFollowerSendsNothingWhileNothingChanges: a watching follower reads the
// lock once, opens one watch, and then sends no request at all while the
// leader renews for ten minutes.
func TestFollowerSendsNothingWhileNothingChanges(t *testing.T) {
	eachFakeModeAndCase(t, byDefault, lockKinds, itself, func(t *testing.T, fk fakeClientset, _ followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, kind, "a", "")), nil)
		a.leading(t)
		follower := &countingLock{Interface: newTestLock(t, cs, kind, "b", "")}
		b := runCandidate(t, ctx, testConfig(follower), nil)
		time.Sleep(10 * time.Minute)
		gets, writes, watches := follower.requests()
		if gets != 1 || writes != 0 || watches != 1 {
			t.Fatalf("follower sent %d reads, %d writes, %d watches in ten minutes; want 1, 0, 1", gets, writes, watches)
		}
		if b.le.GetLeader() != "a" {
			t.Fatalf("follower sees leader %q, want a", b.le.GetLeader())
		}
	})
}

// TestReleasedLockIsTakenAtOnce: a watching follower takes a released lock
// at the instant the release lands; a polling one within one jittered
// RetryPeriod.
func TestReleasedLockIsTakenAtOnce(t *testing.T) {
	eachFakeModeAndCase(t, modes, lockKinds, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		aCtx, stopA := context.WithCancel(ctx)
		lec := testConfig(newTestLock(t, cs, kind, "a", ""))
		lec.ReleaseOnCancel = true
		a := runCandidate(t, aCtx, lec, nil)
		a.leading(t)
		lec = testConfig(newTestLock(t, cs, kind, "b", ""))
		mode.apply(&lec)
		b := runCandidate(t, ctx, lec, nil)
		time.Sleep(leaseDuration / 3)
		stopA()
		a.finished(t)
		releasedAt := time.Now()
		b.leading(t)
		waited := time.Since(releasedAt)
		if mode.name == "watch" && waited != 0 {
			t.Fatalf("a watching follower took the released lock after %v, want at once", waited)
		}
		if waited > maxAcquireWait {
			t.Fatalf("took the released lock after %v, want within %v", waited, maxAcquireWait)
		}
	})
}

// TestExpiredLockIsTakenWhenTheLeaseRunsOut: a watching follower takes the
// lock of a leader that stopped renewing exactly one lease after the last
// renewal it saw, with no poll jitter on top.
func TestExpiredLockIsTakenWhenTheLeaseRunsOut(t *testing.T) {
	eachFakeModeAndCase(t, byDefault, lockKinds, itself, func(t *testing.T, fk fakeClientset, _ followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var cut atomic.Bool
		a := runCandidate(t, ctx, testConfig(cutOff(&cut)(newTestLock(t, cs, kind, "a", ""))), nil)
		a.leading(t)
		b := runCandidate(t, ctx, testConfig(newTestLock(t, cs, kind, "b", "")), nil)
		time.Sleep(3*retryPeriod + retryPeriod/3)
		cut.Store(true)
		lastRenewal := readRecord(t, cs, kind).RenewTime.Time
		b.leading(t)
		if took := time.Since(lastRenewal); took != leaseDuration {
			t.Fatalf("took the lock %v after the last renewal, want exactly the lease (%v)", took, leaseDuration)
		}
	})
}

// TestLockThatCannotBeWatchedIsPolled: a custom lock without a watch, and a
// lock whose watch RBAC forbids, are polled every RetryPeriod; the second
// says so once in the log.
func TestLockThatCannotBeWatchedIsPolled(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, testLockName, errors.New("cannot watch"))
	for _, tc := range []struct {
		name string
		wrap func(rl.Interface) rl.Interface
		log  int
	}{
		{"custom lock without a watch", func(l rl.Interface) rl.Interface { return &hookedLock{Interface: l} }, 0},
		{"watch forbidden", func(l rl.Interface) rl.Interface {
			return &countingLock{Interface: l, watch: func(context.Context) (watch.Interface, error) { return nil, forbidden }}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				var logs logLines
				ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), logs.logger()))
				defer cancel()
				writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 0))
				b := runCandidate(t, ctx, testConfig(tc.wrap(newTestLock(t, cs, rl.LeasesResourceLock, "b", ""))), nil)
				time.Sleep(time.Minute)
				if n := logs.count("Cannot watch the lock"); n != tc.log {
					t.Fatalf("said %d times that it cannot watch, want %d", n, tc.log)
				}
				writeRecord(t, cs, rl.LeasesResourceLock, released(0))
				releasedAt := time.Now()
				b.leading(t)
				if waited := time.Since(releasedAt); waited > maxAcquireWait {
					t.Fatalf("a polling follower took the released lock after %v, want within %v", waited, maxAcquireWait)
				}
			})
		})
	}
}

// TestBrokenWatchIsReplaced: a watch that fails to start is retried with
// backoff while the candidate polls; one that ends is started again; one
// whose resourceVersion expired (410 Gone) is started again after a fresh
// read. Every time, the candidate goes on seeing the lock.
func TestBrokenWatchIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var logs logLines
		ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), logs.logger()))
		defer cancel()
		// A holder with an hour's lease: nothing expires while the watches
		// below (which see nothing of the store) come and go.
		holder := otherHolds("", 0)
		holder.LeaseDurationSeconds = 3600
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		inner := newTestLock(t, cs, rl.LeasesResourceLock, "b", "")
		var mu sync.Mutex
		var started []*watch.FakeWatcher
		failures := 3
		lock := &countingLock{Interface: inner}
		lock.watch = func(ctx context.Context) (watch.Interface, error) {
			mu.Lock()
			defer mu.Unlock()
			if failures > 0 {
				failures--
				return nil, errors.New("connection refused")
			}
			w := watch.NewFakeWithChanSize(10, false)
			started = append(started, w)
			return w, nil
		}
		watches := func() []*watch.FakeWatcher {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(started)
		}
		b := runCandidate(t, ctx, testConfig(lock), nil)
		time.Sleep(time.Minute)
		if len(watches()) != 1 || logs.count("Could not watch the lock") != 1 {
			t.Fatalf("%d watches running after three failures, %d log lines about them; want 1 and 1",
				len(watches()), logs.count("Could not watch the lock"))
		}
		gets, _, _ := lock.requests()

		// The watch ends, as the API server ends each one after a while.
		watches()[0].Stop()
		time.Sleep(time.Minute)
		if len(watches()) != 2 {
			t.Fatalf("%d watches after the first ended, want 2", len(watches()))
		}
		// It expires: the next one starts after a read.
		watches()[1].Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)
		time.Sleep(time.Minute)
		after, _, _ := lock.requests()
		if len(watches()) != 3 || after != gets+1 {
			t.Fatalf("after an expired watch: %d watches, %d more reads; want 3 and 1", len(watches()), after-gets)
		}
		// The newest watch still delivers: a release is taken at once.
		writeRecord(t, cs, rl.LeasesResourceLock, released(0))
		lease, err := cs.CoordinationV1().Leases(testNamespace).Get(ctx, testLockName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		releasedAt := time.Now()
		watches()[2].Modify(lease)
		b.leading(t)
		if waited := time.Since(releasedAt); waited != 0 {
			t.Fatalf("took the released lock %v after the event, want at once", waited)
		}
	})
}

// TestExpiredWatchMakesTheCandidateRead: a follower whose watch breaks
// because the state it would resume from expired reads the lock at once,
// rather than judging once more the state it last saw (which may be long
// gone): here the lock was released while the watch saw nothing, and the
// follower takes it at the instant the watch breaks, not a poll later. On
// both fakes.
func TestExpiredWatchMakesTheCandidateRead(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		holder := otherHolds("", 0)
		holder.LeaseDurationSeconds = 3600
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		watches := make(chan *watch.FakeWatcher, 10)
		lock := &countingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "b", ""),
			watch: func(context.Context) (watch.Interface, error) {
				w := watch.NewFakeWithChanSize(10, false)
				watches <- w
				return w, nil
			}}
		b := runCandidate(t, ctx, testConfig(lock), nil)
		w := receive(t, watches, "b to watch the lock")
		time.Sleep(time.Minute)
		// Released behind the watch's back, which then expires.
		writeRecord(t, cs, rl.LeasesResourceLock, released(0))
		brokeAt := time.Now()
		w.Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)
		b.leading(t)
		if waited := time.Since(brokeAt); waited != 0 {
			t.Fatalf("took the lock released behind an expired watch %v after the watch broke, want at once (read first, not judge the stale state)", waited)
		}
		cancel()
		b.finished(t)
	})
}

// TestHangingWatchStartDoesNotDelayTheLeader: starting a watch that never
// answers (client-go retries one that times out, for many seconds) never
// holds a leader up: a lock kind of ours opens it off Run's goroutine, and a
// lock that must be watched from Run's goroutine (a custom one) takes at
// most half a RetryPeriod to give up. So a leader whose requests fail still
// stops within its RenewDeadline.
func TestHangingWatchStartDoesNotDelayTheLeader(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "opened aside", true: "opened in the loop"}[sync], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkHangingWatchStart(t, sync) })
		})
	}
}

func checkHangingWatchStart(t *testing.T, syncWatch bool) {
	cs := fakekube.New()
	var failing atomic.Bool
	inner := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", ""),
		beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
			if failing.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}
	lock := &countingLock{Interface: inner, syncWatch: syncWatch, watch: func(ctx context.Context) (watch.Interface, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	c := runCandidate(t, t.Context(), testConfig(lock), nil)
	leadCtx := c.leading(t)
	time.Sleep(retryPeriod + retryPeriod/2)
	failing.Store(true)
	failedAt := time.Now()
	receive(t, leadCtx.Done(), "the leader to stop")
	if took := time.Since(failedAt); took > renewDeadline {
		t.Fatalf("stopped %v after its renewals began to fail, want within RenewDeadline (%v)", took, renewDeadline)
	}
	c.finished(t)
}

// TestWatchesThatEndAtOnceFallBackToPolling: a client with a request
// timeout ends every watch soon after it starts. After a few, the
// candidate stops watching, says so once, and polls.
func TestWatchesThatEndAtOnceFallBackToPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var logs logLines
		ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), logs.logger()))
		defer cancel()
		holder := otherHolds("", 0)
		holder.LeaseDurationSeconds = 3600
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		lock := &countingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "b", ""),
			watch: func(context.Context) (watch.Interface, error) {
				w := watch.NewFake()
				go func() { time.Sleep(time.Second); w.Stop() }()
				return w, nil
			}}
		runCandidate(t, ctx, testConfig(lock), nil)
		time.Sleep(5 * time.Minute)
		_, _, watches := lock.requests()
		if watches != maxEarlyEnds || logs.count("keep ending") != 1 {
			t.Fatalf("%d watches, %d log lines about them; want %d and 1", watches, logs.count("keep ending"), maxEarlyEnds)
		}
		gets, _, _ := lock.requests()
		time.Sleep(time.Minute)
		if after, _, _ := lock.requests(); after-gets < 10 {
			t.Fatalf("%d reads in a minute after giving up watching; want polling every RetryPeriod", after-gets)
		}
	})
}

// rewiredLeases wraps a LeasesGetter and replaces every watch of Leases with
// watchFn (nsOnly: only the namespace-wide one, the shared hub's).
type rewiredLeases struct {
	coordinationv1client.LeasesGetter
	nsOnly  bool
	watchFn func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

func (l *rewiredLeases) Leases(namespace string) coordinationv1client.LeaseInterface {
	return rewiredLeaseInterface{l.LeasesGetter.Leases(namespace), l}
}

type rewiredLeaseInterface struct {
	coordinationv1client.LeaseInterface
	outer *rewiredLeases
}

func (l rewiredLeaseInterface) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if l.outer.watchFn != nil && (!l.outer.nsOnly || opts.FieldSelector == "") {
		return l.outer.watchFn(ctx, opts)
	}
	return l.LeaseInterface.Watch(ctx, opts)
}

func rewiredLeaseLock(client coordinationv1client.LeasesGetter, namespace, identity string) *rl.LeaseLock {
	return &rl.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: namespace, Name: testLockName}, Client: client,
		LockConfig: rl.ResourceLockConfig{Identity: identity}}
}

// changeHandsWhileTheWatchOpens, a second after a candidate started,
// hands the Lease to "c" then "d", faster than a follower polls; once the
// candidate's watch, which takes opens to open, has opened, it replays both
// states on replay, as a watch from an older state does; then it waits a
// RetryPeriod for the candidate to act on them.
func changeHandsWhileTheWatchOpens(t *testing.T, client coordinationv1client.LeasesGetter, holder rl.LeaderElectionRecord, replay *watch.FakeWatcher, opens time.Duration) {
	t.Helper()
	time.Sleep(time.Second)
	states := holdersInTurn(t, client, holder, "c", "d")
	time.Sleep(opens)
	for _, lease := range states {
		replay.Modify(lease)
		synctest.Wait()
	}
	time.Sleep(retryPeriod)
}

// holdersInTurn writes the Lease testLockName as held by each of ids in
// turn, each with holder's other fields, and returns the states written.
func holdersInTurn(t *testing.T, client coordinationv1client.LeasesGetter, holder rl.LeaderElectionRecord, ids ...string) []*coordinationv1.Lease {
	t.Helper()
	var states []*coordinationv1.Lease
	for _, id := range ids {
		rec := holder
		rec.HolderIdentity = id
		writeLease(t, client, testNamespace, rec)
		lease, err := client.Leases(testNamespace).Get(t.Context(), testLockName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, lease)
	}
	return states
}

// writeLease makes the Lease of lock hold rec.
func writeLease(t *testing.T, client coordinationv1client.LeasesGetter, namespace string, rec rl.LeaderElectionRecord) {
	t.Helper()
	lock := rewiredLeaseLock(client, namespace, "bystander")
	ctx := context.Background()
	if _, _, err := lock.Get(ctx); err != nil {
		if err := lock.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := lock.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// TestWatchesThatEndAtOnceThroughTheSharedWatch: every watch of Leases
// ends as soon as it opens (an API server that answers each with an
// internal error). The shared watch backs off and then gives up, and the
// candidate polls meanwhile: it takes a released lock within a polling
// period, with no hot loop of watches.
func TestWatchesThatEndAtOnceThroughTheSharedWatch(t *testing.T) {
	synctest.Test(t, checkWatchesThatEndAtOnce)
}

func checkWatchesThatEndAtOnce(t *testing.T) {
	cs := fakekube.New()
	var opened atomic.Int64
	client := &rewiredLeases{LeasesGetter: cs.CoordinationV1(), watchFn: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
		if opened.Add(1) == 100 {
			// A hot loop never lets virtual time pass: stop it here, so
			// that the test fails with a message instead of hanging.
			t.Error("100 watches opened without a pause: a hot loop")
		}
		if opened.Load() >= 100 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		w := watch.NewFakeWithChanSize(1, false)
		w.Error(&apierrors.NewInternalError(errors.New("etcd watch channel closed")).ErrStatus)
		w.Stop()
		return w, nil
	}}
	holder := otherHolds("", 0)
	holder.LeaseDurationSeconds = 30
	writeLease(t, client, testNamespace, holder)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	lec := testConfig(rewiredLeaseLock(client, testNamespace, "b"))
	lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod = 3*time.Second, 2*time.Second, 200*time.Millisecond
	b := runCandidate(t, ctx, lec, nil)
	time.Sleep(time.Second)
	writeLease(t, client, testNamespace, released(0))
	releasedAt := time.Now()
	select {
	case <-b.started:
	case <-time.After(3 * time.Second):
	}
	waited := time.Since(releasedAt)
	watches := opened.Load()
	cancel()
	b.finished(t)
	if waited > 2*time.Second || watches > 20 {
		t.Fatalf("a candidate whose every watch ends at once opened %d watches in %v and had not taken a lock released %v ago "+
			"(a polling candidate takes it within %v)", watches, (time.Second + waited).Round(time.Millisecond),
			waited.Round(time.Millisecond), time.Duration(JitterFactor*float64(lec.RetryPeriod))+lec.RetryPeriod)
	}
}

// hangingWatches are clients whose watches of lock objects never open: each
// watch request blocks until its context ends, as one through a proxy that
// accepts the connection and never answers, or to an API server that
// stalls only watches. Reads and writes pass. It counts the watch requests
// pending, and the most ever pending at once.
type hangingWatches struct {
	pending, most atomic.Int32
	// alone forbids listing the namespace's Leases, so that no shared
	// watch starts and each Lease lock watches its name alone.
	alone bool
}

func (h *hangingWatches) hang(ctx context.Context) (watch.Interface, error) {
	n := h.pending.Add(1)
	defer h.pending.Add(-1)
	for most := h.most.Load(); n > most && !h.most.CompareAndSwap(most, n); most = h.most.Load() {
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// lock is a lock of kind on cs whose watches hang.
func (h *hangingWatches) lock(t *testing.T, cs kubernetes.Interface, kind, identity string) rl.Interface {
	t.Helper()
	lock, err := rl.New(kind, testNamespace, testLockName, &hangingCore{cs.CoreV1(), h},
		&hangingCoordination{cs.CoordinationV1(), h}, rl.ResourceLockConfig{Identity: identity})
	if err != nil {
		t.Fatalf("new %s lock: %v", kind, err)
	}
	return lock
}

type hangingCore struct {
	corev1client.CoreV1Interface
	h *hangingWatches
}

func (c *hangingCore) ConfigMaps(ns string) corev1client.ConfigMapInterface {
	return hangingConfigMaps{c.CoreV1Interface.ConfigMaps(ns), c.h}
}

func (c *hangingCore) Endpoints(ns string) corev1client.EndpointsInterface {
	return hangingEndpoints{c.CoreV1Interface.Endpoints(ns), c.h}
}

type hangingConfigMaps struct {
	corev1client.ConfigMapInterface
	h *hangingWatches
}

func (c hangingConfigMaps) Watch(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
	return c.h.hang(ctx)
}

type hangingEndpoints struct {
	corev1client.EndpointsInterface
	h *hangingWatches
}

func (e hangingEndpoints) Watch(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
	return e.h.hang(ctx)
}

type hangingCoordination struct {
	coordinationv1client.CoordinationV1Interface
	h *hangingWatches
}

func (c *hangingCoordination) Leases(ns string) coordinationv1client.LeaseInterface {
	return hangingLeases{c.CoordinationV1Interface.Leases(ns), c.h}
}

type hangingLeases struct {
	coordinationv1client.LeaseInterface
	h *hangingWatches
}

func (l hangingLeases) Watch(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
	return l.h.hang(ctx)
}

func (l hangingLeases) List(ctx context.Context, opts metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	if l.h.alone {
		return nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "", errors.New("cannot list"))
	}
	return l.LeaseInterface.List(ctx, opts)
}

// hangCase is a lock kind whose watch hangs, and whether a Lease lock
// watches its name alone (on a clientset with resourceVersions, a Lease
// lock otherwise goes through the shared watch of its namespace).
type hangCase struct {
	kind  string
	alone bool
}

func (c hangCase) String() string {
	if c.alone {
		return c.kind + "-alone"
	}
	return c.kind
}

// hangCases are every lock kind that can watch, and the Lease lock's two
// ways of watching.
var hangCases = []hangCase{
	{kind: rl.LeasesResourceLock}, {kind: rl.LeasesResourceLock, alone: true},
	{kind: rl.ConfigMapsResourceLock}, {kind: rl.EndpointsResourceLock},
	{kind: rl.ConfigMapsLeasesResourceLock}, {kind: rl.EndpointsLeasesResourceLock},
}

// TestFollowerWhoseWatchNeverOpensSeesAReleaseWithinARetryPeriod: a
// follower whose watch request never returns (a proxy that accepts the
// connection and never answers, an API server that stalls only watches)
// polls meanwhile, as a follower that cannot watch does: it takes a
// released lock within a jittered RetryPeriod, not when the lease it saw
// runs out. It never has two watch requests pending at once, and leaves
// none behind when it stops.
func TestFollowerWhoseWatchNeverOpensSeesAReleaseWithinARetryPeriod(t *testing.T) {
	eachFakeModeAndCase(t, byDefault, hangCases, hangCase.String, func(t *testing.T, fk fakeClientset, _ followMode, hc hangCase) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		aCtx, stopA := context.WithCancel(ctx)
		lec := testConfig(newTestLock(t, cs, hc.kind, "a", ""))
		lec.ReleaseOnCancel = true
		a := runCandidate(t, aCtx, lec, nil)
		a.leading(t)
		hung := &hangingWatches{alone: hc.alone}
		b := runCandidate(t, ctx, testConfig(hung.lock(t, cs, hc.kind, "b")), nil)
		time.Sleep(leaseDuration / 3)
		stopA()
		a.finished(t)
		releasedAt := time.Now()
		const margin = 10 * time.Millisecond
		select {
		case <-b.started:
		case <-time.After(maxAcquireWait + margin):
			t.Fatalf("a follower whose watch never opens had not taken a lock released %v ago; a polling follower takes it within %v",
				time.Since(releasedAt), maxAcquireWait)
		}
		if most := hung.most.Load(); most != 1 {
			t.Fatalf("%d watch requests pending at once, want 1", most)
		}
		cancel()
		b.finished(t)
		synctest.Wait()
		if left := hung.pending.Load(); left != 0 {
			t.Fatalf("%d watch requests still pending after Run returned, want none", left)
		}
	})
}

// TestLeaderWhoseWatchNeverOpensRenewsEveryRetryPeriod: a leader whose
// watch request never returns cannot learn of a steal from it, so it renews
// every RetryPeriod, as a leader that polls does, not at the lease's pace;
// and once its renewals fail it stops within RenewDeadline, never held up by
// the watch request.
func TestLeaderWhoseWatchNeverOpensRenewsEveryRetryPeriod(t *testing.T) {
	eachFakeModeAndCase(t, byDefault, hangCases, hangCase.String, func(t *testing.T, fk fakeClientset, _ followMode, hc hangCase) {
		cs := fk.new()
		var failing atomic.Bool
		cs.PrependReactor("update", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
			if failing.Load() {
				return true, nil, errors.New("connection refused")
			}
			return false, nil, nil
		})
		hung := &hangingWatches{alone: hc.alone}
		a := runCandidate(t, t.Context(), testConfig(hung.lock(t, cs, hc.kind, "a")), nil)
		leadCtx := a.leading(t)
		time.Sleep(retryPeriod / 2)
		cs.ClearActions()
		const window = 10 * retryPeriod
		time.Sleep(window)
		if renewals := count(cs, "update", "") / objectsPerLock(hc.kind); renewals < int(window/retryPeriod)-1 {
			t.Fatalf("%d renewals in %v by a leader whose watch never opens, want one every RetryPeriod (%v)", renewals, window, retryPeriod)
		}
		failing.Store(true)
		failedAt := time.Now()
		select {
		case <-leadCtx.Done():
		case <-time.After(renewDeadline):
			t.Fatalf("still leading %v after its renewals began to fail, want stopped within RenewDeadline", time.Since(failedAt))
		}
		a.finished(t)
		if most := hung.most.Load(); most != 1 {
			t.Fatalf("%d watch requests pending at once, want 1", most)
		}
	})
}

// TestWatchThatOpensLateReplaysNoStaleState: a watch asked for while the
// lock held one state, and opened only after the follower polled a newer
// one, resumes from the old state, and an API server replays every change
// since: states the follower has already seen surpassed. They are dropped,
// not taken as news: here another holder that came and went before the
// poll is never reported as the leader. (A clientset that replays history
// to a watch is needed, so the watch below replays it as an API server
// does, on the fake that versions objects; client-go's stock fake versions
// nothing and replays only the current state.)
func TestWatchThatOpensLateReplaysNoStaleState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const opens = 3 * retryPeriod
		cs := fakekube.New()
		holder := otherHolds("", 0)
		holder.LeaseDurationSeconds = 3600
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		replay := watch.NewFakeWithChanSize(10, false)
		lock := &countingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "b", ""),
			watch: func(ctx context.Context) (watch.Interface, error) {
				select {
				case <-time.After(opens):
					return replay, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}}
		var mu sync.Mutex
		var leaders []string
		lec := testConfig(lock)
		lec.Callbacks.OnNewLeader = func(id string) {
			mu.Lock()
			defer mu.Unlock()
			leaders = append(leaders, id)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		b := runCandidate(t, ctx, lec, nil)
		// The watch opens from the first state; the follower may take
		// both changes in turn.
		changeHandsWhileTheWatchOpens(t, cs.CoordinationV1(), holder, replay, opens)
		cancel()
		b.finished(t)
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"other", "d"}; !slices.Equal(leaders, want) {
			t.Fatalf("OnNewLeader saw %v, want %v: a watch that opened late replayed a state older than the one last read", leaders, want)
		}
	})
}

// lateCallbackClock is a fake clock whose timers fire on time (Stop then
// reports false) but run their function only once release is closed, as a
// real timer's goroutine may run late on a loaded machine.
type lateCallbackClock struct {
	*clocktesting.FakeClock
	release chan struct{}
}

func (c *lateCallbackClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.FakeClock.AfterFunc(d, func() {
		go func() {
			<-c.release
			f()
		}()
	})
}

// openOnCueLock is a lock whose watch opens, successfully, when opened is
// closed. Only its watch is used.
type openOnCueLock struct {
	rl.Interface
	opened chan struct{}
	w      *watch.FakeWatcher
}

func (l *openOnCueLock) Watch(context.Context) (watch.Interface, error) {
	return nil, errors.New("openOnCueLock: Watch is not used")
}

func (l *openOnCueLock) Apply(watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return nil, nil, errors.New("openOnCueLock: Apply is not used")
}

func (l *openOnCueLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	return func(context.Context) (watch.Interface, error) {
		<-l.opened
		return l.w, nil
	}
}

// TestWatchCalledOffAsItOpensIsNeverUsed: a watch that opens just after its
// bound ran out, before the timer's function has called it off, is stopped
// and counted as failed, never used. At 3200 elections × 3 replica
// processes the timer's goroutine ran that late, and the elector read the
// watch it had already stopped and dropped: a nil watch, and a panic.
func TestWatchCalledOffAsItOpensIsNeverUsed(t *testing.T) {
	fake := clocktesting.NewFakeClock(time.Unix(0, 0))
	clk := &lateCallbackClock{FakeClock: fake, release: make(chan struct{})}
	defer close(clk.release)
	lock := &openOnCueLock{opened: make(chan struct{}), w: watch.NewFake()}
	w := newWatcher(lock, false, clk)
	ctx := context.Background()

	w.ensure(ctx, fake.Now(), time.Minute)
	if w.pending == nil {
		t.Fatal("no watch is being opened after ensure")
	}
	fake.Step(maxWatchStart) // the bound runs out; its function waits
	close(lock.opened)       // and the watch opens
	settleOpening(ctx, t, w, fake.Now())
	if w.current != nil {
		t.Fatalf("a watch opened after its bound ran out is in use (its watch %v)", w.current.w)
	}
	if w.failures != 1 {
		t.Errorf("failures %d after a watch called off at its bound, want 1", w.failures)
	}
	if !lock.w.IsStopped() {
		t.Error("the watch opened after its bound was not stopped")
	}
}

// TestWatchRequestAnsweredWithNoWatchIsAFailure: a lock of the caller's
// whose watch request returns neither a watch nor an error (here a typed
// nil) makes the candidate poll and try again later, never read a nil
// watch.
func TestWatchRequestAnsweredWithNoWatchIsAFailure(t *testing.T) {
	fake := clocktesting.NewFakeClock(time.Unix(0, 0))
	lock := &openOnCueLock{opened: make(chan struct{})} // w stays a nil *FakeWatcher
	close(lock.opened)
	w := newWatcher(lock, false, fake)
	ctx := context.Background()
	w.ensure(ctx, fake.Now(), time.Minute)
	settleOpening(ctx, t, w, fake.Now())
	if w.current != nil {
		t.Fatal("a nil watch is in use")
	}
	if w.failures != 1 {
		t.Errorf("failures %d after a watch request answered with no watch, want 1", w.failures)
	}
}

// TestWatchAnsweredWithNoWatchAsItsBoundRunsOutIsAFailure: the same typed
// nil, returned just after the bound ran out, is not stopped (a call on a
// nil watch) but counted as a failure.
func TestWatchAnsweredWithNoWatchAsItsBoundRunsOutIsAFailure(t *testing.T) {
	fake := clocktesting.NewFakeClock(time.Unix(0, 0))
	clk := &lateCallbackClock{FakeClock: fake, release: make(chan struct{})}
	defer close(clk.release)
	lock := &openOnCueLock{opened: make(chan struct{})} // w stays a nil *FakeWatcher
	w := newWatcher(lock, false, clk)
	ctx := context.Background()
	w.ensure(ctx, fake.Now(), time.Minute)
	fake.Step(maxWatchStart)
	close(lock.opened)
	settleOpening(ctx, t, w, fake.Now())
	if w.current != nil || w.failures != 1 {
		t.Fatalf("after a watch request answered with no watch at its bound: in use %v, failures %d; want none in use, 1 failure", w.current != nil, w.failures)
	}
}

// settleOpening waits, for at most ten seconds, until the watch w is opening
// has its answer, and takes it.
func settleOpening(ctx context.Context, t *testing.T, w *watcher, now time.Time) {
	t.Helper()
	select {
	case <-w.pending.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch being opened never settled")
	}
	w.settle(ctx, now)
}
