package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/crelection"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Shape of the operator in TestControllerRuntimeHandoff.
const (
	// crObjects is how many ConfigMaps the operator reconciles.
	crObjects = 5
	// crWork is how long one reconcile works: long enough that a handoff
	// almost always finds reconciles in flight, which must finish first.
	crWork = 100 * time.Millisecond
	// crWriteEvery is how often the test changes one of the ConfigMaps, so
	// that the leader always has work.
	crWriteEvery = 50 * time.Millisecond
)

// TestControllerRuntimeHandoff: two revisions of a controller-runtime
// operator, each a manager from package crelection in this process,
// reconcile the ConfigMaps of one namespace, which the test keeps changing.
// rev-1 leads; rev-2, whose key outranks it, starts later and asks for the
// lock once its controller has warmed up (its sources have synced). rev-1's
// controller is stopped, and its reconciles in flight finish, before the
// lock goes over, so every reconcile of rev-1 ends before the first of
// rev-2 begins; rev-1's Start returns ErrLeadershipLost, and rev-2
// reconciles every object to its latest state.
func TestControllerRuntimeHandoff(t *testing.T) {
	e := newElection(t)
	ctx := context.Background()
	for i := range crObjects {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("object-%d", i)}, Data: map[string]string{"value": "0"}}
		if _, err := e.admin.CoreV1().ConfigMaps(e.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log := &reconcileLog{}
	rev1 := startOperator(t, e, log, "rev-1")
	waitFor(t, maxAttemptWait+10*time.Second, "rev-1 reconciles every object", func() bool { return log.reconciledAll("rev-1", "0") })

	writer := startWriter(t, e.admin, e.ns)
	waitFor(t, 10*time.Second, "rev-1 reconciles the changes", func() bool { return log.reconciledAll("rev-1", "1") })
	rev2Started := time.Now()
	rev2 := startOperator(t, e, log, "rev-2")
	select {
	case <-rev1.finished:
		if !errors.Is(rev1.err, crelection.ErrLeadershipLost) {
			t.Fatalf("rev-1's Start returned %v; want ErrLeadershipLost", rev1.err)
		}
	case <-time.After(offered + 10*time.Second):
		t.Fatalf("rev-1's Start has not returned %v after rev-2 started", offered+10*time.Second)
	}
	stepDown := time.Since(rev2Started)
	last := writer.stop()
	waitFor(t, 10*time.Second, "rev-2 reconciles every object to its latest value", func() bool {
		return log.reconciledAll("rev-2", last)
	})

	old, firstNew := log.calls("rev-1"), log.calls("rev-2")[0]
	var lastOldEnd time.Time
	busy := 0
	for _, c := range old {
		if !c.end.Before(firstNew.start) {
			t.Fatalf("rev-1 reconciled %s from %v to %v, not before rev-2's first reconcile began (%v)",
				c.name, c.start.Sub(rev2Started), c.end.Sub(rev2Started), firstNew.start.Sub(rev2Started))
		}
		if c.end.After(lastOldEnd) {
			lastOldEnd = c.end
		}
		if c.start.After(rev2Started) {
			busy++
		}
	}
	if busy == 0 {
		t.Fatal("rev-1 never reconciled once rev-2 had started: the handoff found no work to stop")
	}
	gap := firstNew.start.Sub(lastOldEnd)
	firstReconcile := firstNew.start.Sub(rev2Started)
	addFigure("controller-runtime: old manager stops", stepDown)
	addFigure("controller-runtime: new one reconciles", firstReconcile)
	addFigure("controller-runtime: no reconciler for", gap)
	t.Logf("rev-2 started at 0; rev-1's Start returned at %v; rev-1's last reconcile ended at %v (%d reconciles after 0); rev-2's first began at %v: a gap of %v",
		stepDown, lastOldEnd.Sub(rev2Started), busy, firstReconcile, gap)

	rev2.stop()
	<-rev2.finished
	if rev2.err != nil {
		t.Fatalf("rev-2's Start after a clean shutdown: %v; want nil", rev2.err)
	}
	if rec, err := e.record(rl.LeasesResourceLock); err != nil || rec.HolderIdentity != "" || rec.LeaderTransitions != 1 {
		t.Fatalf("record after rev-2 shut down: %+v, %v; want the lock released after one transition", rec, err)
	}
}

