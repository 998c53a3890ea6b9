package k8sleaderelection

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

func leadingElector(t *testing.T, cs *fakekube.Clientset, kind string) (*LeaderElector, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	le := newTestElector(t, testConfig(newTestLock(t, cs, kind, "us", "stable")), clk)
	if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(clk.Now())
	return le, clk
}

// conflictOnce makes the next n updates fail with a Conflict, as when our
// own renewal was still in flight.
func conflictOnce(cs *fakekube.Clientset, n int) *int {
	left := n
	cs.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if left == 0 {
			return false, nil, nil
		}
		left--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: a.GetResource().Resource}, testLockName, nil)
	})
	return &left
}

func TestRelease(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			cs := fakekube.New()
			le, _ := leadingElector(t, cs, kind)
			if !le.release(klog.Background()) {
				t.Fatal("release failed")
			}
			rec := readRecord(t, cs, kind)
			if rec.HolderIdentity != "" || rec.HolderKey != "" || rec.LeaseDurationSeconds != 1 {
				t.Fatalf("record after release: %+v", rec)
			}
			if le.GetLeader() != "" {
				t.Fatalf("GetLeader after release = %q", le.GetLeader())
			}
		})
	}
}

func TestReleaseRetriesConflict(t *testing.T) {
	cs := fakekube.New()
	le, _ := leadingElector(t, cs, rl.LeasesResourceLock)
	left := conflictOnce(cs, 1)
	if !le.release(klog.Background()) || *left != 0 {
		t.Fatalf("release through one conflict failed")
	}
	if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
		t.Fatalf("holder after release = %q", rec.HolderIdentity)
	}
}

func TestReleaseNeverOverwritesANewHolder(t *testing.T) {
	cs := fakekube.New()
	le, _ := leadingElector(t, cs, rl.LeasesResourceLock)
	writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("canary", 1))
	cs.ClearActions()
	if !le.release(klog.Background()) {
		t.Fatal("release reported failure for a lock that is no longer ours")
	}
	if n := cs.Count("update", ""); n != 0 {
		t.Fatalf("release wrote %d times to a lock held by another", n)
	}
	if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "other" {
		t.Fatalf("holder after release = %q, want other", rec.HolderIdentity)
	}
}

func TestReleaseGivesUpAfterRenewDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		le := newTestElector(t, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", "")), nil)
		if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
			t.Fatalf("acquire: %v %v", v, err)
		}
		conflictOnce(cs, 1<<30)
		start := time.Now()
		if le.release(klog.Background()) {
			t.Fatal("release succeeded against endless conflicts")
		}
		if took := time.Since(start); took > renewDeadline {
			t.Fatalf("release took %v, want at most renewDeadline (%v)", took, renewDeadline)
		}
	})
}
