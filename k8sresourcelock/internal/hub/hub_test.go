package hub

import (
	"context"
	"errors"
	"fmt"
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
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

// clients keeps one typed client per fake clientset, as a real clientset
// hands out (the fake makes a new one each time, and a shared watch is
// shared by client).
var clients = map[*fakekube.Clientset]coordinationv1client.CoordinationV1Interface{}

// namedLeaseLock is a Lease lock called name on cs.
func namedLeaseLock(cs *fakekube.Clientset, name string) *testLock {
	if clients[cs] == nil {
		clients[cs] = cs.CoordinationV1()
	}
	return &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Client: clients[cs],
		LockConfig: lockConfig{Identity: "w"}}
}

// next waits a moment for an event of w.
func next(t *testing.T, w watch.Interface) (watch.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		return ev, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return watch.Event{}, false
	}
}

// TestOneWatchServesManyLocks: locks of one namespace that share a client
// share one watch, and each sees the events of its own object only.
func TestOneWatchServesManyLocks(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	var watches []watch.Interface
	var locks []*testLock
	for i := range 10 {
		lock := namedLeaseLock(cs, fmt.Sprintf("election-%d", i))
		if err := lock.Create(ctx, record("a", "", 0)); err != nil {
			t.Fatal(err)
		}
		locks = append(locks, lock)
	}
	cs.ClearActions()
	for _, lock := range locks {
		w, err := lock.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watches = append(watches, w)
	}
	if n := count(cs, "watch"); n != 1 {
		t.Fatalf("10 locks opened %d watches, want 1", n)
	}
	writer := namedLeaseLock(cs, "election-3")
	if _, _, err := writer.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Update(ctx, record("b", "", 1)); err != nil {
		t.Fatal(err)
	}
	// (A watch may first get the state its lock read, if the shared watch
	// was still catching up when it subscribed.)
	for {
		ev, _ := next(t, watches[3])
		got := ev.Object.(*coordinationv1.Lease)
		if got.Name != "election-3" {
			t.Fatalf("election-3's watch got an event of %s", got.Name)
		}
		if *got.Spec.HolderIdentity == "b" {
			break
		}
	}
	for i, w := range watches {
		for drained := false; !drained; {
			select {
			case ev := <-w.ResultChan():
				if got := ev.Object.(*coordinationv1.Lease); got.Name != fmt.Sprintf("election-%d", i) || *got.Spec.HolderIdentity != "a" {
					t.Fatalf("election-%d's watch got %s holding %s", i, got.Name, *got.Spec.HolderIdentity)
				}
			default:
				drained = true
			}
		}
	}
}

// TestLateSubscriberCatchesUp: a lock that subscribes after a change it has
// not read gets that state at once; a state older than the one it read it
// never gets.
func TestLateSubscriberCatchesUp(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	first := namedLeaseLock(cs, "leader")
	if err := first.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	w1, err := first.Watch(ctx) // starts the hub
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	late := namedLeaseLock(cs, "leader")
	if _, _, err := late.Get(ctx); err != nil {
		t.Fatal(err)
	}
	writer := namedLeaseLock(cs, "leader")
	if _, _, err := writer.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Update(ctx, record("b", "", 1)); err != nil {
		t.Fatal(err)
	}
	for { // until the hub has seen it
		if ev, _ := next(t, w1); *ev.Object.(*coordinationv1.Lease).Spec.HolderIdentity == "b" {
			break
		}
	}
	w2, err := late.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	ev, _ := next(t, w2)
	if got := ev.Object.(*coordinationv1.Lease); *got.Spec.HolderIdentity != "b" {
		t.Fatalf("the late subscriber got holder %s, want b", *got.Spec.HolderIdentity)
	}
	// Up to date: nothing older than what it read comes.
	current := namedLeaseLock(cs, "leader")
	if _, _, err := current.Get(ctx); err != nil {
		t.Fatal(err)
	}
	read := current.ResourceVersion()
	w3, err := current.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Stop()
	select {
	case ev := <-w3.ResultChan():
		if got := ev.Object.(*coordinationv1.Lease).ResourceVersion; got < read {
			t.Fatalf("a subscriber that read version %s got an older one, %s", read, got)
		}
	case <-time.After(100 * time.Millisecond):
	}
}