// operator is one revision's manager, running.
type operator struct {
	stop     func()
	finished chan struct{} // closed when Start has returned
	err      error         // what Start returned
}

// startOperator starts the manager of revision id: a controller of the
// namespace's ConfigMaps that records each reconcile in log, elected on the
// suite's Lease with the suite's timings, the higher revision outranking
// the lower. The test's cleanup stops it.
func startOperator(t *testing.T, e *election, log *reconcileLog, id string) *operator {
	t.Helper()
	config := rest.CopyConfig(cp.Config())
	lock, err := rl.NewFromKubeconfig(rl.LeasesResourceLock, e.ns, e.name, rl.ResourceLockConfig{Identity: id, Key: id}, config, renewDeadline)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := crelection.NewManager(config, manager.Options{
		Logger:  klog.Background().WithValues("member", id),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{e.ns: {}}},
	}, le.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		KeyComparison:   func(holderKey string) bool { return id > holderKey },
		ReleaseOnCancel: true,
		Name:            e.ns,
	})
	if err != nil {
		t.Fatal(err)
	}
	reconciler := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		c := reconcileCall{manager: id, name: req.Name, start: time.Now()}
		var cm corev1.ConfigMap
		if err := mgr.GetClient().Get(ctx, req.NamespacedName, &cm); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, err
		}
		c.value = cm.Data["value"]
		time.Sleep(crWork) // the operator's work, not a wait for an outcome
		c.end = time.Now()
		log.add(c)
		return reconcile.Result{}, nil
	})
	err = ctrl.NewControllerManagedBy(mgr).
		Named("configmaps-" + id).
		For(&corev1.ConfigMap{}).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 2,
			// With warmup, a standby's sources sync before it asks for the
			// lock, so that it starts reconciling at once when handed it.
			EnableWarmup: ptr.To(true),
			// A process runs one controller of a name; this test runs the
			// same names again on every -count.
			SkipNameValidation: ptr.To(true),
		}).
		Complete(reconciler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{stop: cancel, finished: make(chan struct{})}
	go func() {
		defer close(op.finished)
		op.err = mgr.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-op.finished:
		case <-time.After(30 * time.Second):
			t.Errorf("%s's Start did not return within 30s of its context ending", id)
		}
	})
	return op
}

// reconcileCall is one Reconcile of one manager.
type reconcileCall struct {
	manager, name, value string
	start, end           time.Time
}

// reconcileLog is every reconcile of every manager, in the order they ended.
type reconcileLog struct {
	mu  sync.Mutex
	all []reconcileCall
}

func (l *reconcileLog) add(c reconcileCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, c)
}

// calls returns the reconciles of manager, in the order they began.
func (l *reconcileLog) calls(manager string) []reconcileCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []reconcileCall
	for _, c := range l.all {
		if c.manager == manager {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b reconcileCall) int { return a.start.Compare(b.start) })
	return out
}

// reconciledAll reports whether manager has reconciled every object of the
// test with value at least as new as atLeast.
func (l *reconcileLog) reconciledAll(manager, atLeast string) bool {
	want, _ := strconv.Atoi(atLeast)
	seen := map[string]bool{}
	for _, c := range l.calls(manager) {
		if v, err := strconv.Atoi(c.value); err == nil && v >= want {
			seen[c.name] = true
		}
	}
	return len(seen) == crObjects
}

// writer changes the test's ConfigMaps, one at a time, until stopped.
type writer struct {
	cancel context.CancelFunc
	done   chan struct{}
	last   atomic.Int64
}

// startWriter writes value 1, 2, 3, ... into the ConfigMaps in turn, every
// crWriteEvery, so that whoever leads always has reconciles to do.
func startWriter(t *testing.T, admin kubernetes.Interface, namespace string) *writer {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeLimit)
	w := &writer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(crWriteEvery)
		defer tick.Stop()
		for n := int64(1); ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			patch := fmt.Sprintf(`{"data":{"value":"%d"}}`, n)
			name := fmt.Sprintf("object-%d", n%crObjects)
			_, err := admin.CoreV1().ConfigMaps(namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
				t.Errorf("write %s: %v", name, err)
				return
			}
			w.last.Store(n)
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

