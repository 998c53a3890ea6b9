package k8sleaderelection

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// maxAcquireWait is the longest a candidate waits between two attempts.
const maxAcquireWait = retryPeriod + time.Duration(JitterFactor*float64(retryPeriod))

func annotated(kind, record string) []runtime.Object {
	meta := metav1.ObjectMeta{Namespace: testNamespace, Name: testLockName,
		Annotations: map[string]string{rl.LeaderElectionRecordAnnotationKey: record}}
	return []runtime.Object{&corev1.ConfigMap{ObjectMeta: meta}, &corev1.Endpoints{ObjectMeta: meta}}
}

func lease(spec coordinationv1.LeaseSpec) []runtime.Object {
	return []runtime.Object{&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testLockName}, Spec: spec}}
}

// TestOddRecordsNeitherWedgeNorHandOver starts a candidate against locks
// holding records no well-behaved elector writes. Each must be taken either
// at once (nobody holds it) or after our own LeaseDuration (somebody might),
// never sooner and never not at all.
func TestOddRecordsNeitherWedgeNorHandOver(t *testing.T) {
	const atOnce = time.Duration(0)
	cases := []struct {
		name    string
		kind    string
		objects []runtime.Object
		wait    time.Duration // before the lock may be taken
		invalid bool          // undecodable: KeyComparison must never see it
	}{
		{"annotation is not JSON", rl.ConfigMapsResourceLock, annotated("", "{garbage"), leaseDuration, true},
		{"annotation has wrong types", rl.EndpointsResourceLock, annotated("", `{"holderIdentity":7}`), leaseDuration, true},
		{"multilock primary is not JSON", rl.ConfigMapsLeasesResourceLock, annotated("", "]["), leaseDuration, true},
		{"zero lease duration", rl.ConfigMapsResourceLock, annotated("", `{"holderIdentity":"x","leaseDurationSeconds":0}`), leaseDuration, false},
		{"negative lease duration", rl.EndpointsResourceLock, annotated("", `{"holderIdentity":"x","leaseDurationSeconds":-30}`), leaseDuration, false},
		{"absurd lease duration", rl.ConfigMapsResourceLock, annotated("", `{"holderIdentity":"x","leaseDurationSeconds":99999999999999}`), leaseDuration, false},
		{"holder's lease longer than ours", rl.ConfigMapsResourceLock, annotated("", `{"holderIdentity":"x","leaseDurationSeconds":40}`), 40 * time.Second, false},
		{"holder's lease shorter than ours", rl.ConfigMapsResourceLock, annotated("", `{"holderIdentity":"x","leaseDurationSeconds":5}`), 5 * time.Second, false},
		{"empty holder with a key", rl.ConfigMapsResourceLock, annotated("", `{"holderIdentity":"","holderKey":"k","leaseDurationSeconds":15}`), atOnce, false},
		{"annotation is null", rl.ConfigMapsResourceLock, annotated("", `null`), atOnce, false},
		{"lease with no spec fields", rl.LeasesResourceLock, lease(coordinationv1.LeaseSpec{}), atOnce, false},
		{"lease holder without duration", rl.LeasesResourceLock, lease(coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x")}), leaseDuration, false},
		{"lease with negative duration", rl.LeasesResourceLock, lease(coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x"), LeaseDurationSeconds: ptr.To[int32](-1)}), leaseDuration, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New(tc.objects...)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var compared atomic.Int32
				lec := testConfig(newTestLock(t, cs, tc.kind, "us", "k"))
				lec.KeyComparison = func(string) bool { compared.Add(1); return false }
				c := runCandidate(t, ctx, lec)
				c.leading(t)
				waited := time.Since(c.startAt)
				if tc.wait == atOnce && waited != 0 {
					t.Fatalf("took the lock after %v, want at once", waited)
				}
				if tc.wait != atOnce && (waited < tc.wait || waited > tc.wait+maxAcquireWait) {
					t.Fatalf("took the lock after %v, want after %v and within one more attempt", waited, tc.wait)
				}
				if tc.invalid && compared.Load() != 0 {
					t.Fatalf("KeyComparison was asked about an undecodable record %d times", compared.Load())
				}
				rec := readRecord(t, cs, tc.kind)
				if rec.HolderIdentity != "us" || rec.HolderKey != "k" || rec.LeaseDurationSeconds != 15 {
					t.Fatalf("record after taking over: %+v", rec)
				}
				cancel()
				<-c.done
			})
		})
	}
}

