package e2e

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/group"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// spreadSettle is the groups' Settle in this suite.
const spreadSettle = time.Second

// spreadFleet records, from the callbacks, who leads each election of a
// group: two leaders of one election at once is an overlap.
type spreadFleet struct {
	mu       sync.Mutex
	leading  map[string]map[string]bool
	terms    map[string][]string
	overlaps []string
}

func newSpreadFleet() *spreadFleet {
	return &spreadFleet{leading: map[string]map[string]bool{}, terms: map[string][]string{}}
}

func (f *spreadFleet) begin(election, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leading[election] == nil {
		f.leading[election] = map[string]bool{}
	}
	for other := range f.leading[election] {
		f.overlaps = append(f.overlaps, fmt.Sprintf("%s started leading %s while %s led it", id, election, other))
	}
	f.leading[election][id] = true
	f.terms[election] = append(f.terms[election], id)
}

func (f *spreadFleet) end(election, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.leading[election], id)
}

// loads returns how many elections each member leads, and how many have no
// single leader.
func (f *spreadFleet) loads(elections []string) (map[string]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, unled := map[string]int{}, 0
	for _, e := range elections {
		if len(f.leading[e]) != 1 {
			unled++
			continue
		}
		for id := range f.leading[e] {
			n[id]++
		}
	}
	return n, unled
}

func (f *spreadFleet) mark() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for e, ts := range f.terms {
		out[e] = len(ts)
	}
	return out
}

// movesSince checks that the terms begun since mark are want moves, each
// election moving at most once, each to one of to.
func (f *spreadFleet) movesSince(t *testing.T, mark map[string]int, want int, to ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	got := 0
	for e, ts := range f.terms {
		moved := ts[mark[e]:]
		if len(moved) > 1 {
			t.Errorf("election %s moved %d times (%v), want at most once", e, len(moved), moved)
		}
		for _, id := range moved {
			got++
			if !slices.Contains(to, id) {
				t.Errorf("election %s moved to %s, want only to %v", e, id, to)
			}
		}
	}
	if got != want {
		t.Errorf("%d elections moved, want %d", got, want)
	}
}

func (f *spreadFleet) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.overlaps) > 0 {
		t.Fatalf("two leaders of one election at once, %d times; first: %s", len(f.overlaps), f.overlaps[0])
	}
}

// spreadReplica is one member of a group, with its own client, which a
// crash cuts off.
type spreadReplica struct {
	id     string
	crash  *faults.Switch
	cancel context.CancelFunc
	done   chan struct{}
}

func startSpreadReplica(t *testing.T, ns, id string, f *spreadFleet, elections []string, wrap ...func(coordinationv1client.LeasesGetter) coordinationv1client.LeasesGetter) *spreadReplica {
	t.Helper()
	crash := &faults.Switch{}
	// Each of the twelve leaders renews every RetryPeriod: more than
	// client-go's default 5 requests per second.
	restConfig := crash.Wrap(cp.Config())
	restConfig.QPS, restConfig.Burst = 50, 100
	client := kubernetes.NewForConfigOrDie(restConfig)
	var leases coordinationv1client.LeasesGetter = client.CoordinationV1()
	for _, w := range wrap {
		leases = w(leases)
	}
	config := group.Config{
		Name:          "istiod",
		Namespace:     ns,
		Client:        leases,
		Identity:      id,
		Key:           "default",
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		Settle:        spreadSettle,
	}
	for _, name := range elections {
		config.Elections = append(config.Elections, group.Election{Name: name, Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				f.begin(name, id)
				<-ctx.Done()
				f.end(name, id)
			},
			OnStoppedLeading: func() {},
		}})
	}
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background().WithValues("member", id)))
	r := &spreadReplica{id: id, crash: crash, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := group.Run(ctx, config); err != nil {
			t.Errorf("member %s: %v", id, err)
		}
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *spreadReplica) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Errorf("member %s: Run did not return within a minute of its context ending", r.id)
	}
	return time.Since(start)
}

func spreadBalanced(f *spreadFleet, elections []string, want map[string]int) func() bool {
	return func() bool {
		n, unled := f.loads(elections)
		return unled == 0 && maps.Equal(n, want)
	}
}

