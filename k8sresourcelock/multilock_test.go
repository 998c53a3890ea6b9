package k8sresourcelock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

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

// TestMultiLockGetOwnPrimaryWithoutSecondary: after a rollout from a
// ConfigMap lock to configmapsleases, the leader finds its own ConfigMap and
// no Lease. Get returns the ConfigMap's record, so that the elector renews it
// with its term, and the renewal creates the Lease.
func TestMultiLockGetOwnPrimaryWithoutSecondary(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	if err := newLock(t, cs, ConfigMapsResourceLock, "new", "").Create(ctx, record("new", "", 4)); err != nil {
		t.Fatal(err)
	}
	lock := newLock(t, cs, ConfigMapsLeasesResourceLock, "new", "")
	got, _, err := lock.Get(ctx)
	if err != nil || got.HolderIdentity != "new" || got.LeaderTransitions != 4 {
		t.Fatalf("Get = %+v, %v; want the ConfigMap's record", got, err)
	}
	if err := lock.Update(ctx, *got); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	lease, _, err := newLock(t, cs, LeasesResourceLock, "x", "").Get(ctx)
	if err != nil || lease.HolderIdentity != "new" || lease.LeaderTransitions != 4 {
		t.Fatalf("Lease after the renewal = %+v, %v; want it created with the term", lease, err)
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

// TestMultiLockCreateNeverWritesOverAPrimary: Create is for an absent lock;
// a Primary that exists, even one naming us, is left to Update.
func TestMultiLockCreateNeverWritesOverAPrimary(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	if err := newLock(t, cs, ConfigMapsResourceLock, "a", "").Create(ctx, record("a", "", 3)); err != nil {
		t.Fatal(err)
	}
	if err := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "").Create(ctx, record("a", "k", 0)); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("Create over an existing Primary = %v, want AlreadyExists", err)
	}
	if got, _, _ := newLock(t, cs, ConfigMapsResourceLock, "x", "").Get(ctx); got.LeaderTransitions != 3 {
		t.Fatalf("Primary after the refused Create = %+v, want it untouched", got)
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

// TestMultiLockUnreadableHalf: when either half's record cannot be decoded,
// Get reports it after reading both, so that a takeover can write over both;
// a renewal of either half still shows in the raw bytes.
func TestMultiLockUnreadableHalf(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	writer := newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "")
	if err := writer.Create(ctx, record("a", "", 2)); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Annotations[LeaderElectionRecordAnnotationKey] = "{garbage"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lock := newLock(t, cs, ConfigMapsLeasesResourceLock, "b", "")
	_, raw1, err := lock.Get(ctx)
	if !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Get = %v, want ErrInvalidRecord", err)
	}
	// The Lease half renews: the bytes change though the ConfigMap's do not.
	leaseOnly := newLock(t, cs, LeasesResourceLock, "a", "")
	if _, _, err := leaseOnly.Get(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := record("a", "", 2)
	renewed.RenewTime = metav1.NewTime(renewed.RenewTime.Add(300 * time.Millisecond))
	if err := leaseOnly.Update(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	if _, raw2, _ := lock.Get(ctx); string(raw1) == string(raw2) {
		t.Fatal("a renewal of the Lease half left the raw bytes unchanged")
	}
	if err := lock.Update(ctx, record("b", "", 3)); err != nil {
		t.Fatalf("takeover over the unreadable half: %v", err)
	}
	if got, _, err := lock.Get(ctx); err != nil || got.HolderIdentity != "b" {
		t.Fatalf("Get after the takeover = %+v, %v; want b on both halves", got, err)
	}
}

// TestMultiLockBadlyBuilt: a MultiLock with a missing half reports it from
// Validate and from every call that needs both halves, and never panics.
func TestMultiLockBadlyBuilt(t *testing.T) {
	ctx := context.Background()
	lease := newLock(t, fakekube.New(), LeasesResourceLock, "a", "k")
	for _, ml := range []*MultiLock{{}, {Primary: lease}, {Secondary: lease}, {Primary: (*ConfigMapLock)(nil), Secondary: lease}} {
		t.Run(fmt.Sprintf("%T-%T", ml.Primary, ml.Secondary), func(t *testing.T) {
			if err := ml.Validate(); err == nil || !strings.Contains(err.Error(), "must not be nil") {
				t.Errorf("Validate = %v, want a missing half named", err)
			}
			if _, _, err := ml.Get(ctx); err == nil || !strings.Contains(err.Error(), "must both be set") {
				t.Errorf("Get = %v", err)
			}
			if err := ml.Create(ctx, record("a", "", 0)); err == nil {
				t.Error("Create succeeded")
			}
			if err := ml.Update(ctx, record("a", "", 0)); err == nil {
				t.Error("Update succeeded")
			}
			ml.RecordEvent("x")
			_, _, _ = ml.Describe(), ml.Identity(), ml.Key()
			if ml.ResourceVersion() != "" {
				t.Errorf("ResourceVersion = %q", ml.ResourceVersion())
			}
		})
	}
}

// TestMultiLockDisagreementWaitsOutTheLongerLease: when the halves name
// different holders, the record carries the longer of their leases,
// whichever half holds it, through Get and through Apply: a half just
// released (a one-second lease) must not cut short the holder of the other.
func TestMultiLockDisagreementWaitsOutTheLongerLease(t *testing.T) {
	for _, c := range []struct{ primary, secondary, want int }{{1, 15, 15}, {20, 15, 20}} {
		t.Run(fmt.Sprintf("%ds-%ds", c.primary, c.secondary), func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			primary, secondary := record("a", "", 0), record("b", "", 0)
			primary.LeaseDurationSeconds, secondary.LeaseDurationSeconds = c.primary, c.secondary
			if err := newLock(t, cs, ConfigMapsResourceLock, "a", "").Create(ctx, primary); err != nil {
				t.Fatal(err)
			}
			if err := newLock(t, cs, LeasesResourceLock, "b", "").Create(ctx, secondary); err != nil {
				t.Fatal(err)
			}
			lock := newLock(t, cs, ConfigMapsLeasesResourceLock, "c", "").(*MultiLock)
			got, _, err := lock.Get(ctx)
			if err != nil || got.HolderIdentity != UnknownLeader || got.LeaseDurationSeconds != c.want {
				t.Fatalf("Get = %+v, %v; want %s with a %ds lease", got, err, UnknownLeader, c.want)
			}
			// The same judgement for a watch event of either half.
			lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err = lock.Apply(watch.Event{Type: watch.Modified, Object: lease})
			if err != nil || got.HolderIdentity != UnknownLeader || got.LeaseDurationSeconds != c.want {
				t.Fatalf("Apply = %+v, %v; want %s with a %ds lease", got, err, UnknownLeader, c.want)
			}
		})
	}
}

// pollOnly is a lock that cannot be watched.
type pollOnly struct{ Interface }

// TestMultiLockWatchNeedsBothHalves: a MultiLock is watched only when both
// halves can be; otherwise Watch and Apply say so with errors.ErrUnsupported
// (the elector then polls). When the second half's watch fails, the first's
// is stopped, not leaked.
func TestMultiLockWatchNeedsBothHalves(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	lease := newLock(t, cs, LeasesResourceLock, "a", "")
	ml := &MultiLock{Primary: pollOnly{newLock(t, cs, ConfigMapsResourceLock, "a", "")}, Secondary: lease}
	if _, err := ml.Watch(ctx); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Watch with a half that cannot be watched = %v, want ErrUnsupported", err)
	}
	if _, _, err := ml.Apply(watch.Event{Type: watch.Modified}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Apply with a half that cannot be watched = %v, want ErrUnsupported", err)
	}
	broken := errors.New("watch refused")
	cs.PrependWatchReactor("leases", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, broken })
	var primary *watch.FakeWatcher
	cs.PrependWatchReactor("configmaps", func(k8stesting.Action) (bool, watch.Interface, error) {
		primary = watch.NewFake()
		return true, primary, nil
	})
	ml = newLock(t, cs, ConfigMapsLeasesResourceLock, "a", "").(*MultiLock)
	if _, err := ml.Watch(ctx); !errors.Is(err, broken) {
		t.Fatalf("Watch with the Secondary's watch refused = %v, want that error", err)
	}
	if primary == nil || !primary.IsStopped() {
		t.Fatal("the Primary's watch was left running after the Secondary's failed")
	}
	if _, _, err := ml.Apply(watch.Event{Type: watch.Modified, Object: &corev1.Pod{}}); !errors.Is(err, errNotThisLock) {
		t.Fatalf("Apply of an event of neither half = %v, want it refused", err)
	}
}

