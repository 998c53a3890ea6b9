package group

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

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

const testNamespace = "istio-system"

// Timings of the groups in these tests: a member's Lease is twice
// testLease.
const (
	testLease  = 4 * time.Second
	testRenew  = 3 * time.Second
	testRetry  = 500 * time.Millisecond
	testSettle = time.Second
)

// fakes are the two clientsets the promises are checked on: ours, which
// refuses a stale write as an API server does, and client-go's stock fake.
var fakes = []struct {
	name string
	new  func(objects ...runtime.Object) kubernetes.Interface
	// race is how long two members may both lead an election they took as
	// it ran out at the same instant: the stock fake accepts both writes,
	// and the elector makes the loser step down when it sees the other's.
	race time.Duration
}{
	{"strict", func(objects ...runtime.Object) kubernetes.Interface { return fakekube.New(objects...) }, 0},
	{"stock", func(objects ...runtime.Object) kubernetes.Interface { return fake.NewClientset(objects...) }, testRetry},
}

// eachFake runs body on each fake clientset, in a synctest bubble.
func eachFake(t *testing.T, body func(t *testing.T, cs kubernetes.Interface, race time.Duration)) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { body(t, fk.new(), fk.race) })
		})
	}
}

// cutClient is one replica's way to the API server: cut, every request
// fails and every watch ends, as for a replica that crashed or was cut off.
type cutClient struct {
	coordinationv1client.LeasesGetter
	cut atomic.Bool
	// electionWritesCut, set, makes every write to an election's Lease
	// fail, as for a replica too slow to take one, while its member Lease
	// and its watches go on.
	electionWritesCut atomic.Bool
	// blind, set, makes the members' list and watch (the label-selected
	// ones) fail; watches holds those open, for the test to end them.
	blind   atomic.Bool
	mu      sync.Mutex
	watches []watch.Interface
}

// loseSight makes the members' list and watch fail from now on, and ends
// the watches open.
func (c *cutClient) loseSight() {
	c.blind.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.watches {
		w.Stop()
	}
	c.watches = nil
}

var errCut = errors.New("replica cut off")

func (c *cutClient) Leases(ns string) coordinationv1client.LeaseInterface {
	return &cutLeases{LeaseInterface: c.LeasesGetter.Leases(ns), c: c}
}

type cutLeases struct {
	coordinationv1client.LeaseInterface
	c *cutClient
}

func (l *cutLeases) Get(ctx context.Context, name string, o metav1.GetOptions) (*coordinationv1.Lease, error) {
	if l.c.cut.Load() {
		return nil, errCut
	}
	return l.LeaseInterface.Get(ctx, name, o)
}

func (l *cutLeases) List(ctx context.Context, o metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	if l.c.cut.Load() || l.c.blind.Load() && o.LabelSelector != "" {
		return nil, errCut
	}
	return l.LeaseInterface.List(ctx, o)
}

// writeCut reports whether a write to the Lease named name fails.
func (l *cutLeases) writeCut(name string) bool {
	return l.c.cut.Load() || l.c.electionWritesCut.Load() && !strings.Contains(name, ".member.")
}

func (l *cutLeases) Create(ctx context.Context, lease *coordinationv1.Lease, o metav1.CreateOptions) (*coordinationv1.Lease, error) {
	if l.writeCut(lease.Name) {
		return nil, errCut
	}
	return l.LeaseInterface.Create(ctx, lease, o)
}

func (l *cutLeases) Update(ctx context.Context, lease *coordinationv1.Lease, o metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if l.writeCut(lease.Name) {
		return nil, errCut
	}
	return l.LeaseInterface.Update(ctx, lease, o)
}

func (l *cutLeases) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	if l.c.cut.Load() {
		return errCut
	}
	return l.LeaseInterface.Delete(ctx, name, o)
}

func (l *cutLeases) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	if l.c.cut.Load() || l.c.blind.Load() && o.LabelSelector != "" {
		return nil, errCut
	}
	// A watch already open keeps delivering: what it shows a cut-off
	// replica cannot act on, since its writes fail.
	w, err := l.LeaseInterface.Watch(ctx, o)
	if err == nil && o.LabelSelector != "" {
		l.c.mu.Lock()
		l.c.watches = append(l.c.watches, w)
		l.c.mu.Unlock()
	}
	return w, err
}