// TestNoHubWhereNamespaceWatchIsForbidden: RBAC that allows watching only
// the lock's own name: the lock watches it alone.
func TestNoHubWhereNamespaceWatchIsForbidden(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	cs.PrependWatchReactor("leases", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if a.(k8stesting.WatchAction).GetWatchRestrictions().Fields.Empty() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "", errors.New("only by name"))
		}
		return false, nil, nil
	})
	lock := namedLeaseLock(cs, "leader")
	if err := lock.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	w, err := lock.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch with the namespace watch forbidden: %v", err)
	}
	defer w.Stop()
	if _, shared := w.(*subscription); shared {
		t.Fatal("got a shared watch the namespace's RBAC forbids")
	}
	// The refusal is remembered: the next watch asks for its name alone.
	cs.ClearActions()
	w2, err := lock.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if n := count(cs, "watch"); n != 1 {
		t.Fatalf("a second Watch sent %d watch requests, want 1 (the namespace watch was refused before)", n)
	}
}

// TestNoHubWithoutOrderedVersions: client-go's stock fake keeps whatever
// resourceVersion an object was seeded with; a hub whose list has no version,
// or that sees a version that does not grow, ends its subscriptions, and
// locks watch alone from then on.
func TestNoHubWithoutOrderedVersions(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "leader", ResourceVersion: "5"}})
	lock := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "leader"}, Client: cs.CoordinationV1(), LockConfig: lockConfig{Identity: "a"}}
	if _, _, err := lock.Get(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := lock.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Before v0.36 the fake's list has no version, and the hub refuses at
	// once. Later ones have one: write until the hub has seen the version
	// twice (some fakes replay the existing object to a new watch, some do
	// not).
	_, shared := w.(*subscription)
	for writes := 1; shared; writes++ {
		if writes > 3 {
			t.Fatal("the shared watch goes on after three writes at one version")
		}
		if err := lock.Update(ctx, record("a", "", writes)); err != nil {
			t.Fatal(err)
		}
		if _, ok := next(t, w); !ok {
			break // ended
		}
	}
	w.Stop()
	w, err = lock.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, shared := w.(*subscription); shared {
		t.Fatal("a shared watch again, for versions known not to grow")
	}
}

// watchOnly is a namespace source whose list is empty, at version 1, and
// whose watch is watchFn.
func watchOnly(watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) Source {
	return Source{
		List: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
		},
		Watch: watchFn,
	}
}

func count(cs *fakekube.Clientset, verb string) int { return cs.Count(verb, "") }

// lease is a Lease event of name at version rv.
func leaseEvent(name, rv string) watch.Event {
	return watch.Event{Type: watch.Modified, Object: &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: rv}}}
}

// changedLeaseEvent is leaseEvent with another state of the Lease at the
// same version: what client-go's stock fake, which keeps versions as they
// are, sends on a write.
func changedLeaseEvent(name, rv string) watch.Event {
	ev := leaseEvent(name, rv)
	holder := "someone-else"
	ev.Object.(*coordinationv1.Lease).Spec.HolderIdentity = &holder
	return ev
}

// TestHubGivesALockThatReadNothingTheStateItHas: a lock that found no
// object subscribes from "nothing read", so whatever state of its object
// the hub already has is news to it, and is its first event, even one
// without a resourceVersion (client-go's stock fake stores objects as they
// were written). The object may have been created between the lock's read
// and the hub's list: nothing else would ever tell the lock of it.
func TestHubGivesALockThatReadNothingTheStateItHas(t *testing.T) {
	key := Key{Client: new(struct{ int }), Namespace: ns, Resource: "leases"}
	created := coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine"}}
	src := Source{
		List: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: "2"}, Items: []coordinationv1.Lease{created}}, nil
		},
		Watch: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
	w, err := Subscribe(t.Context(), key, "mine", SinceVersion(false, ""), src)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if got, isLease := ev.Object.(*coordinationv1.Lease); !ok || !isLease || got.Name != "mine" {
			t.Fatalf("first event %v (open %v); want the state of mine the hub listed", ev, ok)
		}
	default:
		t.Fatal("a lock that read nothing subscribed and was not given the state of its object the hub listed (it has no resourceVersion): it would wait for a change that may never come")
	}
}

