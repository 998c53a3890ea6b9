package robustness

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

const (
	leaseName = "leader"
	logName   = "log"
	// intruder is the holder a third party writes into the Lease.
	intruder = "intruder"
)

// DefaultTiming is the suite's election timing, the e2e tier's: a
// failover takes seconds. The fence window is the e2e tier's bound on the
// policy's cache lag.
var DefaultTiming = Timing{
	LeaseDuration: 4 * time.Second,
	RenewDeadline: 3 * time.Second,
	RetryPeriod:   time.Second,
	FenceWindow:   500 * time.Millisecond,
	LivenessSlack: 500 * time.Millisecond,
}

// Suite runs schedules against one embedded control plane, with the
// candidate program built once.
type Suite struct {
	cp     *controlplane.ControlPlane
	admin  kubernetes.Interface
	binary string
	dir    string
	timing Timing
}

// NewSuite builds the candidate program and starts a control plane; dir
// receives their logs.
func NewSuite(dir string, timing Timing) (s *Suite, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make %s: %w", dir, err)
	}
	s = &Suite{dir: dir, timing: timing, binary: filepath.Join(dir, "candidate")}
	build := exec.Command("go", "build", "-o", s.binary, "github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/candidate")
	// Build inside the testbed module, wherever the harness was started
	// from: this file's directory is in it.
	if _, file, _, ok := runtime.Caller(0); ok {
		build.Dir = filepath.Dir(file)
	}
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the candidate: %w\n%s", err, out)
	}
	if s.cp, err = controlplane.Start(controlplane.Options{LogDir: dir}); err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	config := s.cp.Config()
	config.QPS = -1
	if s.admin, err = kubernetes.NewForConfig(config); err != nil {
		s.cp.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the control plane.
func (s *Suite) Close() { s.cp.Close() }

// run is one schedule's run.
type run struct {
	suite  *Suite
	sched  Schedule
	timing Timing
	ns     string
	dir    string
	rng    *rand.Rand
	// proxies[i] stands between candidate i and the API server; the
	// last one is the handoff candidate's.
	proxies []*faults.Proxy

	mu      sync.Mutex
	h       History
	procs   []*process
	leaseRV int64
	logRV   int64
	logs    []string
}

func (r *run) record(e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Events = append(r.h.Events, e)
}

func (r *run) gap(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Gaps = append(r.h.Gaps, what)
}

func (r *run) fault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Faults = append(r.h.Faults, f)
}

func (r *run) exited(x Exit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Exits = append(r.h.Exits, x)
}

// Run runs one schedule and returns its history. An error means the run
// could not be made (not that a property broke).
func (s *Suite) Run(ctx context.Context, sched Schedule) (*History, error) {
	r := &run{suite: s, sched: sched, timing: s.timing,
		ns:  fmt.Sprintf("robustness-%d-%s", sched.Seed, randomHex(3)),
		rng: rand.New(rand.NewPCG(sched.Seed, 1))}
	r.dir = filepath.Join(s.dir, r.ns)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	r.h = History{Seed: sched.Seed, Elector: sched.Elector, Timing: s.timing, Expect: sched.Expect}
	if sched.Elector == ElectorMixed {
		r.h.Electors = map[string]string{}
		for i := 0; i <= Candidates; i++ {
			r.h.Electors[candidateID(i)] = sched.ElectorOf(i)
		}
	}
	if _, err := s.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", r.ns, err)
	}
	defer func() {
		_ = s.admin.CoreV1().Namespaces().Delete(context.Background(), r.ns, metav1.DeleteOptions{})
	}()
	cleanup, err := r.fence(ctx)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	watchCtx, stopWatches := context.WithCancel(ctx)
	var watches sync.WaitGroup
	defer func() { stopWatches(); watches.Wait() }()
	if err := r.watch(watchCtx, &watches); err != nil {
		return nil, err
	}
	u, err := url.Parse(s.cp.Config().Host)
	if err != nil {
		return nil, err
	}
	for i := 0; i <= Candidates; i++ {
		p, err := faults.New(fmt.Sprintf("%s-c%d", r.ns, i+1), u.Host)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		r.proxies = append(r.proxies, p)
	}

	r.h.Start = event.Now()
	began := time.Now()
	for i := 0; i < Candidates; i++ {
		p, err := r.spawn(candidateID(i), "1", sched.ElectorOf(i), r.proxies[i])
		if err != nil {
			r.stopAll()
			return nil, err
		}
		r.procs = append(r.procs, p)
	}
	for _, planned := range sched.Faults {
		if !sleepUntil(ctx, began.Add(planned.At)) {
			break
		}
		if err := r.inject(ctx, planned); err != nil {
			r.gap(fmt.Sprintf("fault %s: %v", planned, err))
		}
	}
	sleepUntil(ctx, began.Add(sched.Duration))
	r.h.End = event.Now()
	r.stopAll()
	r.settle(ctx)
	stopWatches()
	watches.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.h
	return &h, nil
}

