package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// coordinatedAPIFlags switch on coordinated leader election in the embedded
// kube-apiserver: the feature gate, which also runs its election
// controller, and the LeaseCandidate API.
var coordinatedAPIFlags = []string{
	"--feature-gates=CoordinatedLeaderElection=true",
	"--runtime-config=coordination.k8s.io/v1beta1=true",
}

// electionSpan bounds how long kube-apiserver's election controller takes
// to pick a leader: it pings every candidate and waits up to five seconds
// for their answers.
const electionSpan = 30 * time.Second

// TestCoordinatedElection: with coordinated election on, kube-apiserver
// picks the leader among LeaseCandidates (the oldest emulation version) and
// our candidates follow.
// When a candidate with an older emulation version joins, the control plane
// ends the leader's term; our leader stops its work and then releases the
// Lease, so the next leader starts after it, without waiting for the lease
// to run out.
func TestCoordinatedElection(t *testing.T) {
	e := newElection(t)
	if !servesLeaseCandidates(t, e.admin) {
		t.Skip("the API server does not serve coordination.k8s.io/v1beta1 LeaseCandidates")
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	start := func(id, binary, emulation string) {
		lock, err := rl.New(rl.LeasesResourceLock, e.ns, e.name, e.admin.CoreV1(), e.admin.CoordinationV1(), rl.ResourceLockConfig{Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		elector, err := le.NewLeaderElector(le.LeaderElectionConfig{
			Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			Coordinated: true,
			Name:        e.ns,
			Callbacks:   e.rec.callbacks(id, emulation, 300*time.Millisecond, e.hang),
		})
		if err != nil {
			t.Fatal(err)
		}
		candidate, _, err := le.NewCandidate(e.admin, e.ns, id, e.name, binary, emulation, coordinationv1.OldestEmulationVersion)
		if err != nil {
			t.Fatal(err)
		}
		memberCtx := klog.NewContext(ctx, klog.Background().WithValues("member", id))
		wg.Go(func() { elector.Run(memberCtx) })
		wg.Go(func() { candidate.Run(memberCtx) })
	}

	start("newer", "1.37.0", "1.37.0")
	waitFor(t, electionSpan, "the control plane to elect the only candidate", func() bool {
		return slices.Equal(e.rec.Leaders(), []string{"newer"})
	})
	rec, err := e.record(rl.LeasesResourceLock)
	if err != nil || rec.HolderIdentity != "newer" || rec.Strategy != coordinationv1.OldestEmulationVersion {
		t.Fatalf("Lease after the first election: %+v, %v; want newer, with the control plane's strategy", rec, err)
	}

	joined := time.Now()
	start("older", "1.37.0", "1.36.0")
	waitFor(t, electionSpan, "the control plane to prefer the older emulation version", func() bool {
		return slices.Equal(e.rec.Leaders(), []string{"older"})
	})
	tenures := e.rec.All()
	if len(tenures) != 2 || tenures[0].ID != "newer" || tenures[1].ID != "older" {
		t.Fatalf("tenures %v; want newer's, then older's", tenures)
	}
	gap := tenures[1].Start.Sub(tenures[0].End)
	if gap < 0 {
		t.Fatalf("older started leading %v before newer's work returned", -gap)
	}
	// Released, not left to expire: the control plane names the next
	// holder as soon as the Lease is free.
	if gap > leaseDuration {
		t.Errorf("no leader for %v between the terms; a release should hand over faster than a lease (%v)", gap, leaseDuration)
	}
	addFigure("coordinated election: no leader between terms", gap)
	addFigure("coordinated election: older version leads after joining", time.Since(joined))
	e.rec.assertSafe(t, nil, false)
}

// servesLeaseCandidates reports whether the API server serves
// LeaseCandidates: it does unless a list says the resource is not found.
func servesLeaseCandidates(t *testing.T, client kubernetes.Interface) bool {
	t.Helper()
	_, err := client.CoordinationV1beta1().LeaseCandidates("default").List(context.Background(), metav1.ListOptions{Limit: 1})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("list lease candidates: %v", err)
	}
	return true
}