// TestSpreadOnKubeAPIServer runs twelve elections over three members on
// kube-apiserver; a fourth joins and takes exactly three; one leaves
// cleanly and its three go to the others; one crashes and each of its
// elections moves once, straight to its owner among the survivors, all
// within LeaseDuration + 0.5 s, balanced at once. No election ever has two
// leaders.
func TestSpreadOnKubeAPIServer(t *testing.T) {
	e := newElection(t)
	// Runs after every replica's Run has returned (cleanups run last
	// first).
	t.Cleanup(func() { checkNoGroupLeaks(t) })
	var elections []string
	for i := range 12 {
		elections = append(elections, fmt.Sprintf("shard-%02d", i))
	}
	f := newSpreadFleet()
	startSpreadReplica(t, e.ns, "a", f, elections)
	b := startSpreadReplica(t, e.ns, "b", f, elections)
	c := startSpreadReplica(t, e.ns, "c", f, elections)
	took := waitFor(t, 30*time.Second, "three members balanced", spreadBalanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}))
	addFigure("spread: 3 members start to balance", took)
	// Membership costs at most one write per member per lease period.
	const periods = 3
	writes := memberWrites(t, e.ns, periods*leaseDuration)
	t.Logf("membership: %d writes of the member Leases by 3 members in %d lease periods", writes, periods)
	if limit := 3*periods + 3; writes > limit {
		t.Errorf("3 members wrote their Leases %d times in %d lease periods, want at most one per member per period (%d)", writes, periods, limit)
	}
	f.check(t)

	mark := f.mark()
	startSpreadReplica(t, e.ns, "d", f, elections)
	took = waitFor(t, 30*time.Second, "a fourth member balanced", spreadBalanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}))
	addFigure("spread: join to balance", took)
	time.Sleep(2 * leaseDuration)
	f.movesSince(t, mark, 3, "d")
	f.check(t)

	mark = f.mark()
	start := time.Now()
	left := c.stop(t)
	waitFor(t, 30*time.Second, "balanced after a clean leave", spreadBalanced(f, elections, map[string]int{"a": 4, "b": 4, "d": 4}))
	addFigure("spread: clean leave, Run returns", left)
	addFigure("spread: clean leave to balance", time.Since(start))
	time.Sleep(2 * leaseDuration)
	f.movesSince(t, mark, 3, "a", "b", "d")
	f.check(t)

	// b crashes: each of its elections goes straight to the survivor the
	// assignment without b names, once, so the survivors are balanced the
	// moment all are led again; nothing moves when b's member Lease runs
	// out later.
	mark = f.mark()
	b.crash.Crash()
	start = time.Now()
	took = waitFor(t, 30*time.Second, "a crashed member's elections led again", func() bool {
		n, unled := f.loads(elections)
		return unled == 0 && n["b"] == 0
	})
	addFigure("spread: crash to all led again", took)
	if limit := leaseDuration + slack; took > limit {
		t.Errorf("a crashed member's elections were led again after %v, want at most LeaseDuration + 0.5s, %v", took, limit)
	}
	if n, _ := f.loads(elections); !maps.Equal(n, map[string]int{"a": 6, "d": 6}) {
		t.Errorf("the moment a crashed member's elections were all led again the survivors led %v, want 6 each", n)
	} else {
		addFigure("spread: crash to balance", took)
	}
	// Past b's member Lease (twice LeaseDuration after its last renewal).
	time.Sleep(2*leaseDuration + slack)
	f.movesSince(t, mark, 4, "a", "d")
	if n, unled := f.loads(elections); unled != 0 || !maps.Equal(n, map[string]int{"a": 6, "d": 6}) {
		t.Errorf("after the crashed member's Lease ran out the survivors led %v (%d without one leader), want 6 each", n, unled)
	}
	f.check(t)
}

// laggingView delays the events of the members' watch (the label-selected
// one) by lag, so that this replica sees members come, renew and go lag
// later than the others do: views that disagree. Its elections' Leases are
// seen as fast as the others see them.
func laggingView(lag time.Duration) func(coordinationv1client.LeasesGetter) coordinationv1client.LeasesGetter {
	return func(g coordinationv1client.LeasesGetter) coordinationv1client.LeasesGetter {
		return laggingLeases{LeasesGetter: g, lag: lag}
	}
}

type laggingLeases struct {
	coordinationv1client.LeasesGetter
	lag time.Duration
}

func (l laggingLeases) Leases(ns string) coordinationv1client.LeaseInterface {
	return laggingLeaseInterface{LeaseInterface: l.LeasesGetter.Leases(ns), lag: l.lag}
}

type laggingLeaseInterface struct {
	coordinationv1client.LeaseInterface
	lag time.Duration
}

func (l laggingLeaseInterface) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	w, err := l.LeaseInterface.Watch(ctx, o)
	if err != nil || o.LabelSelector == "" {
		return w, err
	}
	lw := &laggingWatch{inner: w, out: make(chan watch.Event), stop: make(chan struct{})}
	go lw.relay(l.lag)
	return lw, nil
}

