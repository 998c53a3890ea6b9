package k8sleaderelection

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestTermInTheLeadingContext: OnStartedLeading's context carries the term
// of a Lease lock (the Lease, the holder, its transitions as written), and
// none for a lock whose record the API server cannot compare.
func TestTermInTheLeadingContext(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fk.new()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				writeRecord(t, cs, rl.LeasesResourceLock, released(4))
				a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
				term, ok := TermFromContext(a.leading(t))
				uid := leaseUID(t, cs)
				want := Term{Namespace: testNamespace, Lease: testLockName, Holder: "a", Transitions: 5, UID: uid}
				if !ok || term != want {
					t.Fatalf("term in OnStartedLeading's context = %+v, %v; want %+v", term, ok, want)
				}
				if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.LeaderTransitions != int(term.Transitions) || rec.HolderIdentity != term.Holder {
					t.Fatalf("term %v does not match the Lease %+v", term, rec)
				}
				if want := string(uid) + "/5/a"; term.String() != want {
					t.Fatalf("Term.String() = %q, want %q (<uid>/<transitions>/<holder>, as the policy builds it)", term.String(), want)
				}
			})
		})
	}
	t.Run("configmap", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cs := fakes[0].new()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			a := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.ConfigMapsResourceLock, "a", "")), nil)
			if term, ok := TermFromContext(a.leading(t)); ok {
				t.Fatalf("a ConfigMap lock's term %+v; want none: no policy can read its record", term)
			}
		})
	})
	if _, ok := TermFromContext(context.Background()); ok {
		t.Fatal("a term in a context no elector made")
	}
}

// leaseUID is the UID of the test Lease as the clientset stores it.
func leaseUID(t *testing.T, cs kubernetes.Interface) types.UID {
	t.Helper()
	lease, err := cs.CoordinationV1().Leases(testNamespace).Get(context.Background(), testLockName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return lease.UID
}

// TestTermNotRepeatedAfterTheLeaseIsRecreated: a leads in the first term of
// a Lease and dies without releasing; the Lease is deleted (by hand, by the
// garbage collector with its owner, or a restore from a backup that predates
// it); a, restarted, creates it again: leaseTransitions starts at 0 once
// more and names the same holder. The term must still differ from the
// first one, or writes the dead process sent in it would pass the fence.
// Only the API server's UIDs tell the two Leases apart, so this runs on the
// fake that assigns them (client-go's stock fake assigns none).
func TestTermNotRepeatedAfterTheLeaseIsRecreated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		first, stopFirst := context.WithCancel(t.Context())
		a1 := runCandidate(t, first, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		term1, ok := TermFromContext(a1.leading(t))
		if !ok {
			t.Fatal("no term in the first leading context")
		}
		stopFirst()
		a1.finished(t)
		if err := cs.CoordinationV1().Leases(testNamespace).Delete(context.Background(), testLockName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}

		second, stopSecond := context.WithCancel(t.Context())
		defer stopSecond()
		a2 := runCandidate(t, second, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		term2, _ := TermFromContext(a2.leading(t))
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.LeaderTransitions != int(term1.Transitions) || rec.HolderIdentity != "a" {
			t.Fatalf("the recreated Lease: %+v; want it back at transitions %d naming a, the case to guard", rec, term1.Transitions)
		}
		if term2.String() == term1.String() {
			t.Fatalf("the Lease was deleted and created again, and its new term %s stamps writes as the first Lease's did (%s): "+
				"a write from the first tenure passes the fence in the second", term2, term1)
		}
		if uid := leaseUID(t, cs); term2.UID != uid {
			t.Fatalf("term %s; want the recreated Lease's UID %s", term2, uid)
		}
		stopSecond()
		a2.finished(t)
	})
}

// TestTermEndsWhenTheLeaseIsDeleted: the Lease is deleted while a leads.
// Any Lease of that name created from now on has a new UID, so the term's
// stamp will never pass the policy again: the term ends (its work is told
// to stop and Run returns, as after any lost lease) rather than running on
// with every write refused. A new Run starts a new term with the new
// Lease's UID (TestTermNotRepeatedAfterTheLeaseIsRecreated).
func TestTermEndsWhenTheLeaseIsDeleted(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(map[bool]string{false: "poll", true: "watch"}[watch], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
				if !watch {
					lease := lec.Lock.(*rl.LeaseLock)
					lec.Lock = pollingLeaseLock{lease, lease, lease}
				}
				a := runCandidate(t, ctx, lec, nil)
				work := a.leading(t)
				term1, _ := TermFromContext(work)
				if err := cs.CoordinationV1().Leases(testNamespace).Delete(context.Background(), testLockName, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-work.Done():
				case <-time.After(patience):
					t.Fatalf("the Lease of term %s was deleted; the term's work still runs %v later, when no write of it can pass the policy", term1, patience)
				}
				a.finished(t)
			})
		})
	}
}

// pollingLeaseLock is a Lease lock without a watch: its elector polls.
type pollingLeaseLock struct {
	rl.Interface
	rl.Versioned
	rl.TermLock
}

// TestTermEndsWhenTheLeaseIsRestoredBetweenRenewals: the Lease is deleted
// and at once created again with the very same spec (a restore from a
// backup taken during this term, a GitOps tool re-applying it), naming the
// leader, between two of its renewals. The new Lease has a new UID, so no
// write stamped in the running term can pass the policy again: the term
// must end, as when the Lease is only deleted, rather than renew the new
// Lease and run on with every fenced write refused.
func TestTermEndsWhenTheLeaseIsRestoredBetweenRenewals(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(map[bool]string{false: "poll", true: "watch"}[watch], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
				if !watch {
					lease := lec.Lock.(*rl.LeaseLock)
					lec.Lock = pollingLeaseLock{lease, lease, lease}
				}
				a := runCandidate(t, ctx, lec, nil)
				work := a.leading(t)
				term1, _ := TermFromContext(work)
				leases := cs.CoordinationV1().Leases(testNamespace)
				backup, err := leases.Get(context.Background(), testLockName, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if err := leases.Delete(context.Background(), testLockName, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				restored := backup.DeepCopy()
				restored.UID, restored.ResourceVersion = "", ""
				if _, err := leases.Create(context.Background(), restored, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-work.Done():
				case <-time.After(patience):
					uid := leaseUID(t, cs)
					t.Fatalf("the Lease of term %s was restored under UID %s; the term's work still runs %v later, when no write of it can pass the policy", term1, uid, patience)
				}
				cancel()
				a.finished(t)
			})
		})
	}
}
