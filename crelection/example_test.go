package crelection_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/crelection"
	"github.com/k8sleaderelection/k8sleaderelection/electiontest"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// An operator whose default revision (stable) takes over from any other: its
// controller reconciles only while this replica leads, and a replica that a
// higher revision preempts exits once its reconciles have finished, to come
// back as a standby.
func ExampleNewManager() {
	config := ctrl.GetConfigOrDie()
	hostname, _ := os.Hostname()
	revision := os.Getenv("REVISION") // "stable", "canary", ...

	mgr, err := crelection.NewManager(config, manager.Options{}, k8sleaderelection.LeaderElectionConfig{
		Lock: &k8sresourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "my-operator", Name: "my-operator"},
			Client:     kubernetes.NewForConfigOrDie(config).CoordinationV1(),
			LockConfig: k8sresourcelock.ResourceLockConfig{Identity: hostname, Key: revision},
		},
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		KeyComparison:   func(holderKey string) bool { return revision == "stable" && holderKey != "stable" },
		ReleaseOnCancel: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = ctrl.NewControllerManagedBy(mgr).For(&corev1.ConfigMap{}).Complete(
		reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			return reconcile.Result{}, nil // the operator's work
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); errors.Is(err, crelection.ErrLeadershipLost) {
		fmt.Println("preempted: exiting to stand by")
		os.Exit(1) // restarted, it competes again
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// A canary's manager leads until the default revision asks for the lock: its
// work stops first, then the lock is handed over and Start returns
// ErrLeadershipLost. The election is held in memory (package electiontest),
// and nothing here needs the API server, so this runs anywhere.
func ExampleNewManager_preemption() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := electiontest.New("my-operator", "my-operator")

	election := e.Config("canary-1", "canary")
	election.Callbacks.OnStartedLeading = nil // the manager's
	nowhere := &rest.Config{Host: "http://127.0.0.1:1"}
	mgr, err := crelection.NewManager(nowhere, manager.Options{Metrics: metricsserver.Options{BindAddress: "0"}}, election)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		fmt.Println("canary-1: working")
		<-ctx.Done()
		fmt.Println("canary-1: work stopped")
		return nil
	}))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	<-mgr.Elected()

	stable := e.Config("stable-1", "stable")
	stable.KeyComparison = func(holderKey string) bool { return holderKey != "stable" }
	stable.Callbacks.OnStartedLeading = func(context.Context) { fmt.Println("stable-1: leading") }
	replica, _ := e.Start(ctx, stable, false)
	_ = e.AdvanceUntil(ctx, func() bool { return replica.Terms() == 1 })
	fmt.Println("canary-1's Start:", errors.Is(<-done, crelection.ErrLeadershipLost))

	cancel()
	<-replica.Done()
	// Output:
	// canary-1: working
	// canary-1: work stopped
	// stable-1: leading
	// canary-1's Start: true
}

// A manager whose writes of ConfigMaps and Deployments carry its term, so
// that kube-apiserver refuses them once another replica has taken over. It
// checks at start that fence's policy is installed for the same Lease and
// resources.
func ExampleWithFencing() {
	config := ctrl.GetConfigOrDie()
	hostname, _ := os.Hostname()
	clientset := kubernetes.NewForConfigOrDie(config)
	resources := []fence.Resource{{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}}

	ctx := ctrl.SetupSignalHandler()
	policy := fence.PolicyOptions{Namespace: "my-operator", Lease: "my-operator", Resources: resources}
	if err := crelection.CheckFencePolicy(ctx, clientset.AdmissionregistrationV1(), policy); err != nil {
		fmt.Fprintln(os.Stderr, err) // or crelection.ApplyFencePolicy, given the RBAC
		os.Exit(1)
	}
	mgr, err := crelection.NewManager(config, manager.Options{}, k8sleaderelection.LeaderElectionConfig{
		Lock: &k8sresourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "my-operator", Name: "my-operator"},
			Client:     clientset.CoordinationV1(),
			LockConfig: k8sresourcelock.ResourceLockConfig{Identity: hostname},
		},
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
	}, crelection.WithFencing(resources...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Add controllers; their writes with mgr.GetClient() are fenced.
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
