package k8sresourcelock

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

func TestMultiLockGetHeldByUnmigratedCandidate(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	old := newLock(t, cs, ConfigMapsResourceLock, "old", "")
	if err := old.Create(ctx, record("old", "", 2)); err != nil {
		t.Fatal(err)
	}
	got, _, err := newLock(t, cs, ConfigMapsLeasesResourceLock, "new", "").Get(ctx)
	if err != nil {
		t.Fatalf("Get with the Lease missing: %v", err)
	}
	if got.HolderIdentity != "old" || got.LeaderTransitions != 2 {
		t.Fatalf("Get = %+v, want the ConfigMap's record", got)
	}
}

func TestMultiLockGetOwnPrimaryWithoutSecondaryIsNotFound(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	if err := newLock(t, cs, ConfigMapsResourceLock, "new", "").Create(ctx, record("new", "", 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newLock(t, cs, ConfigMapsLeasesResourceLock, "new", "").Get(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("Get = %v, want NotFound so that the elector creates the Lease", err)
	}
}

func TestMultiLockDisagreementIsUnknownLeader(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	if err := newLock(t, cs, ConfigMapsResourceLock, "x", "").Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	if err := newLock(t, cs, LeasesResourceLock, "x", "").Create(ctx, record("b", "", 0)); err != nil {
		t.Fatal(err)
	}
	got, raw, err := newLock(t, cs, ConfigMapsLeasesResourceLock, "c", "").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.HolderIdentity != UnknownLeader {
		t.Fatalf("holder = %q, want %q", got.HolderIdentity, UnknownLeader)
	}
	if len(raw) == 0 {
		t.Fatal("no raw record")
	}
}

func TestMultiLockRenewalIsTwoWritesNoReads(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	lock := newLock(t, cs, EndpointsLeasesResourceLock, "a", "")
	if err := lock.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	for i := range 3 {
		if err := lock.Update(ctx, record("a", "", i)); err != nil {
			t.Fatal(err)
		}
	}
	if gets, updates := cs.Count("get", ""), cs.Count("update", ""); gets != 0 || updates != 6 {
		t.Fatalf("3 renewals made %d reads and %d writes, want 0 and 6", gets, updates)
	}
}

func TestMultiLockUpdateCreatesMissingSecondary(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	lock := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "k")
	if _, _, err := lock.(*MultiLock).Primary.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lock.Update(ctx, record("a", "k", 1)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, _, err := newLock(t, cs, LeasesResourceLock, "x", "").Get(ctx)
	if err != nil || got.HolderIdentity != "a" || got.HolderKey != "k" {
		t.Fatalf("Lease after Update = %+v, %v; want it created holding a with key k", got, err)
	}
}

func TestConcatRawRecord(t *testing.T) {
	if got := string(ConcatRawRecord([]byte(`{"a":1}`), []byte(`{"b":2}`))); got != `{"a":1},{"b":2}` {
		t.Fatalf("ConcatRawRecord = %s", got)
	}
}

// TestMultiLockCreateLosingTheRaceClaimsNothing: two candidates both saw no
// lock; the one whose Primary create comes second must not go on to create
// the Secondary and lead beside the first.
func TestMultiLockCreateLosingTheRaceClaimsNothing(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	winner := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "")
	loser := newLock(t, cs, ConfigMapsLeasesResourceLock, "b", "")
	if err := winner.(*MultiLock).Primary.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	if err := loser.Create(ctx, record("b", "", 0)); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("Create after losing the race = %v, want AlreadyExists", err)
	}
	if _, _, err := newLock(t, cs, LeasesResourceLock, "x", "").Get(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("the loser created the Lease: Get = %v", err)
	}
	if err := winner.(*MultiLock).Secondary.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatalf("winner could not finish: %v", err)
	}
	got, _, err := winner.Get(ctx)
	if err != nil || got.HolderIdentity != "a" {
		t.Fatalf("Get = %+v, %v; want a on both locks", got, err)
	}
}

// TestMultiLockCreateOverOwnPrimary: after a migration rollout, a candidate
// that held the old lock finds only its Secondary missing and creates it.
func TestMultiLockCreateOverOwnPrimary(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	if err := newLock(t, cs, ConfigMapsResourceLock, "a", "").Create(ctx, record("a", "", 3)); err != nil {
		t.Fatal(err)
	}
	lock := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "")
	if _, _, err := lock.Get(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("Get = %v, want NotFound", err)
	}
	if err := lock.Create(ctx, record("a", "k", 3)); err != nil {
		t.Fatalf("Create over our own Primary: %v", err)
	}
	got, _, err := lock.Get(ctx)
	if err != nil || got.HolderIdentity != "a" || got.HolderKey != "k" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

// TestMultiLockRenewalNeverOverwritesATakenSecondary: mid-migration, a
// candidate that uses the Lease alone takes it; the MultiLock leader's next
// renewal must fail, not write over the new holder.
func TestMultiLockRenewalNeverOverwritesATakenSecondary(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	leader := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "canary")
	if err := leader.Create(ctx, record("a", "canary", 0)); err != nil {
		t.Fatal(err)
	}
	leaseOnly := newLock(t, cs, LeasesResourceLock, "b", "stable")
	if _, _, err := leaseOnly.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := leaseOnly.Update(ctx, record("b", "stable", 1)); err != nil {
		t.Fatal(err)
	}
	if err := leader.Update(ctx, record("a", "canary", 0)); !apierrors.IsConflict(err) {
		t.Fatalf("renewal over a taken Lease = %v, want Conflict", err)
	}
	if got, _, _ := leaseOnly.Get(ctx); got.HolderIdentity != "b" {
		t.Fatalf("Lease holder = %q, want b: the renewal wrote over it", got.HolderIdentity)
	}
	got, _, err := leader.Get(ctx)
	if err != nil || got.HolderIdentity != UnknownLeader {
		t.Fatalf("Get after the takeover = %+v, %v; want the disagreement reported", got, err)
	}
}

// TestMultiLockUpdateRecreatesADeletedSecondary: the Lease was deleted
// while we led; the renewal creates it again.
func TestMultiLockUpdateRecreatesADeletedSecondary(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	lock := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "")
	if err := lock.Create(ctx, record("a", "", 0)); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoordinationV1().Leases(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Update(ctx, record("a", "", 0)); err != nil {
		t.Fatalf("Update with the Lease deleted: %v", err)
	}
	if got, _, err := newLock(t, cs, LeasesResourceLock, "x", "").Get(ctx); err != nil || got.HolderIdentity != "a" {
		t.Fatalf("Lease after Update = %+v, %v", got, err)
	}
}
