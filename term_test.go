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
	eachFake(t, func(t *testing.T, fk fakeClientset) {
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

// Key passes the lock's key on, so that the elector competes with it.
func (l pollingLeaseLock) Key() string { return lockKey(l.Interface) }

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

// TestRestartedHolderLeadsInANewTerm: a process that takes a Lease already
// naming its identity (a holder restarted without releasing) leads in a new
// term.
//
// Found by an adversarial review of the first version, which it failed: a
// process leads in term 0/a and dies without releasing (a crash, a container
// restart: the pod keeps its name, so its identity). Its replacement, with the
// same identity, finds the Lease naming it and takes it by renewing it,
// keeping leaseTransitions: its term is again 0/a. A write the dead process
// sent before it died (the requests "it gave up on that land later" the README
// promises to refuse) now carries the current term and is accepted. A new
// leadership must start a new term: a candidate that is not leading and takes
// the Lease that names it should bump LeaderTransitions, as it does for a
// coordinated grant with no acquire time.
func TestRestartedHolderLeadsInANewTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakes[0].new()
		first, stopFirst := context.WithCancel(t.Context())
		a1 := runCandidate(t, first, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		term1, ok := TermFromContext(a1.leading(t))
		if !ok {
			t.Fatal("no term in the first process's leading context")
		}
		// The process dies: no release (ReleaseOnCancel is off).
		stopFirst()
		a1.finished(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "a" {
			t.Fatalf("the Lease after the crash: %+v; want it still naming a", rec)
		}

		second, stopSecond := context.WithCancel(t.Context())
		defer stopSecond()
		a2 := runCandidate(t, second, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		term2, _ := TermFromContext(a2.leading(t))
		if term2 == term1 {
			t.Fatalf("the restarted process leads in term %s, the same as the dead process's term %s: "+
				"the dead process's late writes stamped %s pass the policy", term2, term1, term1)
		}
		stopSecond()
		a2.finished(t)
	})
}

// TestCoordinatedRegrantIsANewTerm: when the control plane names a holder
// again after its term ended, the Lease is at a new term, not the ended one.
//
// Found by an adversarial review of the first version, which it failed: in a
// coordinated election a leads in term 1/a, its term ends, it releases (holder
// "", transitions kept at 1), and the control plane names a again, writing
// only the holder (as kube-apiserver's controller does: leaseTransitions
// untouched, acquireTime nil). The Lease then says 1/a, a's old term, until
// a's elector notices and renews: writes a made in its previous term are
// accepted again. Release (or end of term) should bump leaseTransitions, so
// that no later grant can restore an old term.
func TestCoordinatedRegrantIsANewTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakes[0].new()
		cp := controlPlane{t, cs}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		aConfig := coordinatedConfig(t, cs, "a")
		a := startCandidate(t, ctx, aConfig, nil, 0)
		cp.elect("a")
		term1, ok := TermFromContext(a.leading(t))
		if !ok {
			t.Fatal("no term in a's leading context")
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != term1.Holder || rec.LeaderTransitions != int(term1.Transitions) {
			t.Fatalf("a's term %s does not match the Lease %+v", term1, rec)
		}
		time.Sleep(retryPeriod / 2)
		cp.prefer("b")
		receive(t, a.stopped, "a to stop leading at the end of its term")
		a.finished(t)
		time.Sleep(2 * leaseDuration)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
			t.Fatalf("the Lease after a's term: %+v; want it released", rec)
		}

		// b never shows up; the control plane names a again.
		cp.elect("a")
		lease, err := cs.CoordinationV1().Leases(testNamespace).Get(context.Background(), testLockName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		transitions := int32(0)
		if lease.Spec.LeaseTransitions != nil {
			transitions = *lease.Spec.LeaseTransitions
		}
		now := Term{Namespace: testNamespace, Lease: testLockName, Holder: *lease.Spec.HolderIdentity, Transitions: transitions}
		if now == term1 {
			t.Fatalf("after a's term ended and the control plane named a again, the Lease is at term %s, "+
				"the term a's previous leadership ended in: its late writes stamped %s pass until a renews", now, term1)
		}
	})
}
