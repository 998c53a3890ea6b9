package main

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	upstream "k8s.io/client-go/tools/leaderelection"
	upstreamlock "k8s.io/client-go/tools/leaderelection/resourcelock"

	le "github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// timings are an election's three durations.
type timings struct{ lease, renew, retry time.Duration }

// fast suits scenarios that time handovers; core is what Kubernetes
// components use, for the scale run.
var (
	fast = timings{4 * time.Second, 3 * time.Second, time.Second}
	core = timings{15 * time.Second, 10 * time.Second, 2 * time.Second}
)

// candidateSpec is everything one candidate needs.
type candidateSpec struct {
	client    kubernetes.Interface
	namespace string
	lock      string
	id, key   string
	timings   timings
	release   bool
	// keyComparison is ours only: upstream has no priority.
	keyComparison func(string) bool
	onStarted     func(context.Context)
	// disableHandoff makes our elector steal instead of asking;
	// disableWatch makes it poll.
	disableHandoff, disableWatch bool
	// requests, if set, counts the requests the elector makes through its
	// lock (reads, writes, and watches started).
	requests *atomic.Int64
}

// library runs one Run of one library's elector for a candidate.
type library struct {
	name string
	run  func(ctx context.Context, s candidateSpec) error
}

var ours = library{name: "ours", run: func(ctx context.Context, s candidateSpec) error {
	var lock rl.Interface = &rl.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: s.namespace, Name: s.lock},
		Client:     s.client.CoordinationV1(),
		LockConfig: rl.ResourceLockConfig{Identity: s.id, Key: s.key},
	}
	if s.requests != nil {
		lock = &countedLock{LeaseLock: lock.(*rl.LeaseLock), n: s.requests}
	}
	elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   s.timings.lease,
		RenewDeadline:   s.timings.renew,
		RetryPeriod:     s.timings.retry,
		KeyComparison:   s.keyComparison,
		ReleaseOnCancel: s.release,
		DisableHandoff:  s.disableHandoff,
		DisableWatch:    s.disableWatch,
		Callbacks:       le.LeaderCallbacks{OnStartedLeading: s.onStarted, OnStoppedLeading: func() {}},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	return nil
}}

// oursPolling is ours with the watch switched off, as a baseline.
var oursPolling = library{name: "ours-polling", run: func(ctx context.Context, s candidateSpec) error {
	s.disableWatch = true
	return ours.run(ctx, s)
}}

var theirs = library{name: "upstream", run: func(ctx context.Context, s candidateSpec) error {
	var lock upstreamlock.Interface = &upstreamlock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: s.namespace, Name: s.lock},
		Client:     s.client.CoordinationV1(),
		LockConfig: upstreamlock.ResourceLockConfig{Identity: s.id},
	}
	if s.requests != nil {
		lock = &countedUpstreamLock{Interface: lock, n: s.requests}
	}
	elector, err := upstream.NewLeaderElector(upstream.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   s.timings.lease,
		RenewDeadline:   s.timings.renew,
		RetryPeriod:     s.timings.retry,
		ReleaseOnCancel: s.release,
		Callbacks:       upstream.LeaderCallbacks{OnStartedLeading: s.onStarted, OnStoppedLeading: func() {}},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	return nil
}}

// candidate runs a spec like a controller's main loop: it competes again
// whenever it loses, until stopped. crash, when set, is the switch its
// client was wrapped with.
type candidate struct {
	cancel context.CancelFunc
	done   chan struct{}
	crash  *faults.Switch
}

func startCandidate(lib library, s candidateSpec) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			if err := lib.run(ctx, s); err != nil {
				panic(err) // a bad spec is a bug in this program
			}
		}
	}()
	return c
}

// stop ends the candidate; a crash makes it go silent first, so that it
// cannot release the lock.
func (c *candidate) stop(crash bool) {
	if crash {
		c.crash.Crash()
	}
	c.cancel()
	<-c.done
}

// requestCounter counts a client's requests by HTTP method.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) wrap(config *rest.Config) *rest.Config {
	config = rest.CopyConfig(config)
	config.QPS = -1 // no client-side throttling: count what the elector asks for
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			c.mu.Lock()
			if c.counts == nil {
				c.counts = map[string]int{}
			}
			c.counts[req.Method]++
			c.mu.Unlock()
			return rt.RoundTrip(req)
		})
	})
	return config
}

// take returns the counts so far and starts again from zero.
func (c *requestCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := c.counts
	c.counts = map[string]int{}
	return counts
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countedLock is our Lease lock, counting its requests; it keeps the lock's
// resourceVersion and watch, so that the elector works as it would without
// the count.
type countedLock struct {
	*rl.LeaseLock
	n *atomic.Int64
}

func (l *countedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	l.n.Add(1)
	return l.LeaseLock.Get(ctx)
}

func (l *countedLock) Create(ctx context.Context, r rl.LeaderElectionRecord) error {
	l.n.Add(1)
	return l.LeaseLock.Create(ctx, r)
}

func (l *countedLock) Update(ctx context.Context, r rl.LeaderElectionRecord) error {
	l.n.Add(1)
	return l.LeaseLock.Update(ctx, r)
}

func (l *countedLock) Watch(ctx context.Context) (watch.Interface, error) {
	l.n.Add(1)
	return l.LeaseLock.Watch(ctx)
}

// PrepareWatch counts the watch request when it is sent, off the elector's
// loop, as the Lease lock sends it.
func (l *countedLock) PrepareWatch() func(ctx context.Context) (watch.Interface, error) {
	open := l.LeaseLock.PrepareWatch()
	return func(ctx context.Context) (watch.Interface, error) {
		l.n.Add(1)
		return open(ctx)
	}
}

// countedUpstreamLock is client-go's lock, counting its requests.
type countedUpstreamLock struct {
	upstreamlock.Interface
	n *atomic.Int64
}

func (l *countedUpstreamLock) Get(ctx context.Context) (*upstreamlock.LeaderElectionRecord, []byte, error) {
	l.n.Add(1)
	return l.Interface.Get(ctx)
}

func (l *countedUpstreamLock) Create(ctx context.Context, r upstreamlock.LeaderElectionRecord) error {
	l.n.Add(1)
	return l.Interface.Create(ctx, r)
}

func (l *countedUpstreamLock) Update(ctx context.Context, r upstreamlock.LeaderElectionRecord) error {
	l.n.Add(1)
	return l.Interface.Update(ctx, r)
}
