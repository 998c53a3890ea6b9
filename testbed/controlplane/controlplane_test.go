package controlplane

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestEmbeddedControlPlane starts etcd and kube-apiserver, writes a Lease,
// restarts each server and slows etcd under a running client, and reads the Lease back
// through the same client; then reaches the same server as an external
// cluster through a kubeconfig file.
func TestEmbeddedControlPlane(t *testing.T) {
	cp, err := Start(Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if !cp.Embedded() {
		t.Fatal("Start returned a control plane that is not embedded")
	}
	client := kubernetes.NewForConfigOrDie(cp.Config())
	ctx := context.Background()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "probe"}}
	if _, err := client.CoordinationV1().Leases("default").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}

	readBack := func(when string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := client.CoordinationV1().Leases("default").Get(ctx, "probe", metav1.GetOptions{})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: lease not readable with the old client: %v", when, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoordinationV1().Leases("default").Get(ctx, "probe", metav1.GetOptions{}); err == nil {
		t.Fatal("a request succeeded while the API server was stopped")
	}
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	readBack("after an API server restart")

	if err := cp.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	if err := cp.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	readBack("after an etcd restart")

	// A slow etcd slows every write: one create sends etcd at least one
	// request, which now takes at least twice the delay.
	const delay = 200 * time.Millisecond
	if err := cp.SlowEtcd(delay); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	slow := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "slow"}}
	if _, err := client.CoordinationV1().Leases("default").Create(ctx, slow, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create with etcd slowed: %v", err)
	}
	if took := time.Since(began); took < 2*delay {
		t.Fatalf("a create took %v with etcd slowed by %v each way, want at least %v", took, delay, 2*delay)
	}
	if err := cp.HealEtcd(); err != nil {
		t.Fatal(err)
	}
	readBack("after etcd healed")

	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	external, err := StartOrConnect(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer external.Close()
	if external.Embedded() || external.StopAPIServer() != ErrNotEmbedded {
		t.Fatal("a kubeconfig cluster claims to be embedded")
	}
	if _, err := kubernetes.NewForConfigOrDie(external.Config()).CoordinationV1().Leases("default").Get(ctx, "probe", metav1.GetOptions{}); err != nil {
		t.Fatalf("read through the kubeconfig: %v", err)
	}
}
