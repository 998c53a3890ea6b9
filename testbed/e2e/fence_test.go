package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// fenceWindowBound bounds how long after the Lease changes hands the API
// server may still accept a write in the old term: its policy reads the
// Lease from a cache fed by a watch. TestFencingWindow measures it; the
// other tests make their stale writes once it has passed.
const fenceWindowBound = 500 * time.Millisecond

// fencePolicy installs fence's policy and binding for the ConfigMaps of
// e's namespace, and waits until the API server enforces it.
func fencePolicy(t *testing.T, e *election, writers ...string) {
	t.Helper()
	policy, binding, err := fence.Policy(fence.PolicyOptions{Namespace: e.ns, Lease: e.name, Resources: []fence.Resource{{Resource: "configmaps"}}, Writers: writers})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := e.admin.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	})
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	waitFor(t, 30*time.Second, "the API server to enforce the fencing policy", func() bool {
		_, err := writeStamped(e.admin, e.ns, "probe", "999999/nobody")
		return apierrors.IsForbidden(err) || apierrors.IsInvalid(err)
	})
}

// writeStamped creates or updates ConfigMap name carrying the given term.
func writeStamped(client kubernetes.Interface, ns, name, term string) (*corev1.ConfigMap, error) {
	cms := client.CoreV1().ConfigMaps(ns)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"at": time.Now().String()}}
	if term != "" {
		cm.Annotations = map[string]string{fence.TermAnnotation: term}
	}
	current, err := cms.Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return cms.Create(context.Background(), cm, metav1.CreateOptions{})
	}
	if err != nil {
		return nil, err
	}
	cm.ResourceVersion = current.ResourceVersion
	return cms.Update(context.Background(), cm, metav1.UpdateOptions{})
}

// TestFencing: with fence's policy installed, a leader's stamped writes
// pass; once a higher key has taken over, a write the deposed leader stamps
// with its old term is refused by the API server with a message naming both
// terms, while the new leader's writes, and writes nobody stamped, pass.
func TestFencing(t *testing.T) {
	e := newElection(t)
	fencePolicy(t, e)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()

	oldTerm := receiveWithin(t, startFenced(t, e, ctx, &wg, "canary-1", "canary").terms, electionSpan, "canary-1 to lead")
	stamped := func(term context.Context, name string) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}}
		if err := fence.Stamp(term, cm); err != nil {
			return err
		}
		_, err := e.admin.CoreV1().ConfigMaps(e.ns).Create(context.Background(), cm, metav1.CreateOptions{})
		return err
	}
	if err := stamped(oldTerm, "written-by-canary"); err != nil {
		t.Fatalf("the leader's stamped write was refused: %v", err)
	}

	newTerm := receiveWithin(t, startFenced(t, e, ctx, &wg, "stable-1", "stable").terms, electionSpan, "stable-1 to take over")
	time.Sleep(fenceWindowBound) // see TestFencingWindow
	err := stamped(oldTerm, "late-write-of-canary")
	if !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) || !strings.Contains(err.Error(), "fenced") || !strings.Contains(err.Error(), "has moved on to term") {
		t.Fatalf("the deposed leader's late write: %v; want it refused as fenced, naming the terms", err)
	}
	t.Logf("refused (%s): %v", apierrors.ReasonForError(err), err)
	if err := stamped(newTerm, "written-by-stable"); err != nil {
		t.Fatalf("the new leader's stamped write was refused: %v", err)
	}
	if _, err := writeStamped(e.admin, e.ns, "written-by-a-person", ""); err != nil {
		t.Fatalf("an unstamped write was refused in StampedOnly mode: %v", err)
	}
}

// leaseTerm is lease's current term as a stamp, as Term.String writes it.
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