// TestHubDeliversOnlyNewerStatesOfTheName: a subscription gets the states
// of its own name newer than the one its lock read, in order, and nothing
// else; a version that does not grow ends it.
func TestHubDeliversOnlyNewerStatesOfTheName(t *testing.T) {
	source := watch.NewFake()
	key := Key{Client: new(struct{ int }), Namespace: ns, Resource: "leases"}
	w, err := Subscribe(t.Context(), key, "mine", "5", watchOnly(func(context.Context, metav1.ListOptions) (watch.Interface, error) { return source, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	source.Modify(leaseEvent("mine", "4").Object)   // older than our read
	source.Modify(leaseEvent("theirs", "6").Object) // another name
	source.Modify(leaseEvent("mine", "7").Object)
	ev, ok := next(t, w)
	if got := ev.Object.(*coordinationv1.Lease); !ok || got.Name != "mine" || got.ResourceVersion != "7" {
		t.Fatalf("first event: %s at %s, want mine at 7 (older states and other names are not ours)", got.Name, got.ResourceVersion)
	}
	source.Modify(changedLeaseEvent("mine", "7").Object) // a version that did not grow
	if _, ok := next(t, w); ok {
		t.Fatal("the subscription goes on after a version that did not grow")
	}
}

// leasesWithNamespaceWatch is a Leases client whose namespace-wide watches
// (a shared watch's: no field selector) go to nsWatch.
type leasesWithNamespaceWatch struct {
	coordinationv1client.LeasesGetter
	nsWatch func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

func (l *leasesWithNamespaceWatch) Leases(namespace string) coordinationv1client.LeaseInterface {
	return namespaceWatchLeases{l.LeasesGetter.Leases(namespace), l}
}

type namespaceWatchLeases struct {
	coordinationv1client.LeaseInterface
	outer *leasesWithNamespaceWatch
}

func (l namespaceWatchLeases) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if opts.FieldSelector == "" {
		return l.outer.nsWatch(ctx, opts)
	}
	return l.LeaseInterface.Watch(ctx, opts)
}

// TestHubGivesUpOnWatchesThatEndAtOnce: an API server that ends every
// watch at once (an internal error): the shared watch backs off, ends its
// subscriptions each time (their locks poll meanwhile), and gives up after
// a few, after which its locks watch alone.
func TestHubGivesUpOnWatchesThatEndAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cs := fakekube.New()
		var opened atomic.Int64
		client := &leasesWithNamespaceWatch{LeasesGetter: cs.CoordinationV1(), nsWatch: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
			if opened.Add(1) > 50 {
				t.Error("more than 50 shared watches opened: a hot loop")
				<-ctx.Done() // stop it, so that virtual time can pass
				return nil, ctx.Err()
			}
			w := watch.NewFakeWithChanSize(1, false)
			w.Error(&apierrors.NewInternalError(errors.New("etcd watch channel closed")).ErrStatus)
			w.Stop()
			return w, nil
		}}
		lock := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "ends"}, Client: client, LockConfig: lockConfig{Identity: "w"}}
		if err := lock.Create(ctx, record("a", "", 0)); err != nil {
			t.Fatal(err)
		}
		w, err := lock.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, shared := w.(*subscription); !shared {
			t.Fatal("no shared watch to begin with")
		}
		var last watch.Event
		for ev := range w.ResultChan() { // ends once the shared watch cannot resume
			last = ev
		}
		// Told as a broken watch, so that its lock watches again later
		// rather than giving up watching for good.
		if last.Type != watch.Error || !apierrors.IsServiceUnavailable(apierrors.FromObject(last.Object)) {
			t.Fatalf("the subscription ended after a %v event, want an error saying the shared watch broke", last.Type)
		}
		// Left unstopped, the subscription keeps the hub alive: it tries
		// again with a growing backoff, then gives up.
		time.Sleep(time.Minute)
		alone, err := lock.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, shared := alone.(*subscription)
		alone.Stop()
		w.Stop()
		if shared {
			t.Fatalf("the shared watch still serves after %d watches that ended at once", opened.Load())
		}
		if n := opened.Load(); n > maxEarlyHubEnds {
			t.Fatalf("the shared watch opened %d watches before giving up, want at most %d", n, maxEarlyHubEnds)
		}
	})
}

