package k8sleaderelection_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// The callers in this file are written the way users of Istio's fork and of
// upstream client-go write them; only the import paths differ. If they stop
// compiling or behaving, the drop-in promise is broken.

// istiodElection mirrors how istiod runs a prioritized election: a
// ConfigMap (or Lease) lock keyed by revision, ttl-derived timings,
// ReleaseOnCancel, and Run in a loop so that a revision that loses the lock
// goes back to competing.
type istiodElection struct {
	client     kubernetes.Interface
	name       string
	revision   string
	defaultRev string
	useLease   bool
	ttl        time.Duration
	mu         sync.Mutex
	le         *k8sleaderelection.LeaderElector
	leadCycles int
}

func (l *istiodElection) create() (*k8sleaderelection.LeaderElector, error) {
	var lock k8sresourcelock.Interface = &k8sresourcelock.ConfigMapLock{
		ConfigMapMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-leader"},
		Client:        l.client.CoreV1(),
		LockConfig:    k8sresourcelock.ResourceLockConfig{Identity: l.name, Key: l.revision},
	}
	if l.useLease {
		lock = &k8sresourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-leader"},
			Client:     l.client.CoordinationV1(),
			LockConfig: k8sresourcelock.ResourceLockConfig{Identity: l.name, Key: l.revision},
		}
	}
	config := k8sleaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: l.ttl,
		RenewDeadline: l.ttl / 2,
		RetryPeriod:   l.ttl / 4,
		Callbacks: k8sleaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				l.mu.Lock()
				l.leadCycles++
				l.mu.Unlock()
				<-ctx.Done()
			},
			OnStoppedLeading: func() {},
		},
		ReleaseOnCancel: true,
		// The default revision takes the lock from any other revision.
		KeyComparison: func(leaderKey string) bool {
			return l.revision == l.defaultRev && leaderKey != l.defaultRev
		},
	}
	return k8sleaderelection.NewLeaderElector(config)
}

func (l *istiodElection) Run(stop <-chan struct{}) {
	for {
		le, err := l.create()
		if err != nil {
			panic(err)
		}
		l.mu.Lock()
		l.le = le
		l.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		le.Run(ctx)
		cancel()
		select {
		case <-stop:
			return
		default:
		}
	}
}

func (l *istiodElection) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.le != nil && l.le.IsLeader()
}

func TestIstiodStyleCallerDefaultRevisionTakesOver(t *testing.T) {
	for _, useLease := range []bool{false, true} {
		t.Run(map[bool]string{false: "configmap", true: "lease"}[useLease], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				stop := make(chan struct{})
				canary := &istiodElection{client: cs, name: "istiod-canary", revision: "canary", defaultRev: "stable", useLease: useLease, ttl: 30 * time.Second}
				stable := &istiodElection{client: cs, name: "istiod-stable", revision: "stable", defaultRev: "stable", useLease: useLease, ttl: 30 * time.Second}
				var wg sync.WaitGroup
				wg.Go(func() { canary.Run(stop) })
				time.Sleep(time.Second)
				if !canary.IsLeader() {
					t.Fatal("canary does not lead while alone")
				}
				wg.Go(func() { stable.Run(stop) })
				time.Sleep(2 * time.Minute)
				if !stable.IsLeader() || canary.IsLeader() {
					t.Fatalf("after the default revision started: stable leads %v, canary leads %v", stable.IsLeader(), canary.IsLeader())
				}
				close(stop)
				wg.Wait()
				if canary.leadCycles != 1 || stable.leadCycles != 1 {
					t.Fatalf("lead cycles: canary %d, stable %d; want 1 each (no flapping)", canary.leadCycles, stable.leadCycles)
				}
			})
		})
	}
}

// TestUpstreamStyleCaller uses the constructor, RunOrDie, a WatchDog and a
// client-go EventRecorder, as a client-go user does.
func TestUpstreamStyleCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		recorder := record.NewFakeRecorder(10)
		lock, err := k8sresourcelock.New(k8sresourcelock.LeasesResourceLock, "kube-system", "my-controller",
			cs.CoreV1(), cs.CoordinationV1(),
			k8sresourcelock.ResourceLockConfig{Identity: "replica-1", EventRecorder: recorder})
		if err != nil {
			t.Fatal(err)
		}
		watchdog := k8sleaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		led := make(chan struct{})
		k8sleaderelection.RunOrDie(ctx, k8sleaderelection.LeaderElectionConfig{
			Lock:            lock,
			ReleaseOnCancel: true,
			LeaseDuration:   15 * time.Second,
			RenewDeadline:   10 * time.Second,
			RetryPeriod:     2 * time.Second,
			Callbacks: k8sleaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) { close(led); time.Sleep(5 * time.Second); cancel() },
				OnStoppedLeading: func() {},
				OnNewLeader:      func(string) {},
			},
			WatchDog:    watchdog,
			Name:        "my-controller",
			Coordinated: false,
		})
		<-led
		if err := watchdog.Check(nil); err != nil {
			t.Fatalf("watchdog after a clean run: %v", err)
		}
		var events []string
		for len(recorder.Events) > 0 {
			events = append(events, <-recorder.Events)
		}
		if len(events) != 2 || !strings.Contains(events[0], "replica-1 became leader") || !strings.Contains(events[1], "replica-1 stopped leading") {
			t.Fatalf("events = %q", events)
		}
	})
}