// TestFencingLeaseRecreated: a leads in the first tenure of the Lease and
// dies without releasing; the Lease is deleted (kubectl delete, the garbage
// collector, a restore from a backup) and a, restarted, creates it again at
// leaseTransitions 0, naming a once more. A write stamped in the first
// tenure is refused, the policy naming the case; the new term's writes pass.
// So is a stamp of the format before terms carried the Lease's UID
// ("<leaseTransitions>/<holder>"), which a leader of an older version would
// send during a rolling upgrade: fail closed.
func TestFencingLeaseRecreated(t *testing.T) {
	e := newElection(t)
	fencePolicy(t, e)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()

	firstCtx, stopFirst := context.WithCancel(ctx)
	first := startFenced(t, e, firstCtx, &wg, "a", "")
	term1 := receiveWithin(t, first.terms, electionSpan, "a to lead in the first tenure")
	if err := first.write(term1, e.ns, "first-tenure"); err != nil {
		t.Fatalf("the leader's write in the first tenure: %v", err)
	}
	stopFirst() // no release: the Lease still names a
	leases := e.admin.CoordinationV1().Leases(e.ns)
	before, err := leases.Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := leases.Delete(ctx, e.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	second := startFenced(t, e, ctx, &wg, "a", "")
	term2 := receiveWithin(t, second.terms, electionSpan, "a to lead again, under a new Lease")
	after, err := leases.Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID == before.UID || after.Spec.LeaseTransitions == nil || *after.Spec.LeaseTransitions != 0 || *after.Spec.HolderIdentity != "a" {
		t.Fatalf("the Lease after it was deleted: UID %s (before %s), term %s; want a new Lease at transitions 0 naming a, the case to guard",
			after.UID, before.UID, leaseTerm(after))
	}
	time.Sleep(fenceWindowBound) // see TestFencingWindow
	err = first.write(context.WithoutCancel(term1), e.ns, "late-from-first-tenure")
	assertFenced(t, err, "a write stamped in the Lease's first tenure, sent in its second")
	if !strings.Contains(err.Error(), "since deleted") {
		t.Fatalf("the refusal of a write from a deleted Lease's tenure does not say so: %v", err)
	}
	t.Logf("refused: %v", err)
	if err := second.write(term2, e.ns, "second-tenure"); err != nil {
		t.Fatalf("the leader's write in the second tenure: %v", err)
	}
	_, err = writeStamped(e.admin, e.ns, "old-format", fmt.Sprintf("%d/%s", *after.Spec.LeaseTransitions, *after.Spec.HolderIdentity))
	assertFenced(t, err, "a write stamped in the format without the Lease's UID, naming the current transitions and holder")
	if !strings.Contains(err.Error(), "format before terms carried the Lease's UID") {
		t.Fatalf("the refusal of an old-format stamp does not say so: %v", err)
	}
}

// TestFencingWindow measures how long after the Lease changes hands the API
// server still accepts a write stamped with the old term (its policy reads
// the Lease through a cache), and what the policy costs a write.
func TestFencingWindow(t *testing.T) {
	e := newElection(t)
	leases := e.admin.CoordinationV1().Leases(e.ns)
	holder := "holder"
	lease, err := leases.Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: e.name, Namespace: e.ns},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseTransitions: new(int32)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fencePolicy(t, e)

	var windows []time.Duration
	for round := range 10 {
		term := leaseTerm(lease)
		if _, err := writeStamped(e.admin, e.ns, "window", term); err != nil {
			t.Fatalf("round %d: a write in the current term was refused: %v", round, err)
		}
		var lastAccepted atomic.Int64
		stop := make(chan struct{})
		var writer sync.WaitGroup
		for w := range 2 {
			writer.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
						Name: fmt.Sprintf("window-%d-%d-%d", round, w, i), Namespace: e.ns,
						Annotations: map[string]string{fence.TermAnnotation: term},
					}}
					sent := time.Now()
					if _, err := e.admin.CoreV1().ConfigMaps(e.ns).Create(context.Background(), cm, metav1.CreateOptions{}); err == nil {
						for {
							last := lastAccepted.Load()
							if sent.UnixNano() <= last || lastAccepted.CompareAndSwap(last, sent.UnixNano()) {
								break
							}
						}
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		next := *lease.Spec.LeaseTransitions + 1
		lease.Spec.LeaseTransitions = &next
		lease, err = leases.Update(context.Background(), lease, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		time.Sleep(time.Second)
		close(stop)
		writer.Wait()
		window := time.Duration(max(lastAccepted.Load()-changed.UnixNano(), 0))
		windows = append(windows, window)
		addFigure("fencing: old term still accepted after the Lease changed", window)
	}
	// The sharpest case: a write in the old term sent the moment the
	// Lease update returns, as a deposed leader's would be at worst.
	accepted, rounds := 0, 40
	for round := range rounds {
		term := leaseTerm(lease)
		next := *lease.Spec.LeaseTransitions + 1
		lease.Spec.LeaseTransitions = &next
		if lease, err = leases.Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("at-once-%d", round), Namespace: e.ns,
			Annotations: map[string]string{fence.TermAnnotation: term}}}
		if _, err := e.admin.CoreV1().ConfigMaps(e.ns).Create(context.Background(), cm, metav1.CreateOptions{}); err == nil {
			accepted++
			addFigure("fencing: old-term write sent at once, accepted, answered after", time.Since(changed))
		}
	}
	t.Logf("old-term writes sent the moment the Lease update returned: %d of %d accepted", accepted, rounds)

	slices.Sort(windows)
	if worst := windows[len(windows)-1]; worst > fenceWindowBound {
		t.Errorf("a write stamped with the old term was accepted %v after the Lease changed hands; the other tests assume at most %v", worst, fenceWindowBound)
	}

	// The cost: the same writes in a namespace the policy does not bind.
	other := newElection(t)
	for _, c := range []struct {
		name, ns string
		term     string
	}{{"fencing: write with the policy", e.ns, leaseTerm(lease)}, {"fencing: write without a policy", other.ns, "00000000-0000-0000-0000-000000000000/0/x"}} {
		for i := range 30 {
			start := time.Now()
			if _, err := writeStamped(e.admin, c.ns, fmt.Sprintf("cost-%d", i), c.term); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			addFigure(c.name, time.Since(start))
		}
	}
}

