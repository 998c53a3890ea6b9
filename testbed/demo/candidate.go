package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
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

	// fencing is set once the fencing policy guards the demo's output.
	fencing bool

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
	// This incarnation's writes: they stop with it if it crashes.
	out := output{crash: c.crash}
	if c.fencing {
		out.client = kubernetes.NewForConfigOrDie(fence.Config(c.crash.Wrap(c.config), fence.Resource{Resource: "configmaps"}))
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
				c.writeOutput(ctx, out, "writes its output")
				<-ctx.Done()
				// A controller takes a moment to stop: it finishes the
				// work in hand. The lock goes to anyone else only after.
				if to := c.askedBy(); to != "" {
					c.tl.say(c.id, "HANDS OVER to %s, which asked: finishing its work (%v) before writing the lock over", to, windDown)
				}
				time.Sleep(windDown)
				c.tl.stopLeading(i)
				// A process that was paused, or a queue that drains
				// late, would still write in the term it had: the API
				// server refuses that write.
				go func() {
					time.Sleep(staleWriteAfter)
					c.writeOutput(context.WithoutCancel(ctx), out, "sends a LATE WRITE in its old term (as a paused process would)")
				}()
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
	if request, pending := le.PendingHandoff(record); pending && record.HolderIdentity == c.id {
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

// staleWriteAfter is how long after its term a deposed leader sends the
// demo's late write.
const staleWriteAfter = 1500 * time.Millisecond

// output is how one incarnation of a candidate writes the demo's output:
// a client that stamps each write with its term, and the switch that kills
// it in a crash.
type output struct {
	client kubernetes.Interface
	crash  *faults.Switch
}

// writeOutput writes the demo's output ConfigMap stamped with the term of
// ctx, and says what the API server answered.
func (c *candidate) writeOutput(ctx context.Context, out output, what string) {
	if out.client == nil {
		return
	}
	term, _ := le.TermFromContext(ctx)
	cms := out.client.CoreV1().ConfigMaps(c.namespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "demo-output", Namespace: c.namespace}, Data: map[string]string{"writer": c.id}}
	current, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	case err == nil:
		cm.ResourceVersion = current.ResourceVersion
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	switch {
	case out.crash.Crashed():
		// A dead process writes nothing.
	case err == nil:
		c.tl.say(c.id, "%s, term %s: accepted", what, term)
	case apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
		c.tl.say(c.id, "%s, term %s: REFUSED by the API server (%s)", what, term, fencedReason(err))
	default:
		c.tl.say(c.id, "%s, term %s: failed: %v", what, term, err)
	}
}

// fencedReason is the policy's own message out of the API server's error.
func fencedReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "fenced:"); i >= 0 {
		return msg[i:]
	}
	return msg
}