// TestHubOpeningHoldsUpNoOtherLock: a namespace whose API server does not
// answer its shared watch (an unreachable remote cluster) holds up no lock
// of another client or namespace: that lock's watch returns while the
// remote one is still waiting.
func TestHubOpeningHoldsUpNoOtherLock(t *testing.T) {
	ctx := context.Background()
	opening := make(chan struct{})
	var once sync.Once
	hanging := &leasesWithNamespaceWatch{LeasesGetter: fakekube.New().CoordinationV1(), nsWatch: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
		once.Do(func() { close(opening) })
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	remote := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: "remote", Name: "x"}, Client: hanging, LockConfig: lockConfig{Identity: "x"}}
	if err := remote.Create(ctx, record("x", "", 0)); err != nil {
		t.Fatal(err)
	}
	// The remote lock gives up after a while, so that a regression fails
	// with a message rather than hanging.
	remoteCtx, cancelRemote := context.WithTimeout(ctx, 5*time.Second)
	remoteDone := make(chan struct{})
	go func() {
		defer close(remoteDone)
		if w, err := remote.Watch(remoteCtx); err == nil {
			w.Stop()
		}
	}()
	defer func() { cancelRemote(); <-remoteDone }()
	select {
	case <-opening:
	case <-time.After(5 * time.Second):
		t.Fatal("the remote lock never started a shared watch")
	}
	local := namedLeaseLock(fakekube.New(), "y")
	if err := local.Create(ctx, record("y", "", 0)); err != nil {
		t.Fatal(err)
	}
	w, err := local.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	select {
	case <-remoteDone:
		t.Fatal("a lock of another client and namespace started its watch only after the remote one gave up")
	default:
	}
}

// TestSubscribingAsTheLastSubscriberLeaves: a lock that joins a hub just
// as its last subscription leaves (and the hub stops) joins a new hub,
// never the stopped one.
func TestSubscribingAsTheLastSubscriberLeaves(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	leaving, joining := namedLeaseLock(cs, "leaving"), namedLeaseLock(cs, "joining")
	for _, lock := range []*testLock{leaving, joining} {
		if err := lock.Create(ctx, record("a", "", 0)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := leaving.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := first.(*subscription).hub
	first.Stop() // the hub stops
	if _, err := old.add("joining", 0); !errors.Is(err, errHubClosed) {
		t.Fatalf("joining a stopped hub: err %v, want errHubClosed", err)
	}
	second, err := joining.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	if s, shared := second.(*subscription); !shared || s.hub == old {
		t.Fatal("the newcomer did not get a new shared watch")
	}
	writer := namedLeaseLock(cs, "joining")
	if _, _, err := writer.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Update(ctx, record("b", "", 1)); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := next(t, second)
		if !ok {
			t.Fatal("the newcomer's watch ended")
		}
		if *ev.Object.(*coordinationv1.Lease).Spec.HolderIdentity == "b" {
			return
		}
	}
}

// TestHubBreakingWhileASubscriberLeaves: run with -race; the hub marks
// itself broken while a subscription leaves.
func TestHubBreakingWhileASubscriberLeaves(t *testing.T) {
	source := watch.NewFake()
	key := Key{Client: new(struct{ int }), Namespace: ns, Resource: "leases"}
	watchFn := watchOnly(func(context.Context, metav1.ListOptions) (watch.Interface, error) { return source, nil })
	stays, err := Subscribe(t.Context(), key, "mine", "1", watchFn)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := Subscribe(t.Context(), key, "other", "1", watchFn)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); leaves.Stop() }()
	source.Modify(leaseEvent("mine", "7").Object)
	source.Modify(changedLeaseEvent("mine", "7").Object) // does not grow: the hub breaks
	// Read until the broken hub ends the subscription.
	for {
		if _, ok := next(t, stays); !ok {
			break
		}
	}
	<-done
	stays.Stop()
}