// fleet records who leads each election, from the callbacks: it fails the
// test if two members lead one election at once, and counts the moves.
type fleet struct {
	race time.Duration

	mu       sync.Mutex
	leading  map[string]map[string]time.Time // election -> identity -> since
	terms    map[string][]string             // election -> identities, in order of their terms
	overlaps []string
}

func newFleet(race time.Duration) *fleet {
	return &fleet{race: race, leading: map[string]map[string]time.Time{}, terms: map[string][]string{}}
}

func (f *fleet) begin(election, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leading[election] == nil {
		f.leading[election] = map[string]time.Time{}
	}
	for other, since := range f.leading[election] {
		if f.race == 0 || time.Since(since) > f.race {
			f.overlaps = append(f.overlaps, fmt.Sprintf("%s started leading %s at %v while %s led it (since %v)",
				id, election, time.Now().Format("15:04:05.000"), other, since.Format("15:04:05.000")))
		}
	}
	f.leading[election][id] = time.Now()
	f.terms[election] = append(f.terms[election], id)
}

func (f *fleet) end(election, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if since, ok := f.leading[election][id]; ok {
		// Two that raced for a lock that ran out may both lead for a
		// moment on the stock fake; longer is an overlap.
		for other, s := range f.leading[election] {
			if other != id && f.race > 0 && time.Since(later(since, s)) > f.race {
				f.overlaps = append(f.overlaps, fmt.Sprintf("%s and %s both led %s for %v", id, other, election, time.Since(later(since, s))))
			}
		}
	}
	delete(f.leading[election], id)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// check fails the test if two members ever led one election at once.
func (f *fleet) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.overlaps) > 0 {
		t.Fatalf("two leaders of one election at once, %d times; first: %s", len(f.overlaps), f.overlaps[0])
	}
}

// loads returns how many elections each identity leads now, and how many
// elections nobody (or more than one) leads.
func (f *fleet) loads(elections []string) (map[string]int, int) {
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

// termCount returns the number of terms begun so far, over all elections.
func (f *fleet) termCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ts := range f.terms {
		n += len(ts)
	}
	return n
}

// termsSince returns, per election, the identities that began a term after
// the first skip[election] terms.
func (f *fleet) termsSince(skip map[string]int) map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for e, ts := range f.terms {
		if len(ts) > skip[e] {
			out[e] = slices.Clone(ts[skip[e]:])
		}
	}
	return out
}

func (f *fleet) mark() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for e, ts := range f.terms {
		out[e] = len(ts)
	}
	return out
}

// replica is one member of a group in a test.
type replica struct {
	id     string
	member *member
	client *cutClient
	cancel context.CancelFunc
	done   chan struct{}
}

// startReplica runs a member of a group of elections; the fleet records
// its terms.
func startReplica(t *testing.T, cs kubernetes.Interface, f *fleet, id, key string, elections []string, tweak ...func(*Config)) *replica {
	t.Helper()
	client := &cutClient{LeasesGetter: cs.CoordinationV1()}
	config := Config{
		Name:          "istiod",
		Namespace:     testNamespace,
		Client:        client,
		Identity:      id,
		Key:           key,
		Outranks:      byRevision,
		LeaseDuration: testLease,
		RenewDeadline: testRenew,
		RetryPeriod:   testRetry,
		Settle:        testSettle,
	}
	for _, name := range elections {
		config.Elections = append(config.Elections, Election{Name: name, Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				f.begin(name, id)
				<-ctx.Done()
				f.end(name, id)
			},
			OnStoppedLeading: func() {},
		}})
	}
	for _, fn := range tweak {
		fn(&config)
	}
	m, err := newMember(config)
	if err != nil {
		t.Fatalf("member %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &replica{id: id, member: m, client: client, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		m.run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the replica's Run and waits for it, at most a minute of
// virtual time.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatalf("member %s: Run did not return within a minute of its context ending", r.id)
	}
}

// waitFor waits, in virtual time, until cond holds, failing the test with
// what() if it does not within limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool, what func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		synctest.Wait()
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("not within %v: %s", limit, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// balanced reports whether every election has one leader and the loads of
// ids are exactly want.
func balanced(f *fleet, elections []string, want map[string]int) func() bool {
	return func() bool {
		n, unled := f.loads(elections)
		if unled > 0 || len(n) != len(want) {
			return false
		}
		for id, k := range want {
			if n[id] != k {
				return false
			}
		}
		return true
	}
}

func describe(f *fleet, elections []string) func() string {
	return func() string {
		n, unled := f.loads(elections)
		return fmt.Sprintf("loads %v, %d elections without exactly one leader", n, unled)
	}
}
