package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// queuedWatch is a lockWatch whose events are all queued already, as if
// they had arrived while the elector was busy.
func queuedWatch(events ...watch.Event) *lockWatch {
	lw := &lockWatch{w: watch.NewFake(), queue: events, ready: make(chan struct{}, 1), exited: make(chan struct{})}
	close(lw.exited)
	lw.signal()
	return lw
}

// TestLeaderStepsDownOnAForeignStateEvenIfOursFollows: a leader's watch
// delivers another candidate's state and then one naming the leader again
// (its own write, landed over the other's on a clientset that does not
// version objects). The lock changed hands since the leader's last write:
// it steps down, although the latest state names it.
func TestLeaderStepsDownOnAForeignStateEvenIfOursFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		lock := newTestLock(t, cs, rl.LeasesResourceLock, "a", "")
		le := newTestElector(t, testConfig(lock), nil)
		if v, err := le.tryAcquireOrRenew(t.Context(), false); v != verdictCreate || err != nil {
			t.Fatalf("acquire: %v %v", v, err)
		}
		le.startLeading(time.Now())
		ours, err := cs.CoordinationV1().Leases(testNamespace).Get(t.Context(), testLockName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		theirs := ours.DeepCopy()
		b := "b"
		theirs.Spec.HolderIdentity, theirs.ResourceVersion = &b, "100"
		again := ours.DeepCopy()
		again.ResourceVersion = "101"
		le.watch = &watcher{lock: lock.(rl.Watcher)}
		le.watch.current = queuedWatch(watch.Event{Type: watch.Modified, Object: theirs}, watch.Event{Type: watch.Modified, Object: again})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if end := le.hold(ctx, nil); !end.lost {
			t.Fatalf("hold ended with %+v; want lost: the lock changed hands since our last write", end)
		}
	})
}

// TestReleaseWaitsForTheWork: a leader told to stop with ReleaseOnCancel
// releases the lock only once OnStartedLeading has returned, renewing it
// meanwhile, so that a successor never starts while the work still runs,
// even when the work takes longer than a lease to stop.
func TestReleaseWaitsForTheWork(t *testing.T) {
	const windDown = 20 * time.Second // longer than the lease (15s)
	eachFakeModeAndCase(t, byDefault, lockKinds, itself, func(t *testing.T, fk fakeClientset, _ followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		aCtx, stopA := context.WithCancel(ctx)
		lec := testConfig(newTestLock(t, cs, kind, "a", ""))
		lec.ReleaseOnCancel = true
		lec.StopTimeout = time.Minute
		a := startCandidate(t, aCtx, lec, f, windDown)
		a.leading(t)
		b := runCandidate(t, ctx, testConfig(newTestLock(t, cs, kind, "b", "")), f)
		time.Sleep(retryPeriod / 2)
		stopA()
		stoppedAt := time.Now()
		b.leading(t)
		a.finished(t)
		f.check(t)
		if took := time.Since(stoppedAt); took != windDown {
			t.Fatalf("b led %v after a was told to stop, want when a's work returned (%v)", took, windDown)
		}
	})
}

// TestReleaseOfWorkThatNeverStops: a leader whose work does not return
// within StopTimeout does not release the lock while the work may still
// run; the lock expires instead. With a negative StopTimeout it releases at
// once, as client-go's elector does.
func TestReleaseOfWorkThatNeverStops(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stopTimeout time.Duration
		least, most time.Duration // from the stop until b leads
	}{
		// The lease runs from a's last renewal, made within StopTimeout.
		{"waits, then lets it expire", 5 * time.Second, leaseDuration, 5*time.Second + leaseDuration},
		{"does not wait", -1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				aCtx, stopA := context.WithCancel(ctx)
				lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
				lec.ReleaseOnCancel = true
				lec.StopTimeout = tc.stopTimeout
				a := startCandidate(t, aCtx, lec, nil, -1)
				a.leading(t)
				b := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "")), nil)
				time.Sleep(retryPeriod / 2)
				stopA()
				stoppedAt := time.Now()
				b.leading(t)
				if took := time.Since(stoppedAt); took < tc.least || took > tc.most {
					t.Fatalf("b led %v after a was told to stop, want between %v and %v", took, tc.least, tc.most)
				}
				a.finished(t)
			})
		})
	}
}

