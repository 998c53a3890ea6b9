package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	istio "istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection"
	istiolock "istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection/k8sresourcelock"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	upstream "k8s.io/client-go/tools/leaderelection"
	upstreamlock "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
)

// Timings of every election in this suite: short, so that a failover takes
// seconds, and with the ratios core components use.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 1 * time.Second
	// maxAttemptWait is the longest a candidate waits between attempts.
	maxAttemptWait = retryPeriod + time.Duration(le.JitterFactor*float64(retryPeriod))
	// slack covers request round trips on a loaded two-core machine.
	slack = 500 * time.Millisecond
	// testTimeLimit bounds any one test; the longest takes under a minute.
	testTimeLimit = 3 * time.Minute
)

// election is one test's lock on the control plane: its namespace, the
// candidates competing for it, and the record of who led when.
type election struct {
	t     *testing.T
	ns    string
	name  string
	rec   *recorder
	admin kubernetes.Interface
	// hang is closed when the test ends: work that never stops waits for
	// it.
	hang chan struct{}

	mu      sync.Mutex
	members []*member
}

func newElection(t *testing.T) *election {
	t.Helper()
	adminConfig := cp.Config()
	adminConfig.QPS = -1 // no client-side rate limit: the conflict storm needs speed
	admin := kubernetes.NewForConfigOrDie(adminConfig)
	ns := "e2e-" + strings.Trim(invalidNameChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 50 {
		ns = ns[:50]
	}
	ns = strings.TrimRight(ns, "-") + "-" + randomSuffix()
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	e := &election{t: t, ns: ns, name: "leader", rec: newRecorder(), admin: admin, hang: make(chan struct{})}
	// A hard bound on every test: a wedged election must fail loudly, not
	// hang until the package timeout.
	watchdog := time.AfterFunc(testTimeLimit, func() {
		panic(fmt.Sprintf("%s ran longer than %v", t.Name(), testTimeLimit))
	})
	t.Cleanup(func() {
		watchdog.Stop()
		close(e.hang)
		e.stopAll()
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		checkNoLeaks(t)
	})
	return e
}

var invalidNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// member is one candidate process: it competes through its own fault proxy
// and, like a controller's main loop, competes again whenever it loses.
type member struct {
	id, key, kind string
	opts          memberOpts
	proxy         *faults.Proxy
	cancel        context.CancelFunc
	done          chan struct{}

	mu sync.Mutex
	// elector is the current Run's elector, ours or client-go's.
	elector interface{ GetLeader() string }
}

// leaderSeen returns the holder m's elector last saw, or "" before it has one.
func (m *member) leaderSeen() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.elector == nil {
		return ""
	}
	return m.elector.GetLeader()
}

type memberOpts struct {
	kind          string
	key           string
	release       bool
	keyComparison le.KeyComparisonFunc
	// elector is whose elector the member runs: ours (""), client-go's
	// ("upstream", Lease only, no key) or Istio's fork ("istio").
	elector string
	// timing, if set, replaces the suite's lease, renew deadline and retry
	// period, for every kind of elector.
	timing *timing
	// disableHandoff and disableWatch switch those off in our elector.
	disableHandoff, disableWatch bool
	// windDown is how long the member's work takes to stop once told;
	// negative: it never stops (until the test ends).
	windDown time.Duration
	// config, if set, is the client config the member reaches the API
	// server with (through its proxy), instead of the admin's.
	config *rest.Config
	// wrap, if set, wraps our elector's lock.
	wrap func(rl.Keyed) rl.Keyed
}

// timing is one election's LeaseDuration, RenewDeadline and RetryPeriod.
type timing struct{ lease, renew, retry time.Duration }

// suiteTiming is the timing every election of the suite uses by default.
var suiteTiming = timing{leaseDuration, renewDeadline, retryPeriod}

// timingOrSuite is o's timing if it has one, else the suite's.
func (o memberOpts) timingOrSuite() timing {
	if o.timing != nil {
		return *o.timing
	}
	return suiteTiming
}

// start launches a member called id.
func (e *election) start(id string, o memberOpts) *member {
	e.t.Helper()
	if o.kind == "" {
		o.kind = rl.LeasesResourceLock
	}
	base := cp.Config()
	if o.config != nil {
		base = rest.CopyConfig(o.config)
	}
	proxy, err := faults.New(id, hostPort(base.Host))
	if err != nil {
		e.t.Fatalf("proxy for %s: %v", id, err)
	}
	config := proxy.Config(base)
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background().WithValues("member", id)))
	m := &member{id: id, key: o.key, kind: o.kind, opts: o, proxy: proxy, cancel: cancel, done: make(chan struct{})}
	run := e.ourRun
	switch o.elector {
	case "upstream":
		run = e.upstreamRun
	case "istio":
		run = e.istioRun
	}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := run(ctx, m, config, o); err != nil {
				e.t.Errorf("member %s: %v", id, err)
				return
			}
		}
	}()
	e.mu.Lock()
	e.members = append(e.members, m)
	e.mu.Unlock()
	return m
}

