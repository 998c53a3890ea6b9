// Command candidate is one replica in the robustness suite: it competes for
// a Lease through its own address (the harness's fault proxy), and while it
// leads it appends to a log object with conditional writes stamped with its
// term. It reports what it does as JSON lines on stdout (package event) and
// reads commands from stdin ("rate <r>" sets its clock's rate). SIGTERM
// makes it stop competing, release the Lease and exit 0.
//
// With -elector upstream it runs client-go's elector instead, and with
// -elector istio Istio's fork of it; neither gives its leader a term, so
// their writes carry none (nothing fences them), to count how many of a
// deposed leader's writes land.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	istio "istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection"
	istiolock "istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection/k8sresourcelock"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	upstream "k8s.io/client-go/tools/leaderelection"
	upstreamlock "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

type options struct {
	server, token           string
	namespace, lease, log   string
	id, key, elector        string
	leaseDuration, renew    time.Duration
	retry, writeEvery, late time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "", "API server URL (the candidate's proxy)")
	flag.StringVar(&o.token, "token", "", "bearer token")
	flag.StringVar(&o.namespace, "namespace", "", "namespace of the Lease and the log")
	flag.StringVar(&o.lease, "lease", "leader", "Lease name")
	flag.StringVar(&o.log, "log", "log", "log ConfigMap name")
	flag.StringVar(&o.id, "id", "", "identity")
	flag.StringVar(&o.key, "key", "1", "priority key: a number, higher outranks")
	flag.StringVar(&o.elector, "elector", "ours", "ours, upstream or istio")
	flag.DurationVar(&o.leaseDuration, "lease-duration", 4*time.Second, "LeaseDuration")
	flag.DurationVar(&o.renew, "renew-deadline", 3*time.Second, "RenewDeadline")
	flag.DurationVar(&o.retry, "retry-period", time.Second, "RetryPeriod")
	flag.DurationVar(&o.writeEvery, "write-every", 100*time.Millisecond, "pause between a leader's writes")
	flag.DurationVar(&o.late, "late-write", 200*time.Millisecond, "how long after its work returns a deposed leader sends one more write in its old term; 0: never")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	flag.Parse()
	_ = klogFlags.Set("v", "2")

	c, err := newCandidate(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "candidate:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go c.readCommands()
	baseline, _, _ := residue()
	c.emit(event.Event{Kind: event.Ready, Goroutines: baseline})
	for ctx.Err() == nil {
		if err := c.runOnce(ctx); err != nil {
			c.emit(event.Event{Kind: event.Problem, Message: err.Error()})
			time.Sleep(o.retry)
		}
	}
	c.late.Wait()
	// What an elector left running would still run a moment after its
	// Run returned; what is ending on its own (a connection's reader)
	// may take that moment.
	left, watches, stacks := residue()
	for deadline := time.Now().Add(time.Second); (left > baseline || watches > 0) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		left, watches, stacks = residue()
	}
	x := event.Event{Kind: event.Exit, Goroutines: left, Watches: watches}
	if left > baseline || watches > 0 {
		x.Message = stacks
	}
	c.emit(x)
}

// watchFrames are functions only a goroutine reading a watch runs:
// client-go's decoder and the library's readers of a lock's watch.
var watchFrames = []string{
	"watch.(*StreamWatcher).receive",
	"k8sleaderelection.startLockWatch",
	"k8sresourcelock.newRelay",
}

// residue counts the goroutines running, less those of idle HTTP
// connections (kept for reuse, not left behind by anyone) and this
// function's own, and those among them reading a watch; it returns their
// stacks too.
func residue() (goroutines, watches int, stacks string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var kept []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "main.residue(") {
			continue
		}
		goroutines++
		for _, frame := range watchFrames {
			if strings.Contains(g, frame) {
				watches++
				break
			}
		}
		kept = append(kept, g)
	}
	return goroutines, watches, strings.Join(kept, "\n\n")
}

type candidate struct {
	o      options
	pid    int
	clock  *skewedClock
	config *rest.Config
	// client writes the log; for our elector it stamps the writes of a
	// context that carries a term.
	client kubernetes.Interface

	mu     sync.Mutex
	seq    int
	tenure int
	late   sync.WaitGroup
}