// TestChurningGarbageIsTakenOver keeps rewriting an undecodable record: the
// churn must not read as a live holder renewing.
func TestChurningGarbageIsTakenOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New(annotated("", "junk-0")...)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		writer, stopWriter := context.WithCancel(ctx)
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for i := 1; writer.Err() == nil; i++ {
				cm, err := cs.CoreV1().ConfigMaps(testNamespace).Get(writer, testLockName, metav1.GetOptions{})
				if err == nil && cm.Annotations[rl.LeaderElectionRecordAnnotationKey] != "" &&
					cm.Annotations[rl.LeaderElectionRecordAnnotationKey][0] != '{' {
					cm.Annotations[rl.LeaderElectionRecordAnnotationKey] = fmt.Sprintf("junk-%d", i)
					_, _ = cs.CoreV1().ConfigMaps(testNamespace).Update(writer, cm, metav1.UpdateOptions{})
				}
				time.Sleep(retryPeriod / 4)
			}
		}()
		c := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.ConfigMapsResourceLock, "us", "")))
		c.leading(t)
		waited := time.Since(c.startAt)
		stopWriter()
		<-writerDone
		if waited < leaseDuration || waited > leaseDuration+maxAcquireWait {
			t.Fatalf("took the churning lock after %v, want about LeaseDuration (%v)", waited, leaseDuration)
		}
		cancel()
		<-c.done
	})
}

// TestLiveHolderIsNeverTakenOver: a holder that keeps renewing holds the lock
// for as long as it renews, and loses it LeaseDuration after it stops.
func TestLiveHolderIsNeverTakenOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		holder := otherHolds("", 0)
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		c := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", "")))
		for range 20 {
			time.Sleep(retryPeriod)
			holder.RenewTime = metav1.NewTime(time.Now())
			writeRecord(t, cs, rl.LeasesResourceLock, holder)
		}
		stoppedAt := time.Now()
		if len(c.started) != 0 {
			t.Fatal("took the lock from a holder that kept renewing")
		}
		c.leading(t)
		// We see the last renewal at our next attempt, and take over at the
		// first attempt a LeaseDuration after that.
		if waited := time.Since(stoppedAt); waited < leaseDuration || waited > leaseDuration+2*maxAcquireWait {
			t.Fatalf("took the lock %v after the holder stopped, want LeaseDuration (%v) after we saw its last renewal", waited, leaseDuration)
		}
		cancel()
		<-c.done
	})
}

// TestPanickingKeyComparison: the panic is contained, read as "do not
// preempt", and the candidate goes on competing.
func TestPanickingKeyComparison(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		holderCtx, stopHolder := context.WithCancel(ctx)
		lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "old"))
		lec.ReleaseOnCancel = true
		a := runCandidate(t, holderCtx, lec)
		a.leading(t)

		var calls atomic.Int32
		lec = testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "new"))
		lec.KeyComparison = func(string) bool { calls.Add(1); panic("comparison bug") }
		b := runCandidate(t, ctx, lec)
		time.Sleep(5 * retryPeriod)
		if calls.Load() < 2 || len(b.started) != 0 {
			t.Fatalf("KeyComparison called %d times, b leads: %v; want repeated calls and no preemption", calls.Load(), len(b.started) != 0)
		}
		stopHolder()
		<-a.done
		b.leading(t)
		cancel()
		<-b.done
	})
}