func candidateID(i int) string { return fmt.Sprintf("c%d", i+1) }

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

// stopAll heals every fault and tells every candidate to stop.
func (r *run) stopAll() {
	for _, p := range r.proxies {
		_ = p.Heal()
	}
	var wg sync.WaitGroup
	for _, p := range r.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.exited(p.stop(r.timing.RenewDeadline + 5*time.Second))
		}()
	}
	wg.Wait()
}

// settle waits until the watches have delivered the last versions of the
// Lease and the log, and reads the final log.
func (r *run) settle(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	var lease, log int64
	l, err := r.suite.admin.CoordinationV1().Leases(r.ns).Get(ctx, leaseName, metav1.GetOptions{})
	switch {
	case err == nil:
		lease, _ = strconv.ParseInt(l.ResourceVersion, 10, 64)
	case !apierrors.IsNotFound(err):
		// Without the last version there is nothing to wait for: the
		// Lease's last changes may be missing.
		r.gap(fmt.Sprintf("read the final Lease: %v", err))
	}
	call := event.Now()
	cm, err := r.suite.admin.CoreV1().ConfigMaps(r.ns).Get(ctx, logName, metav1.GetOptions{})
	if err == nil || apierrors.IsNotFound(err) {
		r.h.FinalRead = LogRead{Call: call, Return: event.Now()}
	}
	if err == nil {
		log, _ = strconv.ParseInt(cm.ResourceVersion, 10, 64)
		r.h.FinalLog = lines(cm.Data["log"])
		r.h.FinalRead.RV = log
	} else if !apierrors.IsNotFound(err) {
		r.gap(fmt.Sprintf("read the final log: %v", err))
	}
	for {
		r.mu.Lock()
		caught := r.leaseRV >= lease && r.logRV >= log
		r.mu.Unlock()
		if caught {
			return
		}
		if time.Now().After(deadline) {
			r.gap(fmt.Sprintf("the watches did not reach the final versions (lease rv %d, log rv %d) within 10s", lease, log))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// fence installs the fencing policy for the run's namespace and waits until
// the API server enforces it.
func (r *run) fence(ctx context.Context) (func(), error) {
	policy, binding, err := fence.Policy(fence.PolicyOptions{Name: "fence-" + r.ns, Namespace: r.ns, Lease: leaseName, Resources: []fence.Resource{{Resource: "configmaps"}}})
	if err != nil {
		return func() {}, err
	}
	api := r.suite.admin.AdmissionregistrationV1()
	cleanup := func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	}
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		return cleanup, fmt.Errorf("create the fencing policy: %w", err)
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return cleanup, fmt.Errorf("create the fencing policy's binding: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: r.ns,
			Annotations: map[string]string{fence.TermAnnotation: "none/0/nobody"}}}
		_, err := r.suite.admin.CoreV1().ConfigMaps(r.ns).Create(ctx, probe, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return cleanup, nil
		}
		if err == nil {
			_ = r.suite.admin.CoreV1().ConfigMaps(r.ns).Delete(ctx, probe.Name, metav1.DeleteOptions{})
		}
		if time.Now().After(deadline) {
			return cleanup, fmt.Errorf("the API server did not enforce the fencing policy within 30s (last probe: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watch records every version of the Lease and of the log, from before any
// candidate starts.
func (r *run) watch(ctx context.Context, wg *sync.WaitGroup) error {
	leases := r.suite.admin.CoordinationV1().Leases(r.ns)
	cms := r.suite.admin.CoreV1().ConfigMaps(r.ns)
	leaseList, err := leases.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	cmList, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	selector := func(name string) metav1.ListOptions {
		return metav1.ListOptions{FieldSelector: "metadata.name=" + name}
	}
	follow := func(what, from string, open func(metav1.ListOptions) (watch.Interface, error), list func(metav1.ListOptions) (string, []kruntime.Object, error), handle func(watch.Event) string) {
		defer wg.Done()
		rv := from
		// resume lists the object when its watch cannot resume from
		// rv (too old: a restarted API server's watch cache starts at
		// the revision it started at). If the object is still at rv,
		// nothing was missed; otherwise its versions in between may
		// have been, which is a gap.
		// resume goes on when the watch cannot resume from rv (too
		// old: a restarted API server's watch cache starts at the
		// revision it started at, which the error names). It reads
		// the object as it was at that revision, from etcd: if it is
		// still the version last seen, nothing was missed and the
		// watch resumes from there; otherwise versions were missed,
		// which is a gap.
		resume := func(cause error) {
			opts := selector(what)
			if m := oldestRV.FindStringSubmatch(cause.Error()); m != nil {
				opts.ResourceVersion, opts.ResourceVersionMatch = m[1], metav1.ResourceVersionMatchExact
			}
			listRV, items, err := list(opts)
			if err != nil {
				return
			}
			for _, o := range items {
				meta, err := apimeta.Accessor(o)
				if err != nil || meta.GetResourceVersion() == rv {
					continue
				}
				r.gap(fmt.Sprintf("watch %s: could not resume from rv %s (%v); versions before rv %s may be missing", what, rv, cause, meta.GetResourceVersion()))
				handle(watch.Event{Type: watch.Modified, Object: o})
			}
			rv = listRV
		}
		for ctx.Err() == nil {
			opts := selector(what)
			opts.ResourceVersion = rv
			w, err := open(opts)
			if err != nil {
				// A watch that cannot open (the API server
				// restarting) resumes from rv later and loses
				// nothing, unless rv is too old by then.
				if ctx.Err() == nil && (apierrors.IsResourceExpired(err) || apierrors.IsGone(err)) {
					resume(err)
				}
				if ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					if ctx.Err() != nil {
						break
					}
					err := apierrors.FromObject(ev.Object)
					if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
						resume(err)
					} else {
						r.gap(fmt.Sprintf("watch %s: %v", what, err))
					}
					break
				}
				next := handle(ev)
				if next == "" {
					// No version of the object: where the watch is
					// stays the last version seen, and what the event
					// stood for is unknown.
					r.gap(fmt.Sprintf("watch %s: an event (%s) of an unexpected object %T", what, ev.Type, ev.Object))
					continue
				}
				rv = next
			}
			w.Stop()
		}
	}
	wg.Add(2)
	go follow(leaseName, leaseList.ResourceVersion, func(o metav1.ListOptions) (watch.Interface, error) { return leases.Watch(ctx, o) },
		func(o metav1.ListOptions) (string, []kruntime.Object, error) {
			l, err := leases.List(ctx, o)
			if err != nil {
				return "", nil, err
			}
			items := make([]kruntime.Object, len(l.Items))
			for i := range l.Items {
				items[i] = &l.Items[i]
			}
			return l.ResourceVersion, items, nil
		}, r.onLease)
	go follow(logName, cmList.ResourceVersion, func(o metav1.ListOptions) (watch.Interface, error) { return cms.Watch(ctx, o) },
		func(o metav1.ListOptions) (string, []kruntime.Object, error) {
			l, err := cms.List(ctx, o)
			if err != nil {
				return "", nil, err
			}
			items := make([]kruntime.Object, len(l.Items))
			for i := range l.Items {
				items[i] = &l.Items[i]
			}
			return l.ResourceVersion, items, nil
		}, r.onLog)
	return nil
}

func (r *run) onLease(ev watch.Event) string {
	lease, ok := ev.Object.(*coordinationv1.Lease)
	if !ok {
		return ""
	}
	rv, _ := strconv.ParseInt(lease.ResourceVersion, 10, 64)
	e := LeaseEvent{Recv: event.Now(), RV: rv, Deleted: ev.Type == watch.Deleted, Term: leaseTerm(lease)}
	if lease.Spec.HolderIdentity != nil {
		e.Holder = *lease.Spec.HolderIdentity
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Lease = append(r.h.Lease, e)
	r.leaseRV = rv
	return lease.ResourceVersion
}

// leaseTerm is the Lease's term as a fence stamp writes it.
func leaseTerm(lease *coordinationv1.Lease) string {
	var transitions int32
	if lease.Spec.LeaseTransitions != nil {
		transitions = *lease.Spec.LeaseTransitions
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	return fmt.Sprintf("%s/%d/%s", lease.UID, transitions, holder)
}

func (r *run) onLog(ev watch.Event) string {
	cm, ok := ev.Object.(*corev1.ConfigMap)
	if !ok {
		return ""
	}
	rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
	now := lines(cm.Data["log"])
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logRV = rv
	if ev.Type == watch.Deleted {
		r.h.Gaps = append(r.h.Gaps, fmt.Sprintf("the log was deleted at rv %d", rv))
		r.logs = nil
		return cm.ResourceVersion
	}
	e := LogEvent{Recv: event.Now(), RV: rv, Stamp: cm.Annotations[fence.TermAnnotation]}
	if len(now) >= len(r.logs) && slices.Equal(now[:len(r.logs)], r.logs) {
		e.Added = now[len(r.logs):]
	} else {
		e.Added, e.Rewritten = now, true
	}
	r.logs = now
	r.h.Log = append(r.h.Log, e)
	return cm.ResourceVersion
}

// leader returns the index of the candidate that acts now, as far as its
// events tell, or -1.
func (r *run) leader() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	acting := map[string]bool{}
	for _, e := range r.h.Events {
		switch e.Kind {
		case event.Start:
			acting[fmt.Sprintf("%s/%d", e.ID, e.PID)] = true
		case event.End:
			delete(acting, fmt.Sprintf("%s/%d", e.ID, e.PID))
		}
	}
	for i, p := range r.procs {
		if i < Candidates && acting[fmt.Sprintf("%s/%d", p.id, p.pid())] {
			return i
		}
	}
	return -1
}

// inject applies one planned fault and heals it when its time is up.
func (r *run) inject(ctx context.Context, planned Planned) error {
	target := planned.Target
	if target < 0 {
		if target = r.leader(); target < 0 {
			target = r.rng.IntN(Candidates)
		}
	}
	p := r.procs[target]
	f := Fault{Kind: planned.Kind, Target: p.id, PID: p.pid(), InBounds: planned.InBounds, Param: planned.For.String()}
	wait := func() { sleepUntil(ctx, time.Now().Add(planned.For)) }
	switch planned.Kind {
	case KindKill:
		f.Start = event.Now()
		r.exited(p.kill())
		wait()
		restarted, err := r.spawn(p.id, "1", r.sched.ElectorOf(target), r.proxies[target])
		if err != nil {
			return err
		}
		r.procs[target] = restarted
	case KindPause:
		f.Start = event.Now()
		p.signal(syscall.SIGSTOP)
		wait()
		p.signal(syscall.SIGCONT)
	case KindLatency, KindBlackHole, KindReset:
		proxy := r.proxies[target]
		f.Start = event.Now()
		var err error
		switch planned.Kind {
		case KindLatency:
			f.Param, f.Latency = fmt.Sprintf("%v for %v", planned.Latency, planned.For), planned.Latency
			err = proxy.Latency(planned.Latency)
		case KindBlackHole:
			err = proxy.BlackHole()
		default:
			proxy.Cut()
		}
		if err != nil {
			return err
		}
		wait()
		if err := proxy.Heal(); err != nil {
			return err
		}
	case KindClock:
		f.Param, f.Rate = fmt.Sprintf("rate %.2f for %v", planned.Rate, planned.For), planned.Rate
		f.Start = event.Now()
		p.setRate(planned.Rate)
		wait()
		p.setRate(1)
	case KindLeaseDeleted:
		f.Target, f.PID, f.Param = "", 0, ""
		f.Start = event.Now()
		err := r.suite.admin.CoordinationV1().Leases(r.ns).Delete(ctx, leaseName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	case KindForeignHolder:
		f.Target, f.PID, f.Param = "", 0, intruder
		f.Start = event.Now()
		if err := r.writeForeignHolder(ctx); err != nil {
			return err
		}
	case KindAPIServerRestart:
		f.Target, f.PID, f.Param = "", 0, "down "+planned.For.String()
		f.Start = event.Now()
		if err := r.suite.cp.StopAPIServer(); err != nil {
			return err
		}
		wait()
		// Heal even if the run's context ended: the next schedule
		// needs the API server.
		if err := r.suite.cp.StartAPIServer(); err != nil {
			return fmt.Errorf("start kube-apiserver again: %w", err)
		}
	case KindEtcdRestart:
		f.Target, f.PID, f.Param = "", 0, "down "+planned.For.String()
		f.Start = event.Now()
		if err := r.suite.cp.StopEtcd(); err != nil {
			return err
		}
		// A stop that waits for the API server's watches to end
		// serves them meanwhile: the fault would be another than
		// planned, which makes a gap (and fails the short slice).
		if took := time.Duration(event.Now() - f.Start); took > 3*time.Second {
			r.gap(fmt.Sprintf("fault %s: etcd took %v to stop", planned, took))
		}
		wait()
		// Heal even if the run's context ended: the next schedule
		// needs etcd.
		if err := r.suite.cp.StartEtcd(); err != nil {
			return fmt.Errorf("start etcd again: %w", err)
		}
	case KindEtcdSlowDisk:
		f.Target, f.PID = "", 0
		f.Param, f.Latency = fmt.Sprintf("%v each way for %v", planned.Latency, planned.For), planned.Latency
		f.Start = event.Now()
		if err := r.suite.cp.SlowEtcd(planned.Latency); err != nil {
			return err
		}
		wait()
		if err := r.suite.cp.HealEtcd(); err != nil {
			return err
		}
	case KindConflictStorm:
		f.Target, f.PID = "", 0
		f.Start = event.Now()
		n, conflicts := r.conflictStorm(ctx, planned.For)
		f.Param = fmt.Sprintf("%d writes (%d conflicted) in %v", n, conflicts, planned.For)
	case KindHandoff:
		f.Target, f.Param = candidateID(Candidates), "key 2 for "+planned.For.String()
		f.Start = event.Now()
		joiner, err := r.spawn(candidateID(Candidates), "2", r.sched.ElectorOf(Candidates), r.proxies[Candidates])
		if err != nil {
			return err
		}
		f.PID = joiner.pid()
		wait()
		r.exited(joiner.stop(r.timing.RenewDeadline + 5*time.Second))
	default:
		return fmt.Errorf("unknown fault kind %q", planned.Kind)
	}
	f.End = event.Now()
	r.fault(f)
	return nil
}

// writeForeignHolder makes the Lease name a holder no candidate knows, as a
// third party (a person, a backup restore, another controller) would.
func (r *run) writeForeignHolder(ctx context.Context) error {
	leases := r.suite.admin.CoordinationV1().Leases(r.ns)
	for range 5 {
		lease, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		holder := intruder
		seconds := int32(r.timing.LeaseDuration / time.Second)
		transitions := int32(1)
		if lease.Spec.LeaseTransitions != nil {
			transitions = *lease.Spec.LeaseTransitions + 1
		}
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.LeaseTransitions = &holder, &seconds, &transitions
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		lease.Annotations = nil
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errors.New("the Lease kept changing: 5 conflicts")
}

// conflictStorm rewrites the Lease's annotation and label stormAnnotation,
// conditional on the version it read, as fast as it can with a pause of
// 5–30 ms, for d: every candidate's write that read a version before one of
// these conflicts. It leaves the holder, the times and the transitions as
// they are. It returns how many writes it made and how many conflicted.
func (r *run) conflictStorm(ctx context.Context, d time.Duration) (writes, conflicts int) {
	leases := r.suite.admin.CoordinationV1().Leases(r.ns)
	deadline := time.Now().Add(d)
	for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		lease, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		if err == nil {
			if lease.Annotations == nil {
				lease.Annotations = map[string]string{}
			}
			if lease.Labels == nil {
				lease.Labels = map[string]string{}
			}
			lease.Annotations[stormAnnotation] = strconv.Itoa(n)
			lease.Labels[stormAnnotation] = strconv.Itoa(n)
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
			writes++
			if apierrors.IsConflict(err) {
				conflicts++
			}
		}
		sleepUntil(ctx, time.Now().Add(5*time.Millisecond+time.Duration(r.rng.Int64N(int64(25*time.Millisecond)))))
	}
	return writes, conflicts
}

// oldestRV reads the oldest revision a watch cache serves from its "too old
// resource version" error.
var oldestRV = regexp.MustCompile(`too old resource version: \d+ \((\d+)\)`)

// stormAnnotation is the annotation and label a conflict storm rewrites.
const stormAnnotation = "robustness.k8sleaderelection.io/storm"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