func newCandidate(o options) (*candidate, error) {
	if o.server == "" || o.namespace == "" || o.id == "" {
		return nil, errors.New("-server, -namespace and -id are required")
	}
	config := &rest.Config{Host: o.server, BearerToken: o.token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: -1}
	c := &candidate{o: o, pid: os.Getpid(), clock: newSkewedClock(), config: config}
	config.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return leaseWrites{c: c, next: rt} }
	writes := config
	if o.elector == "ours" {
		writes = fence.Config(config, fence.Resource{Resource: "configmaps"})
	} else if o.elector != "upstream" && o.elector != "istio" {
		return nil, fmt.Errorf("-elector %q: want ours, upstream or istio", o.elector)
	}
	var err error
	if c.client, err = kubernetes.NewForConfig(writes); err != nil {
		return nil, fmt.Errorf("log client: %w", err)
	}
	return c, nil
}

var stdout sync.Mutex

// emit writes e as one line, unbuffered, so that a SIGKILL loses nothing
// already reported.
func (c *candidate) emit(e event.Event) {
	e.ID, e.PID, e.Mono, e.Own = c.o.id, c.pid, event.Now(), c.clock.Now().UnixNano()
	line, _ := json.Marshal(e)
	stdout.Lock()
	defer stdout.Unlock()
	_, _ = os.Stdout.Write(append(line, '\n'))
}

func (c *candidate) readCommands() {
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 2 && fields[0] == "rate" {
			if rate, err := strconv.ParseFloat(fields[1], 64); err == nil && rate > 0 {
				c.clock.SetRate(rate)
				c.emit(event.Event{Kind: event.Rate, Rate: rate})
			}
		}
	}
}

func (c *candidate) runOnce(ctx context.Context) error {
	switch c.o.elector {
	case "upstream":
		return c.runUpstream(ctx)
	case "istio":
		return c.runIstio(ctx)
	}
	lock, err := rl.NewFromKubeconfig(rl.LeasesResourceLock, c.o.namespace, c.o.lease,
		rl.ResourceLockConfig{Identity: c.o.id, Key: c.o.key}, c.config, c.o.renew)
	if err != nil {
		return err
	}
	elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.o.leaseDuration,
		RenewDeadline:   c.o.renew,
		RetryPeriod:     c.o.retry,
		KeyComparison:   c.outranks,
		ReleaseOnCancel: true,
		Clock:           c.clock,
		Name:            c.o.id,
		Callbacks: le.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				term, ok := le.TermFromContext(ctx)
				if !ok {
					c.emit(event.Event{Kind: event.Problem, Message: "no term in OnStartedLeading's context"})
				}
				c.work(ctx, term.String())
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	return nil
}