// cutOffLock wraps a watchable lock. After silentAfter successful writes the
// connection goes silent: the open watches end, and every request that hangs
// (reads, writes and watch starts, as ops says) blocks until its context is
// done, as when the API server stops answering a leader. It remembers when
// its last successful write started, and counts requests: past maxRequests
// it fails the test and calls spun, so that a loop that spins instead of
// waiting (at one instant, in virtual time) fails within seconds instead of
// filling the machine's memory.
type cutOffLock struct {
	rl.Interface
	t           *testing.T
	hangs       hangingOps
	silentAfter int32
	spun        func()
	// ignoresContext makes a hanging request block until the test ends,
	// whatever its context says, as a lock that ignores its context does.
	ignoresContext bool
	// failFast makes a hanging request fail at once instead.
	failFast bool
	// lateBy, with ignoresContext, makes a hanging request go through
	// after that long instead.
	lateBy time.Duration

	writes   atomic.Int32
	requests atomic.Int64
	silent   atomic.Bool

	mu     sync.Mutex
	lastOK time.Time
	open   []watch.Interface
}

// Key passes the lock's key on, so that the elector competes with it.
func (l *cutOffLock) Key() string { return lockKey(l.Interface) }

// hangingOps says which requests of a cut-off connection hang.
type hangingOps struct{ reads, writes, watches bool }

// maxRequests is more requests than any election in these tests makes in
// its virtual minutes; a loop that makes more spins.
const maxRequests = 2000

// request counts a request and reports false if the count is past the limit.
func (l *cutOffLock) request(what string) bool {
	if n := l.requests.Add(1); n == maxRequests {
		l.t.Errorf("the elector made %d requests (the last a %s at %v): a loop spins instead of waiting", n, what, time.Now().Format("15:04:05.000"))
		l.spun()
	} else if n > maxRequests {
		return false
	}
	return true
}

func (l *cutOffLock) hang(ctx context.Context, hangs bool) error {
	if !hangs || !l.silent.Load() {
		return nil
	}
	if l.failFast {
		return errors.New("connection refused")
	}
	if l.ignoresContext && l.lateBy > 0 {
		time.Sleep(l.lateBy)
		return nil
	}
	if l.ignoresContext {
		<-l.t.Context().Done()
		return errors.New("connection went silent until the test ended")
	}
	<-ctx.Done()
	return fmt.Errorf("connection went silent: %w", context.Cause(ctx))
}

func (l *cutOffLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	if !l.request("read") {
		return nil, nil, errors.New("too many requests")
	}
	if err := l.hang(ctx, l.hangs.reads); err != nil {
		return nil, nil, err
	}
	return l.Interface.Get(ctx)
}

func (l *cutOffLock) Create(ctx context.Context, record rl.LeaderElectionRecord) error {
	return l.wrote(ctx, l.Interface.Create, record)
}

func (l *cutOffLock) Update(ctx context.Context, record rl.LeaderElectionRecord) error {
	return l.wrote(ctx, l.Interface.Update, record)
}

func (l *cutOffLock) wrote(ctx context.Context, op func(context.Context, rl.LeaderElectionRecord) error, record rl.LeaderElectionRecord) error {
	if !l.request("write") {
		return errors.New("too many requests")
	}
	if err := l.hang(ctx, l.hangs.writes); err != nil {
		return err
	}
	start := time.Now()
	if err := op(ctx, record); err != nil {
		return err
	}
	if l.silent.Load() {
		// The write landed as the connection went silent. Unless a
		// hanging request goes through late, its answer hangs (or
		// fails) as that of a request sent now would: it is no
		// success of the elector's either.
		if l.lateBy == 0 {
			return l.hang(ctx, l.hangs.writes)
		}
		return nil
	}
	l.mu.Lock()
	l.lastOK = start
	l.mu.Unlock()
	if l.writes.Add(1) == l.silentAfter {
		l.goSilent()
	}
	return nil
}

// goSilent cuts the connection off: the open watches end, and from now on
// the requests of l.hangs hang.
func (l *cutOffLock) goSilent() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.silent.Store(true)
	for _, w := range l.open {
		w.Stop()
	}
	l.open = nil
}

func (l *cutOffLock) Watch(ctx context.Context) (watch.Interface, error) {
	if !l.request("watch") {
		return nil, errors.New("too many requests")
	}
	if err := l.hang(ctx, l.hangs.watches); err != nil {
		return nil, err
	}
	w, err := l.Interface.(rl.Watcher).Watch(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.silent.Load() {
		// A watch that starts on a silent connection delivers nothing.
		w.Stop()
		return watch.NewEmptyWatch(), nil
	}
	l.open = append(l.open, w)
	return w, nil
}

func (l *cutOffLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}

func (l *cutOffLock) ResourceVersion() string {
	if v, ok := l.Interface.(rl.Versioned); ok {
		return v.ResourceVersion()
	}
	return ""
}

// lastSuccessfulWrite is when the last write that succeeded started.
func (l *cutOffLock) lastSuccessfulWrite() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK
}