// TestHubOpeningOutlivesAnImpatientLock: the shared watch opens at the API
// server's pace, not at that of the first lock that asked for it: a lock
// that gives up waiting leaves alone, and one still waiting gets the
// shared watch once it opens. When every lock has given up, the opening is
// called off.
func TestHubOpeningOutlivesAnImpatientLock(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	answer := make(chan struct{})
	calledOff := make(chan struct{})
	client := &leasesWithNamespaceWatch{LeasesGetter: cs.CoordinationV1(), nsWatch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		select {
		case <-answer:
			return cs.CoordinationV1().Leases(ns).Watch(ctx, opts)
		case <-ctx.Done():
			close(calledOff)
			return nil, ctx.Err()
		}
	}}
	impatient := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}, Client: client, LockConfig: lockConfig{Identity: "a"}}
	patient := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"}, Client: client, LockConfig: lockConfig{Identity: "b"}}
	for _, lock := range []*testLock{impatient, patient} {
		if err := lock.Create(ctx, record(lock.Identity(), "", 0)); err != nil {
			t.Fatal(err)
		}
	}
	shortCtx, giveUp := context.WithCancel(ctx)
	impatientDone := make(chan error, 1)
	go func() {
		w, err := impatient.Watch(shortCtx)
		if err == nil {
			w.Stop()
		}
		impatientDone <- err
	}()
	patientDone := make(chan watch.Interface, 1)
	go func() {
		w, err := patient.Watch(ctx)
		if err != nil {
			t.Error(err)
		}
		patientDone <- w
	}()
	// Both wait for the opening; the first to have asked gives up.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		hubs.Lock()
		h := hubs.byKey[Key{Client: client, Namespace: ns, Resource: "leases"}]
		hubs.Unlock()
		waiting := 0
		if h != nil {
			h.mu.Lock()
			waiting = h.waiters
			h.mu.Unlock()
		}
		if waiting == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d locks wait for the shared watch, want 2", waiting)
		}
	}
	giveUp()
	if err := <-impatientDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the impatient lock got %v, want its own context's end", err)
	}
	close(answer)
	w := <-patientDone
	if w == nil {
		t.Fatal("the patient lock got no watch")
	}
	defer w.Stop()
	if _, shared := w.(*subscription); !shared {
		t.Fatal("the patient lock did not get the shared watch: the impatient one's give-up called it off")
	}
	select {
	case <-calledOff:
		t.Fatal("the opening was called off while a lock still waited for it")
	default:
	}

	// Alone, a lock that gives up calls the opening off.
	lone := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "c"}, Client: &leasesWithNamespaceWatch{LeasesGetter: cs.CoordinationV1(), nsWatch: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
		<-ctx.Done()
		close(calledOff)
		return nil, ctx.Err()
	}}, LockConfig: lockConfig{Identity: "c"}}
	if err := lone.Create(ctx, record("c", "", 0)); err != nil {
		t.Fatal(err)
	}
	loneCtx, stopLone := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stopLone()
	if _, err := lone.Watch(loneCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a lone lock whose context ended got %v", err)
	}
	select {
	case <-calledOff:
	case <-time.After(5 * time.Second):
		t.Fatal("the opening went on after the only lock waiting for it gave up")
	}
}

// TestHubResumesOneEarlyEndUnseen: a shared watch that ends early once
// resumes from where it was at once; its subscriptions go on, and see the
// next change.
func TestHubResumesOneEarlyEndUnseen(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	var opened atomic.Int64
	client := &leasesWithNamespaceWatch{LeasesGetter: cs.CoordinationV1(), nsWatch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		w, err := cs.CoordinationV1().Leases(ns).Watch(ctx, opts)
		if err == nil && opened.Add(1) == 1 {
			w.Stop() // the first watch ends at once
		}
		return w, err
	}}
	lock := &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "resumes"}, Client: client, LockConfig: lockConfig{Identity: "a"}}
	if err := lock.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	w, err := lock.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The write goes in once the hub has resumed: a fake's watch shows no
	// write made while it opened (v0.35's), or shows it twice (newer ones).
	for deadline := time.Now().Add(5 * time.Second); opened.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shared watch was opened %d times in 5s; want it resumed after its early end", opened.Load())
		}
	}
	writer := namedLeaseLock(cs, "resumes")
	if _, _, err := writer.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Update(ctx, record("b", "", 1)); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := next(t, w)
		if !ok || ev.Type == watch.Error {
			t.Fatalf("the subscription ended (%v) after one early end of the shared watch, which resumes at once", ev.Type)
		}
		if *ev.Object.(*coordinationv1.Lease).Spec.HolderIdentity == "b" {
			return
		}
	}
}

