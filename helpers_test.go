package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
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

	// maxAcquireWait is the longest a candidate waits between two attempts.
	maxAcquireWait = retryPeriod + time.Duration(JitterFactor*float64(retryPeriod))
	// patience bounds every wait for an outcome in virtual time: an outcome
	// that has not come by then never will, and the test says which.
	patience = 10 * time.Minute
)

// lockKinds are the lock types every election test runs against.
var lockKinds = []string{
	rl.LeasesResourceLock, rl.ConfigMapsResourceLock, rl.EndpointsResourceLock,
	rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock,
}

// clientset is what the tests need of a fake clientset.
type clientset interface {
	kubernetes.Interface
	Actions() []k8stesting.Action
	ClearActions()
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
}

// fakes are the two clientsets the promises are checked on: ours, which
// refuses a stale write with a Conflict as an API server does, and client-go's
// stock fake, which users test their own code with and which accepts it.
var fakes = []fakeClientset{
	{"strict", func(objects ...runtime.Object) clientset { return fakekube.New(objects...) }},
	{"stock", func(objects ...runtime.Object) clientset { return fake.NewClientset(objects...) }},
}

// fakeClientset is one of the fakes, named for subtests.
type fakeClientset struct {
	name string
	new  func(objects ...runtime.Object) clientset
}

// followMode is a way a candidate follows its lock, named for subtests.
type followMode struct {
	name  string
	apply func(*LeaderElectionConfig)
}

// modes are the two ways a candidate follows its lock: watching it (the
// default) and polling it every RetryPeriod.
var modes = []followMode{
	{"watch", func(*LeaderElectionConfig) {}},
	{"poll", func(lec *LeaderElectionConfig) { lec.DisableWatch = true }},
}

// byDefault is the default way of following the lock (watching) alone, for
// a test that does not run both; it adds nothing to subtest names.
var byDefault = []followMode{{"", func(*LeaderElectionConfig) {}}}

// eachFake runs body once on each fake clientset, as subtests named for the
// fake ("strict", "stock"), each in a synctest bubble (virtual time).
func eachFake(t *testing.T, body func(t *testing.T, fk fakeClientset)) {
	t.Helper()
	eachFakeModeAndCase(t, byDefault, []string{""}, itself, func(t *testing.T, fk fakeClientset, _ followMode, _ string) {
		body(t, fk)
	})
}

// eachFakeAndMode runs body once on each fake clientset in each way of
// following the lock, as subtests named "<fake>/<mode>" ("stock/poll"), each
// in a synctest bubble.
func eachFakeAndMode(t *testing.T, body func(t *testing.T, fk fakeClientset, mode followMode)) {
	t.Helper()
	eachFakeModeAndCase(t, modes, []string{""}, itself, func(t *testing.T, fk fakeClientset, mode followMode, _ string) {
		body(t, fk, mode)
	})
}

// eachFakeModeAndCase runs body once for every fake clientset, each of
// modes and each of cases, as subtests named "<fake>/<mode>/<case>" (with
// name(case), and leaving empty names out), each in a synctest bubble. It is
// the one place the matrix is spelt out, so every test that runs it keeps the
// same subtest names for -run to select.
func eachFakeModeAndCase[C any](t *testing.T, modes []followMode, cases []C, name func(C) string,
	body func(t *testing.T, fk fakeClientset, mode followMode, c C)) {
	t.Helper()
	for _, fk := range fakes {
		for _, mode := range modes {
			for _, c := range cases {
				t.Run(subtestName(fk.name, mode.name, name(c)), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { body(t, fk, mode, c) })
				})
			}
		}
	}
}

// subtestName joins the non-empty parts with "/".
func subtestName(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), "/")
}

// itself names a case that is its own name, such as a lock kind.
func itself(s string) string { return s }

// count returns how many recorded actions of cs have verb, on resource if it
// is not empty.
func count(cs clientset, verb, resource string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == verb && (resource == "" || a.GetResource().Resource == resource) {
			n++
		}
	}
	return n
}