// timings are the ones the README lists as supported at the tight end, and
// the ones core components use.
var timings = []struct {
	name                                      string
	leaseDuration, renewDeadline, retryPeriod time.Duration
}{
	{"1s-900ms-700ms", time.Second, 900 * time.Millisecond, 700 * time.Millisecond},
	{"15s-10s-2s", 15 * time.Second, 10 * time.Second, 2 * time.Second},
}

// TestCutOffLeaderStopsByRenewDeadline is the promise that a leader stops
// at most RenewDeadline after its last successful renewal: its work's
// context is cancelled, IsLeader turns false and OnStoppedLeading has run by
// then, whichever of its requests hang (the open watch is reset, then every
// read, write or new watch blocks until its context is done), at tight and
// at default timings, on both fakes, watching or polling.
func TestCutOffLeaderStopsByRenewDeadline(t *testing.T) {
	type hanging struct {
		name string
		ops  hangingOps
	}
	hangings := []hanging{
		{"everything", hangingOps{reads: true, writes: true, watches: true}},
		{"writes", hangingOps{writes: true}},
		{"reads-and-writes", hangingOps{reads: true, writes: true}},
		{"writes-and-watches", hangingOps{writes: true, watches: true}},
	}
	for _, tm := range timings {
		t.Run(tm.name, func(t *testing.T) {
			eachFakeModeAndCase(t, modes, hangings, func(h hanging) string { return h.name }, func(t *testing.T, fk fakeClientset, mode followMode, hangs hanging) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				lock := &cutOffLock{Interface: newTestLock(t, fk.new(), rl.LeasesResourceLock, "a", ""),
					t: t, hangs: hangs.ops, silentAfter: 4, spun: cancel}
				lec := testConfig(lock)
				lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod = tm.leaseDuration, tm.renewDeadline, tm.retryPeriod
				mode.apply(&lec)
				a := startCandidate(t, ctx, lec, nil, -1)
				work := a.leading(t)
				select {
				case <-work.Done():
				case <-time.After(patience):
					t.Fatalf("the work's context was not cancelled %v after the connection went silent", patience)
				}
				last := lock.lastSuccessfulWrite()
				if took := time.Since(last); took > tm.renewDeadline {
					t.Errorf("the work's context was cancelled %v after the last successful renewal, want at most RenewDeadline (%v)", took, tm.renewDeadline)
				}
				time.Sleep(time.Until(last.Add(tm.renewDeadline)))
				synctest.Wait()
				if a.le.IsLeader() {
					t.Errorf("IsLeader is true RenewDeadline (%v) after the last successful renewal", tm.renewDeadline)
				}
				select {
				case <-a.stopped:
				default:
					t.Errorf("OnStoppedLeading has not run RenewDeadline (%v) after the last successful renewal", tm.renewDeadline)
				}
				cancel()
				a.finished(t)
			})
		})
	}
}

// stuckMetric is a metric whose RenewalAttempted blocks until the test ends
// once the leader has renewed renewals times, as a metric that waits on the
// network might.
type stuckMetric struct {
	t        *testing.T
	renewals int32
	calls    atomic.Int32
}

func (m *stuckMetric) On(string)                                {}
func (m *stuckMetric) Off(string)                               {}
func (m *stuckMetric) LeaderObserved(string, string, time.Time) {}
func (m *stuckMetric) Preempted(string, bool)                   {}
func (m *stuckMetric) RenewalAttempted(string, time.Duration, error) {
	if m.calls.Add(1) >= m.renewals {
		<-m.t.Context().Done()
	}
}

