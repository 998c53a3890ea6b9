package k8sleaderelection_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// A controller's main: a Lease lock keyed by revision, the default revision
// outranking the rest, /healthz backed by the election, and a clean release
// on SIGTERM.
func Example() {
	config, err := rest.InClusterConfig()
	if err != nil {
		klog.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	hostname, _ := os.Hostname()
	revision := os.Getenv("REVISION") // for example "canary"
	defaultRevision := "stable"       // the revision that should lead

	watchdog := k8sleaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := watchdog.Check(r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	go func() { _ = http.ListenAndServe(":8080", nil) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	k8sleaderelection.RunOrDie(ctx, k8sleaderelection.LeaderElectionConfig{
		Lock: &k8sresourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "istio-system", Name: "my-controller"},
			Client:     client.CoordinationV1(),
			LockConfig: k8sresourcelock.ResourceLockConfig{Identity: hostname, Key: revision},
		},
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
		KeyComparison: func(holderKey string) bool {
			return revision == defaultRevision && holderKey != defaultRevision
		},
		ReleaseOnCancel: true,
		WatchDog:        watchdog,
		Name:            "my-controller",
		Callbacks: k8sleaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				// Do the work until ctx is cancelled: that is the moment
				// leadership ends, preemption included.
				<-ctx.Done()
			},
			OnStoppedLeading: func() { klog.Info("no longer leading") },
			OnNewLeader:      func(id string) { klog.InfoS("leader changed", "leader", id) },
		},
	})
}

// leaderGauge is a minimal leader gauge; a real program would back it with
// its metrics library (a Prometheus GaugeVec labelled by name, for example).
type leaderGauge struct {
	mu     sync.Mutex
	values map[string]float64
}

func (g *leaderGauge) On(name string)  { g.set(name, 1) }
func (g *leaderGauge) Off(name string) { g.set(name, 0) }
func (g *leaderGauge) set(name string, v float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.values[name] = v
}

// SlowpathExercised is optional: a metric that has it is told each time a
// leader had to read the lock before it could renew.
func (g *leaderGauge) SlowpathExercised(name string) {}

type gaugeProvider struct{ gauge *leaderGauge }

func (p gaugeProvider) NewLeaderMetric() k8sleaderelection.SwitchMetric { return p.gauge }

// Install a metrics provider once, before creating electors: each election
// then switches its gauge on and off under its Name.
func ExampleSetProvider() {
	k8sleaderelection.SetProvider(gaugeProvider{gauge: &leaderGauge{values: map[string]float64{}}})
}

// Serve the election's health on /healthz. The adaptor can be registered
// before the elector exists; RunOrDie ties them together through WatchDog.
func ExampleNewLeaderHealthzAdaptor() {
	watchdog := k8sleaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := watchdog.Check(r); err != nil {
			http.Error(w, "leader election: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// ... then LeaderElectionConfig{WatchDog: watchdog, ...} with RunOrDie.

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 200 ok
}

// One replica's whole term, against client-go's fake clientset as a unit
// test would run it: it takes the free lock, works until its context ends,
// and releases the lock on the way out.
func ExampleRunOrDie() {
	client := fake.NewClientset()
	lock, err := k8sresourcelock.New(k8sresourcelock.LeasesResourceLock, "istio-system", "my-controller",
		client.CoreV1(), client.CoordinationV1(), k8sresourcelock.ResourceLockConfig{Identity: "istiod-1", Key: "stable"})
	if err != nil {
		panic(err)
	}
	ctx, shutdown := context.WithCancel(context.Background())
	k8sleaderelection.RunOrDie(ctx, k8sleaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Callbacks: k8sleaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				fmt.Println("leading")
				shutdown() // as SIGTERM would
			},
			OnStoppedLeading: func() { fmt.Println("stopped leading") },
		},
	})
	lease, _ := client.CoordinationV1().Leases("istio-system").Get(context.Background(), "my-controller", metav1.GetOptions{})
	fmt.Printf("holder after release: %q\n", *lease.Spec.HolderIdentity)
	// Output:
	// leading
	// stopped leading
	// holder after release: ""
}