func (c *candidate) runUpstream(ctx context.Context) error {
	clientset, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	lock, err := upstreamlock.New(upstreamlock.LeasesResourceLock, c.o.namespace, c.o.lease,
		clientset.CoreV1(), clientset.CoordinationV1(), upstreamlock.ResourceLockConfig{Identity: c.o.id})
	if err != nil {
		return err
	}
	elector, err := upstream.NewLeaderElector(upstream.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.o.leaseDuration,
		RenewDeadline:   c.o.renew,
		RetryPeriod:     c.o.retry,
		ReleaseOnCancel: true,
		Name:            c.o.id,
		Callbacks: upstream.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				c.mu.Lock()
				term := fmt.Sprintf("upstream:%s/%d/%d", c.o.id, c.pid, c.tenure+1)
				c.mu.Unlock()
				c.work(ctx, term)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	return nil
}

// runIstio runs Istio's fork: keys compared as ours compares them, no
// clock, no term.
func (c *candidate) runIstio(ctx context.Context) error {
	lock, err := istiolock.NewFromKubeconfig(istiolock.LeasesResourceLock, c.o.namespace, c.o.lease,
		istiolock.ResourceLockConfig{Identity: c.o.id, Key: c.o.key}, c.config, c.o.renew)
	if err != nil {
		return err
	}
	elector, err := istio.NewLeaderElector(istio.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.o.leaseDuration,
		RenewDeadline:   c.o.renew,
		RetryPeriod:     c.o.retry,
		KeyComparison:   c.outranks,
		ReleaseOnCancel: true,
		Name:            c.o.id,
		Callbacks: istio.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				c.mu.Lock()
				term := fmt.Sprintf("istio:%s/%d/%d", c.o.id, c.pid, c.tenure+1)
				c.mu.Unlock()
				c.work(ctx, term)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(ctx)
	return nil
}

// outranks reports whether this candidate's key outranks a holder's. A
// holder without a number for a key (a third party's write) is not
// outranked: its lease is waited out, as for an equal key. Outranking it
// would be a steal, which may overlap with a leader the third party deposed
// and that has not seen it yet.
func (c *candidate) outranks(holderKey string) bool {
	mine, _ := strconv.Atoi(c.o.key)
	theirs, err := strconv.Atoi(holderKey)
	return err == nil && mine > theirs
}

// work is the leader's job: append to the log until its context ends, then
// (as a process paused or slow to notice would) send one more write in the
// term it had.
func (c *candidate) work(ctx context.Context, term string) {
	c.mu.Lock()
	c.tenure++
	tenure := c.tenure
	c.mu.Unlock()
	c.emit(event.Event{Kind: event.Start, Term: term, Tenure: tenure})
	for {
		c.write(ctx, term, tenure, false)
		select {
		case <-ctx.Done():
		case <-time.After(c.o.writeEvery):
			continue
		}
		break
	}
	c.emit(event.Event{Kind: event.End, Term: term, Tenure: tenure})
	if c.o.late > 0 {
		c.late.Add(1)
		go func() {
			defer c.late.Done()
			time.Sleep(c.o.late)
			lateCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.renew)
			defer cancel()
			c.write(lateCtx, term, tenure, true)
		}()
	}
}

// write appends one line, "<wid> <term>", to the log: a read, then an
// update conditional on what was read (a create if there is no log yet).
func (c *candidate) write(ctx context.Context, term string, tenure int, late bool) {
	c.mu.Lock()
	c.seq++
	wid := fmt.Sprintf("%s/%d/%d", c.o.id, c.pid, c.seq)
	c.mu.Unlock()
	e := event.Event{Kind: event.Write, Term: term, Tenure: tenure, WID: wid, Late: late, Sent: event.Now()}
	line := wid + " " + term + "\n"
	cms := c.client.CoreV1().ConfigMaps(c.o.namespace)
	var stored *corev1.ConfigMap
	current, err := cms.Get(ctx, c.o.log, metav1.GetOptions{})
	e.ReadDone = event.Now()
	switch {
	case apierrors.IsNotFound(err):
		e.Read = event.Absent
		stored, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: c.o.log, Namespace: c.o.namespace},
			Data:       map[string]string{"log": line},
		}, metav1.CreateOptions{})
	case err == nil:
		e.Read = current.ResourceVersion
		if current.Data == nil {
			current.Data = map[string]string{}
		}
		current.Data["log"] += line
		if c.o.elector != "ours" {
			// Unfenced: no stamp, not even the one the last fenced
			// writer left on the object.
			delete(current.Annotations, fence.TermAnnotation)
		}
		stored, err = cms.Update(ctx, current, metav1.UpdateOptions{})
	default:
		// The read failed: nothing was written.
		e.Result, e.Message = event.Refused, "read: "+err.Error()
		c.emit(e)
		return
	}
	e.Result = classify(err)
	if err != nil {
		e.Message = err.Error()
	} else {
		e.RV = stored.ResourceVersion
	}
	c.emit(e)
}

func classify(err error) string {
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return event.Accepted
	case strings.Contains(err.Error(), "fence: "):
		// The fencing transport refused to send it.
		return event.Refused
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return event.Conflict
	case (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) && strings.Contains(err.Error(), "fenced"):
		return event.Fenced
	case apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsInternalError(err):
		return event.Unknown
	case errors.As(err, &status):
		return event.Refused
	default:
		return event.Unknown
	}
}
