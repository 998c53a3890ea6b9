package k8sresourcelock_test

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// Build a lock by kind, the way command-line flags usually choose it.
func ExampleNew() {
	client := fake.NewClientset() // a real program passes its kubernetes.Interface
	lock, err := k8sresourcelock.New(k8sresourcelock.LeasesResourceLock, "istio-system", "istio-leader",
		client.CoreV1(), client.CoordinationV1(),
		k8sresourcelock.ResourceLockConfig{Identity: "istiod-7f9c", Key: "stable"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%T %s %s %s\n", lock, lock.Describe(), lock.Identity(), lock.Key())
	// Output: *k8sresourcelock.LeaseLock istio-system/istio-leader istiod-7f9c stable
}

// A lock built from a kubeconfig gets a client whose request timeout fits
// inside a renewal.
func ExampleNewFromKubeconfig() {
	kubeconfig := &rest.Config{Host: "https://kubernetes.default.svc"}
	lock, err := k8sresourcelock.NewFromKubeconfig(k8sresourcelock.ConfigMapsLeasesResourceLock,
		"istio-system", "istio-leader", k8sresourcelock.ResourceLockConfig{Identity: "istiod-7f9c"},
		kubeconfig, 10*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%T\n", lock)
	// Output: *k8sresourcelock.MultiLock
}

// A Lease lock built directly, with labels and an owner so that the Lease is
// garbage-collected with its Deployment.
func ExampleLeaseLock() {
	client := fake.NewClientset()
	lock := &k8sresourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-leader"},
		Client:     client.CoordinationV1(),
		LockConfig: k8sresourcelock.ResourceLockConfig{Identity: "istiod-7f9c", Key: "stable"},
		Labels:     map[string]string{"app": "istiod"},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: "istiod", UID: "3f1c",
		}},
	}
	fmt.Println(lock.Describe())
	// Output: istio-system/istio-leader
}

// A ConfigMap lock, as Istio's control plane has long used.
func ExampleConfigMapLock() {
	client := fake.NewClientset()
	lock := &k8sresourcelock.ConfigMapLock{
		ConfigMapMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-leader"},
		Client:        client.CoreV1(),
		LockConfig:    k8sresourcelock.ResourceLockConfig{Identity: "istiod-7f9c", Key: "canary"},
	}
	fmt.Println(lock.Describe(), lock.Key())
	// Output: istio-system/istio-leader canary
}

// Move a fleet from Endpoints to Leases: first roll out MultiLock (both kept
// in step), then roll out LeaseLock alone.
func ExampleMultiLock() {
	client := fake.NewClientset()
	meta := metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-leader"}
	rlc := k8sresourcelock.ResourceLockConfig{Identity: "istiod-7f9c"}
	lock := &k8sresourcelock.MultiLock{
		Primary:   &k8sresourcelock.EndpointsLock{EndpointsMeta: meta, Client: client.CoreV1(), LockConfig: rlc},
		Secondary: &k8sresourcelock.LeaseLock{LeaseMeta: meta, Client: client.CoordinationV1(), LockConfig: rlc},
	}
	fmt.Println(lock.Describe())
	// Output: istio-system/istio-leader
}
