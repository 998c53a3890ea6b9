package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
}

// library runs one Run of one library's elector for a candidate.
type library struct {
	name string
	run  func(ctx context.Context, s candidateSpec) error
}

var ours = library{name: "ours", run: func(ctx context.Context, s candidateSpec) error {
	lock := &rl.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: s.namespace, Name: s.lock},
		Client:     s.client.CoordinationV1(),
		LockConfig: rl.ResourceLockConfig{Identity: s.id, Key: s.key},
	}
	elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   s.timings.lease,
		RenewDeadline:   s.timings.renew,
		RetryPeriod:     s.timings.retry,
		KeyComparison:   s.keyComparison,
		ReleaseOnCancel: s.release,
		Callbacks:       le.LeaderCallbacks{OnStartedLeading: s.onStarted, OnStoppedLeading: func() {}},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	return nil
}}

var theirs = library{name: "upstream", run: func(ctx context.Context, s candidateSpec) error {
	lock := &upstreamlock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: s.namespace, Name: s.lock},
		Client:     s.client.CoordinationV1(),
		LockConfig: upstreamlock.ResourceLockConfig{Identity: s.id},
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