// fencedMember is one of our electors on e's Lease whose elector and whose
// writes each reach the API server through a fault proxy of their own.
type fencedMember struct {
	terms  <-chan context.Context
	lock   *faults.Proxy // the elector's traffic
	writes *faults.Proxy // the work's writes
	client kubernetes.Interface
}

func startFenced(t *testing.T, e *election, ctx context.Context, wg *sync.WaitGroup, id, key string) *fencedMember {
	t.Helper()
	m := &fencedMember{}
	var err error
	for _, p := range []**faults.Proxy{&m.lock, &m.writes} {
		if *p, err = faults.New(id, hostPort(cp.Config().Host)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup((*p).Close)
	}
	m.client = kubernetes.NewForConfigOrDie(fence.Config(m.writes.Config(cp.Config()), fence.Resource{Resource: "configmaps"}))
	lock, err := rl.NewFromKubeconfig(rl.LeasesResourceLock, e.ns, e.name, rl.ResourceLockConfig{Identity: id, Key: key}, m.lock.Config(cp.Config()), renewDeadline)
	if err != nil {
		t.Fatal(err)
	}
	terms := make(chan context.Context, 1)
	m.terms = terms
	elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
		Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
		KeyComparison: outranks(key), Name: e.ns,
		Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(term context.Context) { terms <- term; <-term.Done() },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { elector.Run(klog.NewContext(ctx, klog.Background().WithValues("member", id))) })
	return m
}

// write creates ConfigMap name with m's fenced client, in the term of ctx:
// the client stamps it.
func (m *fencedMember) write(term context.Context, ns, name string) error {
	_, err := m.client.CoreV1().ConfigMaps(ns).Create(term, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.CreateOptions{})
	return err
}

func assertFenced(t *testing.T, err error, what string) {
	t.Helper()
	if !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) || !strings.Contains(err.Error(), "has moved on to term") {
		t.Fatalf("%s: %v; want it refused as fenced", what, err)
	}
}