// stop ends the writes and returns the oldest value an object may hold
// now: every object was written at least that value or a later one.
func (w *writer) stop() string {
	w.cancel()
	<-w.done
	oldest := max(w.last.Load()-crObjects+1, 0)
	return strconv.FormatInt(oldest, 10)
}

// TestControllerRuntimeFencedLateWriteIsRefused: two revisions of a
// controller-runtime operator, managers from package crelection made with
// WithFencing for ConfigMaps, under fence's policy installed by
// ApplyFencePolicy. rev-1 leads and its writes pass, stamped with its term.
// One of its reconciles then stalls (it ignores its context: a long call, a
// pause) while rev-2, whose key outranks it, takes over: rev-1's elector
// waits StopTimeout for it and hands the lock over. When the stalled
// reconcile writes at last, with its reconcile's context and with one of its
// own, kube-apiserver refuses both as fenced, naming the new term, and the
// object keeps rev-2's write.
func TestControllerRuntimeFencedLateWriteIsRefused(t *testing.T) {
	e := newElection(t)
	ctx := context.Background()
	// Made before the policy, which refuses every write while the Lease
	// is missing.
	cms := e.admin.CoreV1().ConfigMaps(e.ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "work"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := fence.PolicyOptions{Namespace: e.ns, Lease: e.name, Resources: []fence.Resource{{Resource: "configmaps"}}}
	api := e.admin.AdmissionregistrationV1()
	if err := crelection.ApplyFencePolicy(ctx, api, opts); err != nil {
		t.Fatalf("ApplyFencePolicy: %v", err)
	}
	t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), "fence-"+e.name, metav1.DeleteOptions{})
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), "fence-"+e.name, metav1.DeleteOptions{})
	})
	if err := crelection.CheckFencePolicy(ctx, api, opts); err != nil {
		t.Fatalf("CheckFencePolicy on what ApplyFencePolicy installed, with the API server's defaults: %v", err)
	}
	waitFor(t, 30*time.Second, "the API server to enforce the fencing policy", func() bool {
		_, err := writeStamped(e.admin, e.ns, "probe", "999999/nobody")
		return apierrors.IsForbidden(err) || apierrors.IsInvalid(err)
	})
	by := func() string {
		cm, err := cms.Get(ctx, "work", metav1.GetOptions{})
		if err != nil {
			return "error: " + err.Error()
		}
		return cm.Data["by"]
	}

	stalled, resume := make(chan struct{}), make(chan struct{})
	var stalling atomic.Bool
	var resumeOnce sync.Once
	lateErrs := make(chan error, 2)
	rev1 := startFencedOperator(t, e, "rev-1", func(ctx context.Context, c client.Client, cm *corev1.ConfigMap) error {
		if cm.Data["stall"] != "yes" {
			return writeBy(ctx, c, cm, "rev-1")
		}
		if !stalling.CompareAndSwap(false, true) {
			return nil // stalls once
		}
		close(stalled)
		<-resume // ignores ctx, as a stalled reconcile does
		lateErrs <- writeBy(context.WithoutCancel(ctx), c, cm, "rev-1-late")
		lateErrs <- writeBy(context.Background(), c, cm, "rev-1-late")
		return nil
	})
	t.Cleanup(func() { resumeOnce.Do(func() { close(resume) }) })
	waitFor(t, maxAttemptWait+10*time.Second, "rev-1's fenced write to pass", func() bool { return by() == "rev-1" })
	lease, err := e.admin.CoordinationV1().Leases(e.ns).Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	written, err := cms.Get(ctx, "work", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := written.Annotations[fence.TermAnnotation]; got != leaseTerm(lease) {
		t.Fatalf("rev-1's write carries term %q; want the Lease's, %q", got, leaseTerm(lease))
	}

	if _, err := cms.Patch(ctx, "work", types.MergePatchType, []byte(`{"data":{"stall":"yes"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("rev-1's reconcile did not stall within 10s of the change")
	}
	startFencedOperator(t, e, "rev-2", func(ctx context.Context, c client.Client, cm *corev1.ConfigMap) error {
		return writeBy(ctx, c, cm, "rev-2")
	})
	waitFor(t, offered+fencedStopTimeout+10*time.Second, "rev-2 to take over and write", func() bool { return by() == "rev-2" })
	time.Sleep(fenceWindowBound) // see TestFencingWindow

	resumeOnce.Do(func() { close(resume) })
	for _, how := range []string{"with its reconcile's context", "with a context of its own"} {
		var err error
		select {
		case err = <-lateErrs:
		case <-time.After(10 * time.Second):
			t.Fatalf("rev-1's late write %s did not return within 10s", how)
		}
		if !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) || !strings.Contains(err.Error(), "fenced") || !strings.Contains(err.Error(), "has moved on to term") {
			t.Fatalf("rev-1's late write %s: %v; want kube-apiserver to refuse it as fenced, naming the new term", how, err)
		}
		t.Logf("late write %s refused (%s): %v", how, apierrors.ReasonForError(err), err)
	}
	if got := by(); got != "rev-2" {
		t.Fatalf("the object after rev-1's late writes was written by %q; want rev-2's write kept", got)
	}
	select {
	case <-rev1.finished:
		if !errors.Is(rev1.err, crelection.ErrLeadershipLost) {
			t.Fatalf("rev-1's Start returned %v; want ErrLeadershipLost", rev1.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rev-1's Start has not returned 10s after its stalled reconcile did")
	}
}

// fencedStopTimeout is how long a fenced operator's elector waits for its
// controllers before handing the lock over.
const fencedStopTimeout = 2 * time.Second

// writeBy merge-patches cm's data.by to value, as a reconcile's
// write.
func writeBy(ctx context.Context, c client.Client, cm *corev1.ConfigMap, value string) error {
	cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: cm.Namespace, Name: cm.Name}}
	return c.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"data":{"by":%q}}`, value))))
}