func newTestLock(t *testing.T, cs kubernetes.Interface, kind, identity, key string) rl.Interface {
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
func readRecord(t *testing.T, cs kubernetes.Interface, kind string) rl.LeaderElectionRecord {
	t.Helper()
	rec, _, err := newTestLock(t, cs, kind, "bystander", "").Get(context.Background())
	if err != nil {
		t.Fatalf("read %s lock: %v", kind, err)
	}
	return *rec
}

// writeRecord makes the lock hold rec, as another candidate would: reading it
// first and writing over what it read, or creating it.
func writeRecord(t *testing.T, cs kubernetes.Interface, kind string, rec rl.LeaderElectionRecord) {
	t.Helper()
	lock := newTestLock(t, cs, kind, rec.HolderIdentity, rec.HolderKey)
	ctx := context.Background()
	if _, _, err := lock.Get(ctx); err != nil && !errors.Is(err, rl.ErrInvalidRecord) {
		if err := lock.Create(ctx, rec); err != nil {
			t.Fatalf("create %s lock: %v", kind, err)
		}
		return
	}
	if err := lock.Update(ctx, rec); err != nil {
		t.Fatalf("update %s lock: %v", kind, err)
	}
}

// otherHolds is a record of another candidate, "other", with key.
func otherHolds(key string, transitions int) rl.LeaderElectionRecord {
	now := metav1.NewTime(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	return rl.LeaderElectionRecord{
		HolderIdentity: "other", HolderKey: key, LeaseDurationSeconds: 15,
		AcquireTime: now, RenewTime: now, LeaderTransitions: transitions,
	}
}

// released is the record a release leaves.
func released(transitions int) rl.LeaderElectionRecord {
	r := otherHolds("", transitions)
	r.HolderIdentity, r.LeaseDurationSeconds = "", 1
	return r
}

// annotatedObjects are a ConfigMap and an Endpoints object whose record
// annotation holds record, verbatim.
func annotatedObjects(record string) []runtime.Object {
	meta := metav1.ObjectMeta{Namespace: testNamespace, Name: testLockName,
		Annotations: map[string]string{"control-plane.alpha.kubernetes.io/leader": record}}
	return []runtime.Object{&corev1.ConfigMap{ObjectMeta: meta}, &corev1.Endpoints{ObjectMeta: meta}}
}

// leaseObject is a Lease with spec, for the lock.
func leaseObject(spec coordinationv1.LeaseSpec) []runtime.Object {
	return []runtime.Object{&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testLockName}, Spec: spec}}
}

// scribble rewrites the record annotation of the lock's ConfigMap or
// Endpoints object (a MultiLock's Primary) with text, as a third party (a
// GitOps tool re-applying a broken manifest) would. Lease locks have no
// annotation to break.
func scribble(ctx context.Context, cs kubernetes.Interface, kind, text string) error {
	const key = "control-plane.alpha.kubernetes.io/leader"
	switch kind {
	case rl.ConfigMapsResourceLock, rl.ConfigMapsLeasesResourceLock:
		api := cs.CoreV1().ConfigMaps(testNamespace)
		cm, err := api.Get(ctx, testLockName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Annotations = map[string]string{key: text}
		_, err = api.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	case rl.EndpointsResourceLock, rl.EndpointsLeasesResourceLock:
		api := cs.CoreV1().Endpoints(testNamespace)
		ep, err := api.Get(ctx, testLockName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ep.Annotations = map[string]string{key: text}
		_, err = api.Update(ctx, ep, metav1.UpdateOptions{})
		return err
	}
	return fmt.Errorf("a %s lock has no record annotation", kind)
}

// annotated reports whether kind keeps its record in an annotation, which a
// third party can fill with garbage.
func annotated(kind string) bool { return kind != rl.LeasesResourceLock }

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

// receive waits for ch to deliver, for at most patience, and fails the test
// naming what did not happen.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("waited %v for %s", patience, what)
		var zero T
		return zero
	}
}

// candidate is one running elector and what its callbacks have seen. It
// reports its tenures to a fleet, if it has one.
type candidate struct {
	le      *LeaderElector
	started chan context.Context // receives the leading context
	stopped chan struct{}        // closed by OnStoppedLeading
	done    chan struct{}        // closed when Run returns
	startAt time.Time
}

// runCandidate runs an elector for lec in a goroutine of its own. If f is
// not nil, every tenure is reported to it.
func runCandidate(t *testing.T, ctx context.Context, lec LeaderElectionConfig, f *fleet) *candidate {
	t.Helper()
	return startCandidate(t, ctx, lec, f, 0)
}