// TestFencingPartitionedLeader: the leader is cut off from the Lease; once
// another has taken over, the writes it still makes in its old term (its
// work had not heard yet, or its queue drained late) are refused.
func TestFencingPartitionedLeader(t *testing.T) {
	e := newElection(t)
	fencePolicy(t, e)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()

	a := startFenced(t, e, ctx, &wg, "a", "")
	aTerm := receiveWithin(t, a.terms, electionSpan, "a to lead")
	if err := a.write(aTerm, e.ns, "a-before"); err != nil {
		t.Fatalf("the leader's write: %v", err)
	}
	b := startFenced(t, e, ctx, &wg, "b", "")
	a.lock.Cut()
	bTerm := receiveWithin(t, b.terms, leaseDuration+2*maxAttemptWait+slack+renewDeadline, "b to take over from the cut-off leader")
	// Its term's context has ended by now; work that did not look (a
	// pause, a queue drained late) still writes with the term it holds.
	time.Sleep(fenceWindowBound)
	assertFenced(t, a.write(context.WithoutCancel(aTerm), e.ns, "a-after-partition"), "the partitioned leader's write in its old term")
	if err := b.write(bTerm, e.ns, "b-after"); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
}

// TestFencingLateWrite: the latency case. The leader sends a write that
// takes seconds to arrive; meanwhile a higher key takes over (a handoff, so
// the leader's work has stopped by then); the write lands after the Lease
// changed hands and is refused.
func TestFencingLateWrite(t *testing.T) {
	e := newElection(t)
	fencePolicy(t, e)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()

	a := startFenced(t, e, ctx, &wg, "canary-1", "canary")
	aTerm := receiveWithin(t, a.terms, electionSpan, "canary-1 to lead")
	const delay = 3 * time.Second
	// The connection opens before the delay, so that the write costs one
	// round trip through it, not a TLS handshake's several.
	if _, err := a.client.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.writes.Latency(delay); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	late := make(chan error, 1)
	go func() { late <- a.write(context.WithoutCancel(aTerm), e.ns, "late") }()
	b := startFenced(t, e, ctx, &wg, "stable-1", "stable")
	receiveWithin(t, b.terms, electionSpan, "stable-1 to take over")
	if took := time.Since(sent); took >= delay {
		t.Fatalf("the takeover took %v, longer than the write's delay (%v): the write did not land late", took, delay)
	}
	// Each way takes delay; a connection the client opens afresh takes
	// several round trips more.
	err := receiveWithin(t, late, 10*delay, "the late write to land")
	addFigure("fencing: late write answered after", time.Since(sent))
	assertFenced(t, err, "a write that landed after its sender lost the Lease")
}

// TestFencingOnlyChosenWriters: with Writers set to the controller's user,
// another user's edit that leaves an old stamp in place (a label, as kubectl
// adds one) passes, while the controller's write in the ended term is still
// refused.
func TestFencingOnlyChosenWriters(t *testing.T) {
	userConfig, err := cp.UnprivilegedConfig()
	if err != nil {
		t.Skipf("needs an embedded control plane: %v", err)
	}
	e := newElection(t)
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "edit-configmaps", Namespace: e.ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "update", "patch"}}},
	}
	if _, err := e.admin.RbacV1().Roles(e.ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "edit-configmaps", Namespace: e.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: controlplane.UnprivilegedUser}},
	}
	if _, err := e.admin.RbacV1().RoleBindings(e.ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	holder := "a"
	leases := e.admin.CoordinationV1().Leases(e.ns)
	lease, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: e.name, Namespace: e.ns},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseTransitions: new(int32)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fencePolicy(t, e, "controlplane-admin") // the controller's user here

	oldTerm := leaseTerm(lease)
	if _, err := writeStamped(e.admin, e.ns, "obj", oldTerm); err != nil {
		t.Fatalf("the leader's write: %v", err)
	}
	b, one := "b", int32(1)
	lease.Spec.HolderIdentity, lease.Spec.LeaseTransitions = &b, &one
	if lease, err = leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fenceWindowBound)

	user := kubernetes.NewForConfigOrDie(userConfig)
	if _, err := user.CoreV1().ConfigMaps(e.ns).Patch(ctx, "obj", types.MergePatchType, []byte(`{"metadata":{"labels":{"edited-by":"a-person"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("another user's label, on an object still stamped %s: %v; want it to pass", oldTerm, err)
	}
	_, err = writeStamped(e.admin, e.ns, "obj", oldTerm)
	if !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) || !strings.Contains(err.Error(), "has moved on to term "+leaseTerm(lease)) {
		t.Fatalf("the deposed controller's write in term %s: %v; want it refused", oldTerm, err)
	}
}