// keylessLock has the methods of client-go's resourcelock.Interface and no
// Key, as a lock written against upstream has: Interface has no Key to
// promote.
type keylessLock struct{ Interface }

func TestMultiLockKeyIsThePrimarysOrEmpty(t *testing.T) {
	keyed := func(key string) *LeaseLock { return &LeaseLock{LockConfig: ResourceLockConfig{Key: key}} }
	var typedNil *LeaseLock
	for _, c := range []struct {
		name    string
		primary Interface
		want    string
	}{
		{"keyed Primary", keyed("stable"), "stable"},
		{"Primary without Key", keylessLock{keyed("stable")}, ""},
		{"nil Primary", nil, ""},
		{"typed nil Primary", typedNil, ""},
	} {
		ml := &MultiLock{Primary: c.primary, Secondary: keyed("canary")}
		if got := ml.Key(); got != c.want {
			t.Errorf("%s: MultiLock.Key() = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestMultiLockStepDownIsTheLaterOfTheHalves: when the halves carry
// different step-down requests (an operator wrote a new one into one half,
// over a note the other still carries), Get returns the one requested
// later, and the Primary's when that cannot be told.
func TestMultiLockStepDownIsTheLaterOfTheHalves(t *testing.T) {
	older := StepDownRequest{Holder: "x", RequestedAt: "2026-12-06T08:00:00Z", OutUntil: "2026-12-06T08:06:00Z"}
	newer := StepDownRequest{Holder: "a", RequestedAt: "2026-12-06T08:06:01Z", ExpiresAt: "2026-12-06T08:07:01Z"}
	garbage := StepDownRequest{Holder: "a", RequestedAt: "soon"}
	for _, tc := range []struct {
		name                     string
		primary, secondary, want StepDownRequest
	}{
		{"newer in the Secondary", older, newer, newer},
		{"newer in the Primary", newer, older, newer},
		{"Secondary alone", StepDownRequest{}, newer, newer},
		{"Primary alone", older, StepDownRequest{}, older},
		{"unreadable time in the Secondary", older, garbage, older},
		{"unreadable time in the Primary", garbage, older, older},
		{"same time", older, StepDownRequest{Holder: "y", RequestedAt: older.RequestedAt}, older},
	} {
		if got := laterStepDown(tc.primary, tc.secondary); got != tc.want {
			t.Errorf("%s: step-down %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