// laggingWatch hands on each event of inner lag after it came.
type laggingWatch struct {
	inner    watch.Interface
	out      chan watch.Event
	stop     chan struct{}
	stopOnce sync.Once
}

func (w *laggingWatch) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.inner.Stop()
	})
}

func (w *laggingWatch) ResultChan() <-chan watch.Event { return w.out }

func (w *laggingWatch) relay(lag time.Duration) {
	defer close(w.out)
	type timed struct {
		ev watch.Event
		at time.Time
	}
	queue := make(chan timed, 1024)
	go func() {
		defer close(queue)
		for ev := range w.inner.ResultChan() {
			select {
			case queue <- timed{ev, time.Now().Add(lag)}:
			case <-w.stop:
				return
			}
		}
	}()
	for item := range queue {
		select {
		case <-time.After(time.Until(item.at)):
		case <-w.stop:
			return
		}
		select {
		case w.out <- item.ev:
		case <-w.stop:
			return
		}
	}
}

// TestSpreadViewsThatDisagreeOnKubeAPIServer runs twelve elections over
// three members, one of which (c) sees the members' Leases change three
// seconds after the others do. A fourth member joins, then leaves cleanly:
// while c's view lags the others', no election has two leaders, and each
// moves at most once per change, to the member the change gives it.
func TestSpreadViewsThatDisagreeOnKubeAPIServer(t *testing.T) {
	e := newElection(t)
	t.Cleanup(func() { checkNoGroupLeaks(t) })
	const lag = 3 * time.Second
	var elections []string
	for i := range 12 {
		elections = append(elections, fmt.Sprintf("shard-%02d", i))
	}
	f := newSpreadFleet()
	startSpreadReplica(t, e.ns, "a", f, elections)
	startSpreadReplica(t, e.ns, "b", f, elections)
	startSpreadReplica(t, e.ns, "c", f, elections, laggingView(lag))
	waitFor(t, 30*time.Second, "three members balanced", spreadBalanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}))
	time.Sleep(2 * leaseDuration)
	f.check(t)

	// d joins: a and b hand it one each at once; c, which sees d lag
	// later, hands its one over then.
	mark := f.mark()
	d := startSpreadReplica(t, e.ns, "d", f, elections)
	took := waitFor(t, 30*time.Second, "a fourth member balanced, one view lagging",
		spreadBalanced(f, elections, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}))
	addFigure("spread: join to balance, one view 3s behind", took)
	if took < lag {
		t.Errorf("balanced %v after d joined, before c (whose view lags %v) could have seen it: the test shows nothing", took, lag)
	}
	time.Sleep(2 * leaseDuration)
	f.movesSince(t, mark, 3, "d")
	f.check(t)

	// d leaves cleanly: a and b ask for its elections at once; c, which
	// still sees d for lag, asks for its share once it sees d gone, while
	// d still waits to hand it over.
	mark = f.mark()
	start := time.Now()
	left := d.stop(t)
	waitFor(t, 30*time.Second, "balanced after a clean leave, one view lagging",
		spreadBalanced(f, elections, map[string]int{"a": 4, "b": 4, "c": 4}))
	addFigure("spread: clean leave, Run returns, one view 3s behind", left)
	addFigure("spread: clean leave to balance, one view 3s behind", time.Since(start))
	time.Sleep(2 * leaseDuration)
	f.movesSince(t, mark, 3, "a", "b", "c")
	f.check(t)
}

// memberWrites counts the writes to the group's member Leases that the API
// server makes over the next d, by a watch from now.
func memberWrites(t *testing.T, ns string, d time.Duration) int {
	t.Helper()
	leases := kubernetes.NewForConfigOrDie(cp.Config()).CoordinationV1().Leases(ns)
	selector := metav1.ListOptions{LabelSelector: group.GroupLabel + "=istiod"}
	list, err := leases.List(context.Background(), selector)
	if err != nil {
		t.Fatalf("list the member Leases: %v", err)
	}
	selector.ResourceVersion = list.ResourceVersion
	w, err := leases.Watch(context.Background(), selector)
	if err != nil {
		t.Fatalf("watch the member Leases: %v", err)
	}
	defer w.Stop()
	writes := 0
	end := time.After(d)
	for {
		select {
		case <-end:
			return writes
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch of the member Leases ended early, after %d writes", writes)
			}
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				writes++
			}
		}
	}
}

// checkNoGroupLeaks fails t if a goroutine of package group outlives the
// Runs that started it.
func checkNoGroupLeaks(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 16<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "k8sleaderelection/group.") && !strings.Contains(g, "checkNoGroupLeaks") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines of package group outlived their Run; first:\n%s", len(leaked), leaked[0])
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
