package k8sleaderelection

import (
	"context"
	"testing"
	"testing/synctest"

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
				want := Term{Namespace: testNamespace, Lease: testLockName, Holder: "a", Transitions: 5}
				if !ok || term != want {
					t.Fatalf("term in OnStartedLeading's context = %+v, %v; want %+v", term, ok, want)
				}
				if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.LeaderTransitions != int(term.Transitions) || rec.HolderIdentity != term.Holder {
					t.Fatalf("term %v does not match the Lease %+v", term, rec)
				}
				if term.String() != "5/a" {
					t.Fatalf("Term.String() = %q, want 5/a", term.String())
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