// startCandidate is runCandidate whose work takes windDown to stop once its
// context is cancelled; a negative windDown means it never stops.
func startCandidate(t *testing.T, ctx context.Context, lec LeaderElectionConfig, f *fleet, windDown time.Duration) *candidate {
	t.Helper()
	c := &candidate{
		started: make(chan context.Context, 1),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		startAt: time.Now(),
	}
	id := lec.Lock.Identity()
	lec.Callbacks.OnStartedLeading = func(workCtx context.Context) {
		f.begin(id)
		c.started <- workCtx
		<-workCtx.Done()
		if windDown < 0 {
			<-t.Context().Done() // hangs until the test ends
		}
		time.Sleep(windDown)
		f.end(id)
	}
	lec.Callbacks.OnStoppedLeading = func() {
		f.note(id + " stopped")
		close(c.stopped)
	}
	c.le = newTestElector(t, lec, nil)
	go func() {
		defer close(c.done)
		c.le.Run(ctx)
	}()
	return c
}

// leading waits until c leads and returns its leading context.
func (c *candidate) leading(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-c.started:
		return ctx
	case <-c.done:
		t.Fatal("Run returned without leading")
	case <-time.After(patience):
		t.Fatalf("not leading after %v", patience)
	}
	return nil
}

// finished waits until c's Run has returned.
func (c *candidate) finished(t *testing.T) {
	t.Helper()
	receive(t, c.done, "Run to return")
}

// outranksAllBut ranks keys "" < old < canary < stable, for a candidate whose
// own key is own.
func outranksAllBut(own string) KeyComparisonFunc {
	rank := map[string]int{"": 0, "old": 1, "canary": 2, "stable": 3}
	return func(existing string) bool { return rank[own] > rank[existing] }
}

// fleet records, across candidates, who led when: OnStartedLeading begins a
// tenure and its return ends it. It fails the test when two tenures
// overlap unless the second began by preempting the first.
type fleet struct {
	mu           sync.Mutex
	leading      map[string]time.Time // identity -> start of its tenure
	acquisitions int
	most         int
	overlaps     []overlap
	// raceAllowance is how long two candidates that took the lock at the
	// same instant may both lead: zero, except on client-go's stock fake,
	// which accepts both writes (see the README's promises).
	raceAllowance time.Duration
	// events is every start and end of a tenure, and every note, in order.
	events []string
}

func newFleet() *fleet { return &fleet{leading: map[string]time.Time{}} }

func (f *fleet) begin(id string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for other := range f.leading {
		f.overlaps = append(f.overlaps, overlap{later: id, earlier: other, at: time.Now()})
	}
	f.leading[id] = time.Now()
	f.acquisitions++
	f.most = max(f.most, len(f.leading))
	f.events = append(f.events, id+" started")
}

func (f *fleet) end(id string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.leading, id)
	f.events = append(f.events, id+" ended")
	// An overlap with the one that ends now is forgiven if it was short
	// enough and began as a race for the lock.
	f.overlaps = slices.DeleteFunc(f.overlaps, func(o overlap) bool {
		return f.raceAllowance > 0 && (o.earlier == id || o.later == id) && time.Since(o.at) <= f.raceAllowance
	})
}

// overlap is a tenure that began while another's ran.
type overlap struct {
	later, earlier string
	at             time.Time
}

func (o overlap) String() string {
	return fmt.Sprintf("%s started leading at %v while %s led", o.later, o.at.Format("15:04:05.000"), o.earlier)
}

// note records an event in order with the tenures.
func (f *fleet) note(event string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event)
}

// history returns the events so far.
func (f *fleet) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// check fails t if two candidates ever led at once.
func (f *fleet) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.overlaps) > 0 {
		t.Fatalf("two leaders at once, %d times; first: %v; history %v", len(f.overlaps), f.overlaps[0], f.events)
	}
}

func (f *fleet) count() (acquisitions, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acquisitions, f.most
}

// hookedLock wraps a lock and lets a test act before each read or write, or
// fail it. It passes the lock's resourceVersion on, as a wrapper must for the
// elector to renew without reading.
type hookedLock struct {
	rl.Interface
	beforeGet   func(ctx context.Context) error
	beforeWrite func(ctx context.Context, record rl.LeaderElectionRecord) error
}