// TestLeaderStuckInAStepStopsWorkByRenewDeadline: a leader held up in a
// step that does not return (a lock whose write ignores its context, a
// metric that blocks) cannot end its term from its loop; its work's context
// is cancelled all the same, and IsLeader turns false, RenewDeadline after
// its last successful renewal at the latest. OnStoppedLeading, which runs
// on Run's goroutine, waits for the step.
func TestLeaderStuckInAStepStopsWorkByRenewDeadline(t *testing.T) {
	for _, tm := range timings {
		t.Run(tm.name, func(t *testing.T) {
			eachFakeModeAndCase(t, byDefault, []string{"write ignoring its context", "write succeeding late", "metric"}, itself, func(t *testing.T, fk fakeClientset, _ followMode, stuck string) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				lock := &cutOffLock{Interface: newTestLock(t, fk.new(), rl.LeasesResourceLock, "a", ""),
					t: t, hangs: hangingOps{writes: true}, silentAfter: 4, spun: cancel, ignoresContext: true}
				lec := testConfig(lock)
				lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod = tm.leaseDuration, tm.renewDeadline, tm.retryPeriod
				started := make(chan context.Context, 1)
				lec.Callbacks.OnStartedLeading = func(ctx context.Context) { started <- ctx }
				le := newTestElector(t, lec, nil)
				if stuck == "write succeeding late" {
					// The first renewal after the last good one
					// starts a RetryPeriod later and returns after
					// the deadline, yet less than RenewDeadline
					// after it started.
					lock.lateBy = tm.renewDeadline - tm.retryPeriod/2
				}
				if stuck == "metric" {
					lock.silentAfter = -1
					le.metrics = &leaderMetrics{election: &stuckMetric{t: t, renewals: 3}}
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					le.Run(ctx)
				}()
				work := receive(t, started, "a to lead")
				select {
				case <-work.Done():
				case <-time.After(patience):
					t.Fatalf("the work's context was not cancelled %v after the leader got stuck", patience)
				}
				last := lock.lastSuccessfulWrite()
				if took := time.Since(last); took > tm.renewDeadline {
					t.Errorf("the work's context was cancelled %v after the last successful renewal, want at most RenewDeadline (%v)", took, tm.renewDeadline)
				}
				if le.IsLeader() {
					t.Errorf("IsLeader is true once the work's context was cancelled at the renew deadline")
				}
				if stuck == "write succeeding late" {
					// The renewal that went through after the deadline
					// does not extend a term whose work was stopped.
					receive(t, done, "Run to return once the late renewal returned")
					if took, want := time.Since(last), tm.retryPeriod+lock.lateBy; took > want {
						t.Errorf("Run returned %v after the last successful renewal, want as soon as the late one returned (%v)", took, want)
					}
				}
				cancel()
				// The stuck step returns when the test ends; Run then
				// returns too, which goleak checks.
			})
		})
	}
}

// TestLeaderCutOffWhileHandingOverStopsByRenewDeadline: a leader asked to
// hand over whose connection goes silent, while its work winds down or
// once the work has returned and it is about to write the lock over, stops
// trying RenewDeadline after its last successful renewal at the latest:
// past that, the requester may already have taken the lock, and a late
// write could land over its term. Run has returned by then.
func TestLeaderCutOffWhileHandingOverStopsByRenewDeadline(t *testing.T) {
	for _, tm := range timings {
		t.Run(tm.name, func(t *testing.T) {
			eachFakeModeAndCase(t, byDefault, []string{"while the work winds down", "once the work returned"}, itself, func(t *testing.T, fk fakeClientset, _ followMode, when string) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				cs := fk.new()
				lock := &cutOffLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary"),
					t: t, hangs: hangingOps{reads: true, writes: true, watches: true}, silentAfter: -1, spun: cancel}
				timed := func(lec *LeaderElectionConfig) {
					lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod = tm.leaseDuration, tm.renewDeadline, tm.retryPeriod
					lec.StopTimeout = time.Minute
				}
				low := testConfig(lock)
				low.KeyComparison = outranksAllBut("canary")
				timed(&low)
				windDown := tm.retryPeriod * 3 / 2 // renewing meanwhile
				started, returned := make(chan struct{}), make(chan struct{})
				low.Callbacks.OnStartedLeading = func(ctx context.Context) {
					defer close(returned)
					close(started)
					<-ctx.Done()
					if when == "while the work winds down" {
						lock.goSilent()
					}
					time.Sleep(windDown)
					if when == "once the work returned" {
						lock.goSilent()
					}
				}
				a := newTestElector(t, low, nil)
				done := make(chan struct{})
				go func() {
					defer close(done)
					a.Run(ctx)
				}()
				receive(t, started, "a to lead")
				time.Sleep(tm.retryPeriod / 2)
				high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
				high.KeyComparison = outranksAllBut("stable")
				timed(&high)
				b := runCandidate(t, ctx, high, nil)
				receive(t, done, "a's Run to return")
				if took := time.Since(lock.lastSuccessfulWrite()); took > tm.renewDeadline {
					t.Errorf("a's Run returned %v after its last successful renewal, want at most RenewDeadline (%v)", took, tm.renewDeadline)
				}
				b.leading(t)
				cancel()
				b.finished(t)
				receive(t, returned, "a's work to return")
			})
		})
	}
}

