package k8sleaderelection

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestAdversarialTermNotReusedAfterRestart: a process leads in term 0/a and
// dies without releasing (a crash, a container restart: the pod keeps its
// name, so its identity). Its replacement, with the same identity, finds
// the Lease naming it and takes it by renewing it, keeping
// leaseTransitions: its term is again 0/a. A write the dead process sent
// before it died (the requests "it gave up on that land later" the README
// promises to refuse) now carries the current term and is accepted. A new
// leadership must start a new term: a candidate that is not leading and
// takes the Lease that names it should bump LeaderTransitions, as it does
// for a coordinated grant with no acquire time.
func TestAdversarialTermNotReusedAfterRestart(t *testing.T) {
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

// TestAdversarialCoordinatedRegrantIsANewTerm: in a coordinated election
// a leads in term 1/a, its term ends, it releases (holder "", transitions
// kept at 1), and the control plane names a again, writing only the holder
// (as kube-apiserver's controller does: leaseTransitions untouched,
// acquireTime nil). The Lease then says 1/a, a's old term, until a's
// elector notices and renews: writes a made in its previous term are
// accepted again. Release (or end of term) should bump leaseTransitions,
// so that no later grant can restore an old term.
func TestAdversarialCoordinatedRegrantIsANewTerm(t *testing.T) {
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
