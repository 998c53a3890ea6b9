package k8sresourcelock

import (
	"context"
	"fmt"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

func getLease(t *testing.T, cs *fakekube.Clientset) *coordinationv1.Lease {
	t.Helper()
	lease, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return lease
}

func TestLeaseKeyAnnotation(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	lock := newLock(t, cs, LeasesResourceLock, "a", "")
	if err := lock.Create(ctx, record("a", "canary", 0)); err != nil {
		t.Fatal(err)
	}
	if got := getLease(t, cs).Annotations[LeaseHolderKey]; got != "canary" {
		t.Fatalf("annotation %s = %q, want canary", LeaseHolderKey, got)
	}
	if err := lock.Update(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	if got, ok := getLease(t, cs).Annotations[LeaseHolderKey]; ok {
		t.Fatalf("annotation %s = %q after an update with no key, want it removed", LeaseHolderKey, got)
	}
}

func TestLeaseLabelsAndOwners(t *testing.T) {
	ctx := context.Background()
	existing := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, Labels: map[string]string{"team": "mesh", "rev": "old"},
	}}
	cs := fakekube.New(existing)
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "istiod", UID: "u1"}
	lock := &LeaseLock{
		LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Client: cs.CoordinationV1(),
		LockConfig: ResourceLockConfig{Identity: "a"}, Labels: map[string]string{"rev": "stable"},
		OwnerReferences: []metav1.OwnerReference{owner},
	}
	if _, _, err := lock.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lock.Update(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	lease := getLease(t, cs)
	if lease.Labels["team"] != "mesh" || lease.Labels["rev"] != "stable" {
		t.Errorf("labels = %v, want team=mesh kept and rev=stable written", lease.Labels)
	}
	if len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].UID != "u1" {
		t.Errorf("owner references = %v", lease.OwnerReferences)
	}
}

func TestNewWithLabelsLabelsTheLease(t *testing.T) {
	cs := fakekube.New()
	lock, err := NewWithLabels(LeasesResourceLock, ns, name, cs.CoreV1(), cs.CoordinationV1(),
		ResourceLockConfig{Identity: "a"}, map[string]string{"app": "istiod"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Create(context.Background(), record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	if got := getLease(t, cs).Labels["app"]; got != "istiod" {
		t.Fatalf("label app = %q, want istiod", got)
	}
}

func TestLeaseWithNilSpecFieldsReadsAsZero(t *testing.T) {
	cs := fakekube.New(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	got, raw, err := newLock(t, cs, LeasesResourceLock, "a", "").Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if *got != (LeaderElectionRecord{}) || len(raw) == 0 {
		t.Fatalf("Get of an empty Lease = %+v, %q; want the zero record and its bytes", *got, raw)
	}
	if *LeaseToLeaderElectionRecord(nil) != (LeaderElectionRecord{}) {
		t.Fatal("LeaseToLeaderElectionRecord(nil) is not the zero record")
	}
	if *LeaseSpecToLeaderElectionRecord(nil) != (LeaderElectionRecord{}) {
		t.Fatal("LeaseSpecToLeaderElectionRecord(nil) is not the zero record")
	}
	if spec := LeaderElectionRecordToLeaseSpec(nil); spec.HolderIdentity != nil {
		t.Fatalf("LeaderElectionRecordToLeaseSpec(nil) = %+v, want an empty spec", spec)
	}
}

func TestLeaseSpecConversion(t *testing.T) {
	rec := record("a", "k", 7)
	rec.Strategy = coordinationv1.OldestEmulationVersion
	rec.PreferredHolder = "b"
	spec := LeaderElectionRecordToLeaseSpec(&rec)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{LeaseHolderKey: "k"}},
		Spec:       spec,
	}
	if fromSpec := LeaseSpecToLeaderElectionRecord(&spec); fromSpec.HolderKey != "" || fromSpec.HolderIdentity != "a" || fromSpec.LeaderTransitions != 7 {
		t.Fatalf("LeaseSpecToLeaderElectionRecord = %+v", fromSpec)
	}
	back := LeaseToLeaderElectionRecord(lease)
	if !back.AcquireTime.Equal(&rec.AcquireTime) || !back.RenewTime.Equal(&rec.RenewTime) {
		t.Fatalf("times changed: %v %v", back.AcquireTime, back.RenewTime)
	}
	back.AcquireTime, back.RenewTime = rec.AcquireTime, rec.RenewTime
	if *back != rec {
		t.Fatalf("round trip = %+v, want %+v", *back, rec)
	}
	// The spec's pointers must not alias the record.
	rec.HolderIdentity = "changed"
	if *spec.HolderIdentity != "a" {
		t.Fatal("LeaseSpec aliases the record's HolderIdentity")
	}
}

func TestLeaseSpecClampsHugeCounts(t *testing.T) {
	rec := LeaderElectionRecord{LeaseDurationSeconds: 1 << 40, LeaderTransitions: -(1 << 40)}
	spec := LeaderElectionRecordToLeaseSpec(&rec)
	if *spec.LeaseDurationSeconds != 1<<31-1 || *spec.LeaseTransitions != -1<<31 {
		t.Fatalf("spec = %d, %d; want values clamped to int32", *spec.LeaseDurationSeconds, *spec.LeaseTransitions)
	}
	if got := LeaseToLeaderElectionRecord(&coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To[int32](-5)}}); got.LeaseDurationSeconds != -5 {
		t.Fatalf("negative duration read as %d, want -5 passed through for the elector to judge", got.LeaseDurationSeconds)
	}
}