// TestHubIgnoresAReplayedState: a resumed watch that shows again the state
// the hub last had of an object (newer fakes replay it) is not mistaken for
// versions that do not grow; a different state at the same version is.
func TestHubIgnoresAReplayedState(t *testing.T) {
	h := newHub(Key{}, Source{})
	defer h.cancel()
	sub, err := h.add("replayed", 0)
	if err != nil {
		t.Fatal(err)
	}
	lease := func(holder string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "replayed", Namespace: ns, ResourceVersion: "7"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
	}
	for i := range 2 {
		if !h.dispatch("replayed", "7", watch.Event{Type: watch.Added, Object: lease("a")}) {
			t.Fatalf("dispatch %d of the same state gave the hub up", i+1)
		}
	}
	if ev, ok := next(t, sub); !ok || ev.Type != watch.Added {
		t.Fatalf("first event %v, %v; want the state, once", ev.Type, ok)
	}
	select {
	case ev := <-sub.ResultChan():
		t.Fatalf("the replayed state was delivered again: %v", ev.Type)
	default:
	}
	if h.dispatch("replayed", "7", watch.Event{Type: watch.Modified, Object: lease("b")}) {
		t.Fatal("a different state at the same version did not give the hub up")
	}
}

// modelLock is a Lease lock called name on the API server model s.
func modelLock(s *apiServerLeases, name string) *testLock {
	return &testLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Client: s, LockConfig: lockConfig{Identity: "w"}}
}

// watchShared reads lock and watches it, and fails unless the watch is the
// shared one.
func watchShared(t *testing.T, lock *testLock) watch.Interface {
	t.Helper()
	if _, _, err := lock.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	w, err := lock.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if _, shared := w.(*subscription); !shared {
		t.Fatalf("lock %s watches alone, want the shared watch", lock.Describe())
	}
	return w
}

// nextHolder reads w until an event of holder, and fails if w ends or
// reports an error first.
func nextHolder(t *testing.T, w watch.Interface, holder string) {
	t.Helper()
	for {
		ev, ok := next(t, w)
		if !ok || ev.Type == watch.Error {
			t.Fatalf("the shared watch ended (%v, %v) before holder %s came", ok, ev.Object, holder)
		}
		if l := ev.Object.(*coordinationv1.Lease); l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == holder {
			return
		}
	}
}

// TestHubSharesOnAfterEarlyEnds: on an API server, a shared watch that
// ends resumes from a point that is consistent for every object of the
// namespace, whether it is the first watch, which ends early, or a later one
// that started from scratch after its resume point expired: it goes on
// serving every lock, and no lock falls back to a watch of its own. (A watch
// without a resourceVersion lists the objects in key order, each at its own
// version; resuming from the last of those replays older changes of objects
// already seen, which looked like versions that do not grow.)
func TestHubSharesOnAfterEarlyEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newAPIServerLeases()
		s.write("a", "x")
		s.write("b", "x")
		s.write("a", "y") // a, renewed twice after b was last written
		s.write("a", "z")
		wa := watchShared(t, modelLock(s, "a"))
		wb := watchShared(t, modelLock(s, "b"))
		synctest.Wait()
		s.cut() // the first watch ends early
		s.write("a", "after-first-end")
		s.write("b", "after-first-end")
		nextHolder(t, wa, "after-first-end")
		nextHolder(t, wb, "after-first-end")

		// A later watch starts from scratch: the resume point expired.
		time.Sleep(healthyHubWatch)
		s.otherWrite()
		s.compact()
		s.cut()
		for _, w := range []watch.Interface{wa, wb} {
			if ev, ok := next(t, w); !ok || !apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) {
				t.Fatalf("after the resume point expired the subscription got %v, %v; want an error saying so", ev.Type, ok)
			}
		}
		s.write("b", "x")
		s.write("a", "y")
		s.write("a", "z")
		wa = watchShared(t, modelLock(s, "a"))
		wb = watchShared(t, modelLock(s, "b"))
		synctest.Wait()
		time.Sleep(healthyHubWatch)
		s.cut() // that later watch ends
		s.write("a", "after-later-end")
		s.write("b", "after-later-end")
		nextHolder(t, wa, "after-later-end")
		nextHolder(t, wb, "after-later-end")

		// Two early ends in a row end the subscriptions, but the locks
		// that subscribe again still share.
		s.cut()
		synctest.Wait()
		s.cut()
		for _, w := range []watch.Interface{wa, wb} {
			for ok := true; ok; _, ok = next(t, w) {
			}
		}
		wa = watchShared(t, modelLock(s, "a"))
		watchShared(t, modelLock(s, "b"))
		synctest.Wait()
		s.write("a", "after-two-early-ends")
		nextHolder(t, wa, "after-two-early-ends")
		if _, _, alone := s.served(); alone != 0 {
			t.Fatalf("%d locks fell back to a watch of their own after ends of the shared watch", alone)
		}
	})
}