// ourRun is one Run of our elector for m.
func (e *election) ourRun(ctx context.Context, m *member, config *rest.Config, o memberOpts) error {
	tm := o.timingOrSuite()
	lock, err := rl.NewFromKubeconfig(o.kind, e.ns, e.name, rl.ResourceLockConfig{Identity: m.id, Key: o.key}, config, tm.renew)
	if err != nil {
		return err
	}
	if o.wrap != nil {
		lock = o.wrap(lock)
	}
	elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   tm.lease,
		RenewDeadline:   tm.renew,
		RetryPeriod:     tm.retry,
		KeyComparison:   o.keyComparison,
		ReleaseOnCancel: o.release,
		DisableHandoff:  o.disableHandoff,
		DisableWatch:    o.disableWatch,
		Name:            e.ns,
		Callbacks:       e.rec.callbacks(m.id, m.key, o.windDown, e.hang),
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.elector = elector
	m.mu.Unlock()
	elector.Run(ctx)
	return nil
}

// upstreamRun is one Run of client-go's own elector for m, on a Lease.
func (e *election) upstreamRun(ctx context.Context, m *member, config *rest.Config, o memberOpts) error {
	tm := o.timingOrSuite()
	lock, err := upstreamlock.NewFromKubeconfig(upstreamlock.LeasesResourceLock, e.ns, e.name,
		upstreamlock.ResourceLockConfig{Identity: m.id}, config, tm.renew)
	if err != nil {
		return err
	}
	cb := e.rec.callbacks(m.id, "", o.windDown, e.hang)
	elector, err := upstream.NewLeaderElector(upstream.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   tm.lease,
		RenewDeadline:   tm.renew,
		RetryPeriod:     tm.retry,
		ReleaseOnCancel: o.release,
		Name:            e.ns,
		Callbacks: upstream.LeaderCallbacks{
			OnStartedLeading: cb.OnStartedLeading,
			OnStoppedLeading: cb.OnStoppedLeading,
		},
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.elector = elector
	m.mu.Unlock()
	elector.Run(ctx)
	return nil
}

// istioRun is one Run of Istio's fork of the elector for m: keys and
// KeyComparison as ours, no watch, no handoff.
func (e *election) istioRun(ctx context.Context, m *member, config *rest.Config, o memberOpts) error {
	tm := o.timingOrSuite()
	lock, err := istiolock.NewFromKubeconfig(o.kind, e.ns, e.name, istiolock.ResourceLockConfig{Identity: m.id, Key: o.key}, config, tm.renew)
	if err != nil {
		return err
	}
	cb := e.rec.callbacks(m.id, o.key, o.windDown, e.hang)
	elector, err := istio.NewLeaderElector(istio.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   tm.lease,
		RenewDeadline:   tm.renew,
		RetryPeriod:     tm.retry,
		KeyComparison:   istio.KeyComparisonFunc(o.keyComparison),
		ReleaseOnCancel: o.release,
		Name:            e.ns,
		Callbacks: istio.LeaderCallbacks{
			OnStartedLeading: cb.OnStartedLeading,
			OnStoppedLeading: cb.OnStoppedLeading,
		},
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.elector = elector
	m.mu.Unlock()
	elector.Run(ctx)
	return nil
}

// stop ends m's process and waits for it.
func (m *member) stop() {
	m.cancel()
	<-m.done
	m.proxy.Close()
}

// member returns the member called id, or nil.
func (e *election) member(id string) *member {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (e *election) stopAll() {
	e.mu.Lock()
	members := e.members
	e.members = nil
	e.mu.Unlock()
	for _, m := range members {
		m.stop()
	}
}

// record reads the lock as a bystander.
func (e *election) record(kind string) (*rl.LeaderElectionRecord, error) {
	lock, err := rl.New(kind, e.ns, e.name, e.admin.CoreV1(), e.admin.CoordinationV1(), rl.ResourceLockConfig{Identity: "bystander"})
	if err != nil {
		return nil, err
	}
	rec, _, err := lock.Get(context.Background())
	return rec, err
}

// waitFor polls cond every 50ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// hostPort turns a rest.Config Host (a URL, or host[:port]) into the
// host:port a TCP proxy dials, with the scheme's default port if none is given.
func hostPort(host string) string {
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		u = &url.URL{Scheme: "https", Host: host}
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// checkNoLeaks fails t if a goroutine of an elector (ours or client-go's) or
// of this suite's members outlives the test. The control plane's own
// goroutines are not ours to judge.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	ours := []string{
		"github.com/k8sleaderelection/k8sleaderelection.",
		"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock.",
		"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock/internal/hub.",
		"github.com/k8sleaderelection/k8sleaderelection/crelection.",
		"sigs.k8s.io/controller-runtime/",
		"k8s.io/client-go/tools/leaderelection.",
		"istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection.",
		"e2e.(*election)",
		"e2e.startOperator",
		"e2e.startWriter",
		"testbed/tenures.(*Recorder)",
	}
	var leaked []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaked = leaked[:0]
		buf := make([]byte, 16<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			// The embedded kube-apiserver runs client-go's elector for
			// its own controllers (coordinated election): those are its
			// goroutines, not a test's.
			if strings.Contains(g, "checkNoLeaks") || strings.Contains(g, "k8s.io/kubernetes/pkg/") {
				continue
			}
			for _, o := range ours {
				if strings.Contains(g, o) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(leaked) > 0 {
		t.Errorf("%d goroutines of ours outlived the test; first:\n%s", len(leaked), leaked[0])
	}
}

func (m *member) String() string { return fmt.Sprintf("%s(%s)", m.id, m.key) }
