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

// TestEtcdStopsAtOnceUnderOpenWatches: kube-apiserver keeps watches open on
// etcd (its watch cache); stopping etcd must not wait for them to end, so
// that an etcd restart lasts as long as asked, not etcd's request timeout
// longer.
func TestEtcdStopsAtOnceUnderOpenWatches(t *testing.T) {
	cp, err := Start(Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	began := time.Now()
	if err := cp.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	// Start it again before failing: the API server cannot stop while
	// etcd is down.
	if err := cp.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	if took > 2*time.Second {
		t.Fatalf("stopping etcd took %v with the API server's watches open; want at most 2s", took)
	}
	client := kubernetes.NewForConfigOrDie(cp.Config())
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.CoordinationV1().Leases("default").List(context.Background(), metav1.ListOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server did not reach etcd within 30s of its restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