// TestHubRereadsWhenItsResumePointExpired: a shared watch whose resume
// point was compacted away (410 Gone, in the watch's stream as the watch
// cache sends it, or as the watch opens) has lost track of its objects: it
// tells every subscription so, which makes each lock read its object again,
// lists the namespace again, and shares on.
func TestHubRereadsWhenItsResumePointExpired(t *testing.T) {
	for _, onOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("on open %v", onOpen), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newAPIServerLeases()
				s.expireOnOpen = onOpen
				s.write("a", "x")
				w := watchShared(t, modelLock(s, "a"))
				synctest.Wait()
				_, listed, _ := s.served()
				s.otherWrite() // the hub's version falls behind, then is compacted
				s.compact()
				s.cut()
				ev, ok := next(t, w)
				if !ok || ev.Type != watch.Error || !apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) {
					t.Fatalf("after its resume point expired the subscription got %v (open %v); want an error telling its lock to read again", ev.Type, ok)
				}
				if _, ok := next(t, w); ok {
					t.Fatal("the subscription goes on after its hub lost track of the objects")
				}
				time.Sleep(healthyHubWatch) // past any backoff
				synctest.Wait()
				if _, relisted, _ := s.served(); relisted <= listed {
					t.Fatal("the hub did not list the namespace again after its resume point expired")
				}
				w = watchShared(t, modelLock(s, "a"))
				s.write("a", "after-expiry")
				nextHolder(t, w, "after-expiry")
			})
		})
	}
}

// TestHubDeliversADeletionAtTheLastVersion: a clientset that deletes an
// object without giving the deletion a version of its own (the fakes send
// the object as last stored) still tells the subscribers of the deletion,
// once; it is neither swallowed as a replay, nor taken for versions that
// do not grow. A leader that renews at the lease's pace counts on its watch
// to tell it at once.
func TestHubDeliversADeletionAtTheLastVersion(t *testing.T) {
	h := newHub(Key{}, Source{})
	defer h.cancel()
	sub, err := h.add("deleted", 0)
	if err != nil {
		t.Fatal(err)
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "deleted", Namespace: ns, ResourceVersion: "7"}}
	if !h.dispatch("deleted", "7", watch.Event{Type: watch.Modified, Object: lease}) {
		t.Fatal("dispatch of the state gave the hub up")
	}
	if !h.dispatch("deleted", "7", watch.Event{Type: watch.Deleted, Object: lease.DeepCopy()}) {
		t.Fatal("a deletion at the object's last version gave the hub up")
	}
	if ev, ok := next(t, sub); !ok || ev.Type != watch.Modified {
		t.Fatalf("first event %v, %v; want the state", ev.Type, ok)
	}
	select {
	case ev, ok := <-sub.ResultChan():
		if !ok || ev.Type != watch.Deleted {
			t.Fatalf("second event %v, %v; want the deletion", ev.Type, ok)
		}
	default:
		t.Fatal("the deletion at the object's last version was not delivered")
	}
}