// startFencedOperator starts the manager of revision id, made WithFencing
// for ConfigMaps, whose controller calls write for each ConfigMap of the
// namespace; the higher revision outranks the lower. The test's cleanup
// stops it.
func startFencedOperator(t *testing.T, e *election, id string, write func(context.Context, client.Client, *corev1.ConfigMap) error) *operator {
	t.Helper()
	config := rest.CopyConfig(cp.Config())
	lock, err := rl.NewFromKubeconfig(rl.LeasesResourceLock, e.ns, e.name, rl.ResourceLockConfig{Identity: id, Key: id}, config, renewDeadline)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := crelection.NewManager(config, manager.Options{
		Logger:  klog.Background().WithValues("member", id),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{e.ns: {}}},
	}, le.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		StopTimeout:     fencedStopTimeout,
		KeyComparison:   func(holderKey string) bool { return id > holderKey },
		ReleaseOnCancel: true,
		Name:            e.ns,
	}, crelection.WithFencing(fence.Resource{Resource: "configmaps"}))
	if err != nil {
		t.Fatal(err)
	}
	reconciler := reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		if req.Name == "probe" {
			return reconcile.Result{}, nil
		}
		var cm corev1.ConfigMap
		if err := mgr.GetClient().Get(ctx, req.NamespacedName, &cm); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
		cm.Namespace = req.Namespace
		return reconcile.Result{}, write(ctx, mgr.GetClient(), &cm)
	})
	err = ctrl.NewControllerManagedBy(mgr).
		Named("fenced-" + id).
		For(&corev1.ConfigMap{}).
		WithOptions(controller.Options{EnableWarmup: ptr.To(true), SkipNameValidation: ptr.To(true)}).
		Complete(reconciler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{stop: cancel, finished: make(chan struct{})}
	go func() {
		defer close(op.finished)
		op.err = mgr.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-op.finished:
		case <-time.After(30 * time.Second):
			t.Errorf("%s's Start did not return within 30s of its context ending", id)
		}
	})
	return op
}