// TestCutoffFollowsRenewals: the backstop that stops a term's work at its
// renew deadline moves with each successful renewal, fires on a fake clock
// too (whose timers run their functions while it holds its own lock), and
// is disarmed when the leader stops leading.
func TestCutoffFollowsRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		clk := clocktesting.NewFakeClock(t0)
		le := newTestElector(t, testConfig(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "a", "")), clk)
		work, stopWork := context.WithCancel(t.Context())
		defer stopWork()
		le.startLeading(t0)
		le.cutAtDeadline(klog.Background(), stopWork)
		step := func(d time.Duration) {
			clk.Step(d)
			synctest.Wait() // for what the fired timer started
		}
		step(renewDeadline / 2)
		if !le.markRenewed(clk.Now()) {
			t.Fatal("a renewal before the deadline was refused")
		}
		step(renewDeadline / 2) // the first deadline, moved by the renewal
		if work.Err() != nil || !le.IsLeader() {
			t.Fatalf("at a deadline a renewal had moved: work %v, IsLeader %v; want running, true", work.Err(), le.IsLeader())
		}
		step(renewDeadline / 2)
		if work.Err() == nil || le.IsLeader() {
			t.Fatalf("at the moved deadline: work %v, IsLeader %v; want cancelled, false", work.Err(), le.IsLeader())
		}
		if le.markRenewed(clk.Now()) {
			t.Error("a renewal that returned after the work was stopped at the deadline was accepted")
		}
		step(leaseDuration)
		if le.Check(0) == nil {
			t.Error("Check reports healthy a leader still stuck LeaseDuration after its work was stopped at the deadline")
		}
		le.stopLeading()
		if err := le.Check(0); err != nil {
			t.Errorf("Check after the leader stopped: %v", err)
		}
	})
}

// TestLeaderKeepsItsTermThroughConflictsInARow: a writer that rewrites the
// Lease between the leader's reads and writes (a controller relabelling
// it, a storm of such writes) makes renewals conflict. A conflict is an
// answer, not an outage: the leader reads and writes again at once, so
// five conflicts in a row, which at a RetryPeriod each would outlast its
// renew deadline, cost it nothing.
func TestLeaderKeepsItsTermThroughConflictsInARow(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		left := conflictsLater(cs)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
		mode.apply(&lec)
		a := runCandidate(t, ctx, lec, nil)
		work := a.leading(t)
		time.Sleep(retryPeriod / 2)
		left.Store(5)
		time.Sleep(3 * leaseDuration)
		if n := left.Load(); n != 0 {
			t.Fatalf("%d of the 5 conflicts were never met; the leader stopped renewing", n)
		}
		if work.Err() != nil {
			t.Fatalf("the leader lost its term to 5 renewal conflicts in a row (RenewDeadline %v, RetryPeriod %v); want it to read and write again at once", renewDeadline, retryPeriod)
		}
		cancel()
		a.finished(t)
	})
}

// TestConflictRetriesAreBounded: a writer that beats every write of the
// leader gets a few tries per RetryPeriod from it, not a loop; the leader
// stops at its renew deadline, as after any failure.
func TestConflictRetriesAreBounded(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		cs := fk.new()
		left := conflictsLater(cs)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
		mode.apply(&lec)
		a := runCandidate(t, ctx, lec, nil)
		work := a.leading(t)
		// Each try is at most two writes (the optimistic one, then one
		// after a read); conflictRetries+1 tries per RetryPeriod. One
		// conflict more than that is on offer: a loop takes it at once.
		limit := 2 * (conflictRetries + 1) * (int(renewDeadline/retryPeriod) + 1)
		left.Store(int64(limit + 1))
		start := time.Now()
		select {
		case <-work.Done():
		case <-time.After(renewDeadline + retryPeriod):
		}
		if left.Load() == 0 {
			t.Fatalf("more than %d conflicting writes within %v; want at most %d tries per RetryPeriod", limit, time.Since(start), conflictRetries+1)
		}
		if work.Err() == nil {
			t.Fatalf("the leader still leads %v after every renewal began to conflict; want it stopped within RenewDeadline (%v)", time.Since(start), renewDeadline)
		}
		cancel()
		a.finished(t)
	})
}

// conflictsLater makes as many of cs's next updates fail with a Conflict as
// the counter it returns holds, once the test sets it: the reactor is in
// place before any elector runs, so that setting the count races nothing.
func conflictsLater(cs clientset) *atomic.Int64 {
	var left atomic.Int64
	cs.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		for {
			n := left.Load()
			if n <= 0 {
				return false, nil, nil
			}
			if left.CompareAndSwap(n, n-1) {
				return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: a.GetResource().Resource}, testLockName, nil)
			}
		}
	})
	return &left
}