// Key passes the lock's key on, so that the elector competes with it.
func (l *hookedLock) Key() string { return lockKey(l.Interface) }

func (l *hookedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	if l.beforeGet != nil {
		if err := l.beforeGet(ctx); err != nil {
			return nil, nil, err
		}
	}
	return l.Interface.Get(ctx)
}

func (l *hookedLock) Create(ctx context.Context, record rl.LeaderElectionRecord) error {
	if l.beforeWrite != nil {
		if err := l.beforeWrite(ctx, record); err != nil {
			return err
		}
	}
	return l.Interface.Create(ctx, record)
}

func (l *hookedLock) Update(ctx context.Context, record rl.LeaderElectionRecord) error {
	if l.beforeWrite != nil {
		if err := l.beforeWrite(ctx, record); err != nil {
			return err
		}
	}
	return l.Interface.Update(ctx, record)
}

func (l *hookedLock) ResourceVersion() string {
	if v, ok := l.Interface.(rl.Versioned); ok {
		return v.ResourceVersion()
	}
	return ""
}

// countingLock wraps a lock, counts its requests, and passes on everything
// the elector may ask of a lock (its resourceVersion, its watch, opened off
// Run's goroutine unless syncWatch is set). watch, if set, replaces the inner
// lock's Watch; beforeWatch, if set, runs before the inner lock's watch
// request, which is not sent if it fails.
type countingLock struct {
	rl.Interface
	gets, writes, watches atomic.Int32
	watch                 func(ctx context.Context) (watch.Interface, error)
	beforeWatch           func(ctx context.Context) error
	syncWatch             bool
}

// Key passes the lock's key on, so that the elector competes with it.
func (l *countingLock) Key() string { return lockKey(l.Interface) }

func (l *countingLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	l.gets.Add(1)
	return l.Interface.Get(ctx)
}

func (l *countingLock) Create(ctx context.Context, record rl.LeaderElectionRecord) error {
	l.writes.Add(1)
	return l.Interface.Create(ctx, record)
}

func (l *countingLock) Update(ctx context.Context, record rl.LeaderElectionRecord) error {
	l.writes.Add(1)
	return l.Interface.Update(ctx, record)
}

func (l *countingLock) ResourceVersion() string {
	if v, ok := l.Interface.(rl.Versioned); ok {
		return v.ResourceVersion()
	}
	return ""
}

func (l *countingLock) Watch(ctx context.Context) (watch.Interface, error) {
	l.watches.Add(1)
	if l.watch != nil {
		return l.watch(ctx)
	}
	if l.beforeWatch != nil {
		if err := l.beforeWatch(ctx); err != nil {
			return nil, err
		}
	}
	return l.Interface.(rl.Watcher).Watch(ctx)
}

func (l *countingLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	if l.syncWatch {
		return nil
	}
	open := l.watch
	if open == nil {
		starter, ok := l.Interface.(rl.WatchStarter)
		if !ok {
			return nil
		}
		if open = starter.PrepareWatch(); open == nil {
			return nil
		}
	}
	return func(ctx context.Context) (watch.Interface, error) {
		l.watches.Add(1)
		if l.beforeWatch != nil && l.watch == nil {
			if err := l.beforeWatch(ctx); err != nil {
				return nil, err
			}
		}
		return open(ctx)
	}
}

func (l *countingLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}

// requests returns the requests made so far: reads, writes, watches.
func (l *countingLock) requests() (gets, writes, watches int32) {
	return l.gets.Load(), l.writes.Load(), l.watches.Load()
}

// logLines is a logger that keeps every message it is given.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{Verbosity: 2})
}

// count returns how many messages contain text.
func (l *logLines) count(text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, text) {
			n++
		}
	}
	return n
}

// watchedHookedLock is a hookedLock that also passes the lock's watch on, so
// that its candidate watches instead of polling.
type watchedHookedLock struct{ *hookedLock }

func (l watchedHookedLock) Watch(ctx context.Context) (watch.Interface, error) {
	return l.Interface.(rl.Watcher).Watch(ctx)
}

func (l watchedHookedLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	if starter, ok := l.Interface.(rl.WatchStarter); ok {
		return starter.PrepareWatch()
	}
	return nil
}

func (l watchedHookedLock) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Interface.(rl.Watcher).Apply(ev)
}