// TestLeaseTermObject: a Lease lock names the Lease and the UID it last
// read or wrote, and forgets the UID once a read finds the Lease gone, so
// that a term can never name a Lease that no longer exists. Other locks
// have no term.
func TestLeaseTermObject(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	lock := newLock(t, cs, LeasesResourceLock, "a", "")
	term, ok := lock.(TermLock)
	if !ok {
		t.Fatalf("%T is no TermLock", lock)
	}
	check := func(when string, want string) {
		t.Helper()
		gotNS, gotName, uid := term.TermObject()
		if gotNS != ns || gotName != name || string(uid) != want {
			t.Fatalf("%s: TermObject() = %s, %s, %q; want %s, %s, %q", when, gotNS, gotName, uid, ns, name, want)
		}
	}
	check("before any read", "")
	if err := lock.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	first := getLease(t, cs).UID
	check("after create", string(first))
	if err := cs.CoordinationV1().Leases(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lock.Get(ctx); err == nil {
		t.Fatal("Get of a deleted Lease: no error")
	}
	check("after a read found it gone", "")
	other := newLock(t, cs, LeasesResourceLock, "b", "")
	if err := other.Create(ctx, record("b", "", 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lock.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if second := getLease(t, cs).UID; second == first {
		t.Fatalf("the fake gave the recreated Lease the old UID %s", first)
	} else {
		check("after reading the recreated Lease", string(second))
	}
	for _, kind := range []string{ConfigMapsResourceLock, EndpointsResourceLock, ConfigMapsLeasesResourceLock} {
		if _, ok := newLock(t, cs, kind, "a", "").(TermLock); ok {
			t.Errorf("a %s lock is a TermLock; no policy can read its record", kind)
		}
	}
}

func TestLeaseLocksShareOneWatch(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	client := cs.CoordinationV1()
	var watches []watch.Interface
	for i := range 10 {
		lock := &LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("election-%d", i)}, Client: client, LockConfig: ResourceLockConfig{Identity: "a"}}
		if err := lock.Create(ctx, record("a", "", 0)); err != nil {
			t.Fatal(err)
		}
		w, err := lock.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watches = append(watches, w)
	}
	if n := cs.Count("watch", "leases"); n != 1 {
		t.Fatalf("10 Lease locks opened %d watches, want 1", n)
	}
	writer := &LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: ns, Name: "election-3"}, Client: client, LockConfig: ResourceLockConfig{Identity: "b"}}
	if _, _, err := writer.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Update(ctx, record("b", "", 1)); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := next(t, watches[3])
		if !ok {
			t.Fatal("election-3's watch ended")
		}
		if got := ev.Object.(*coordinationv1.Lease); got.Name != "election-3" {
			t.Fatalf("election-3's watch got an event of %s", got.Name)
		} else if *got.Spec.HolderIdentity == "b" {
			return
		}
	}
}
