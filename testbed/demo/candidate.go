package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// The demo's timings: short, so that everything happens within a minute.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = time.Second
	// windDown is how long a leader's work takes to stop once told.
	windDown = 400 * time.Millisecond
)

// candidate is one control-plane revision competing for the lock, as its own
// process would: its own client, elector, /healthz and /metrics.
type candidate struct {
	id, key         string
	defaultRevision string
	namespace, lock string
	config          *rest.Config
	admin           kubernetes.Interface
	tl              *timeline
	keys            map[string]string

	watchdog *le.HealthzAdaptor
	metrics  *leaderMetrics
	server   *http.Server
	addr     string

	cancel context.CancelFunc
	done   chan struct{}
	crash  *faults.Switch
}

// serve starts the candidate's HTTP endpoints on a free loopback port.
func (c *candidate) serve() error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := c.watchdog.Check(r); err != nil {
			http.Error(w, "leader election: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(c.metrics.registry, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("%s: listen: %w", c.id, err)
	}
	c.addr = l.Addr().String()
	c.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = c.server.Serve(l) }()
	return nil
}

// electionName is the Name the candidate's elections report metrics under.
func (c *candidate) electionName() string { return c.lock + "/" + c.id }

// start runs the candidate: like a controller's main loop, it competes again
// whenever it loses.
func (c *candidate) start(parent context.Context) {
	ctx, cancel := context.WithCancel(klog.NewContext(parent, klog.FromContext(parent).WithValues("candidate", c.id)))
	c.cancel, c.done, c.crash = cancel, make(chan struct{}), &faults.Switch{}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			if err := c.runOnce(ctx); err != nil {
				c.tl.say(c.id, "cannot run: %v", err)
				return
			}
		}
	}()
}

func (c *candidate) runOnce(ctx context.Context) error {
	lock, err := rl.NewFromKubeconfig(rl.LeasesResourceLock, c.namespace, c.lock,
		rl.ResourceLockConfig{Identity: c.id, Key: c.key}, c.crash.Wrap(c.config), renewDeadline)
	if err != nil {
		return err
	}
	elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		// The default revision takes the lock from any other; the others
		// never preempt.
		KeyComparison: func(holderKey string) bool {
			return c.key == c.defaultRevision && holderKey != c.defaultRevision
		},
		ReleaseOnCancel: true,
		WatchDog:        c.watchdog,
		Name:            c.electionName(),
		Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				i := c.tl.startLeading(c.id, c.key, c.keys)
				<-ctx.Done()
				// A controller takes a moment to stop: it finishes the
				// work in hand. The lock goes to anyone else only after.
				if to := c.askedBy(); to != "" {
					c.tl.say(c.id, "HANDS OVER to %s, which asked: finishing its work (%v) before writing the lock over", to, windDown)
				}
				time.Sleep(windDown)
				c.tl.stopLeading(i)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	c.watchdog.SetLeaderElection(elector)
	elector.Run(ctx)
	return nil
}

// askedBy returns the candidate that asked this one to hand the lock over,
// if the lock carries such a request.
func (c *candidate) askedBy() string {
	lease, err := c.admin.CoordinationV1().Leases(c.namespace).Get(context.Background(), c.lock, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	record := rl.LeaseToLeaderElectionRecord(lease)
	if request := record.HandoffRequest; request.Pending(record) && record.HolderIdentity == c.id {
		return request.HolderIdentity
	}
	return ""
}

// stop ends the candidate. A crash stops it dead: no request goes out any
// more, so the lock is not released and the others must wait out the lease.
// Otherwise it shuts down cleanly and releases the lock.
func (c *candidate) stop(crash bool) {
	if c.cancel == nil {
		return
	}
	c.tl.setKilled(c.id, true)
	if crash {
		c.crash.Crash()
	}
	c.cancel()
	<-c.done
	c.cancel = nil
	c.tl.setKilled(c.id, false)
}