// TestPeekAnswersOnlyWhileTheHubWatches: Peek gives what the hub knows of an
// object, its absence included, only while the hub's watch runs; with no
// hub, or while its watch is being opened again, it answers nothing, and
// the lock must read the object itself.
func TestPeekAnswersOnlyWhileTheHubWatches(t *testing.T) {
	key := Key{Client: new(struct{ int }), Namespace: ns, Resource: "leases"}
	if _, ok := Peek(key, "mine"); ok {
		t.Fatal("Peek answered with no hub running")
	}
	mine := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine", ResourceVersion: "2"}}
	first := watch.NewFake()
	reopening := make(chan struct{})
	var watches atomic.Int64
	src := Source{
		List: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: "2"}, Items: []coordinationv1.Lease{*mine}}, nil
		},
		Watch: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
			if watches.Add(1) == 1 {
				return first, nil
			}
			close(reopening)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
	w, err := Subscribe(t.Context(), key, "mine", SinceVersion(true, "2"), src)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev, ok := Peek(key, "mine"); !ok || ev.Object == nil || versionOf(ev) != 2 {
		t.Fatalf("Peek of mine = %v, %v; want the state the hub listed", ev, ok)
	}
	if ev, ok := Peek(key, "other"); !ok || ev.Object != nil {
		t.Fatalf("Peek of an object the hub never saw = %v, %v; want it known to be absent", ev, ok)
	}
	gone := mine.DeepCopy()
	gone.ResourceVersion = "3"
	first.Delete(gone)
	if ev, ok := next(t, w); !ok || ev.Type != watch.Deleted {
		t.Fatalf("event %v, %v; want the deletion", ev.Type, ok)
	}
	if ev, ok := Peek(key, "mine"); !ok || ev.Object != nil {
		t.Fatalf("Peek of a deleted object = %v, %v; want it known to be absent", ev, ok)
	}
	first.Stop()
	select {
	case <-reopening:
	case <-time.After(5 * time.Second):
		t.Fatal("the hub did not open another watch within 5s of its first ending")
	}
	if ev, ok := Peek(key, "mine"); ok {
		t.Fatalf("Peek answered %v while the hub had no watch: what it knows may be old", ev)
	}
}

// TestLockGivingUpOnAnOpeningHubLeavesNoRequestPending: a lock that stops
// waiting for a hub still opening calls the hub's start off, and its
// Subscribe returns only once the hub's request has returned, so that a
// lock that watches again at once never has two requests pending.
func TestLockGivingUpOnAnOpeningHubLeavesNoRequestPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := Key{Client: new(struct{ int }), Namespace: ns, Resource: "leases"}
		release := make(chan struct{})
		var returned atomic.Bool
		src := Source{
			List: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
				return &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
			},
			Watch: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
				<-ctx.Done()
				<-release // the request takes a moment to return
				returned.Store(true)
				return nil, ctx.Err()
			},
		}
		ctx, giveUp := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := Subscribe(ctx, key, "mine", "0", src)
			done <- err
		}()
		synctest.Wait()
		giveUp()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Subscribe returned while the hub's watch request it called off was still pending")
		default:
		}
		close(release)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe = %v; want the lock's own cancellation", err)
		}
		if !returned.Load() {
			t.Fatal("Subscribe returned before the hub's watch request it called off")
		}
	})
}

// TestPeekAnswersNothingOnceTheHubHasLostTrack: from the moment the hub
// finds that its watch expired, and forgets what it knew, until a new list
// has told it again, Peek answers nothing: an object it no longer knows is
// not one it knows to be absent.
func TestPeekAnswersNothingOnceTheHubHasLostTrack(t *testing.T) {
	key := Key{Client: new(struct{ int }), Namespace: ns, Resource: "leases"}
	mine := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine", ResourceVersion: "2"}}
	src := Source{
		List: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: "2"}, Items: []coordinationv1.Lease{*mine}}, nil
		},
		Watch: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
	w, err := Subscribe(t.Context(), key, "mine", SinceVersion(true, "2"), src)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev, ok := Peek(key, "mine"); !ok || ev.Object == nil {
		t.Fatalf("Peek of mine = %v, %v; want the state the hub listed", ev, ok)
	}
	// What the hub's watch does when it is told its version expired,
	// before it returns to list again.
	w.(*subscription).hub.expire()
	if ev, ok := Peek(key, "mine"); ok {
		t.Fatalf("Peek answered %v, %v once the hub had forgotten every object; want no answer until it has listed again", ev.Object, ok)
	}
}
