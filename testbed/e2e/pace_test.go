package e2e

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// TestRenewalPaceKeepsOneLeaderInAMixedFleet: our watching leader renews at
// the lease's pace (every 2s at 6s/4s/1s, where client-go's renews every
// RetryPeriod) beside followers of client-go's elector and Istio's fork,
// which poll and judge the lease expired LeaseDuration after they last saw
// it change. On the real API server, none of them ever takes the lock from
// it, and the Lease is written once per renewal period, not once per
// RetryPeriod.
func TestRenewalPaceKeepsOneLeaderInAMixedFleet(t *testing.T) {
	const window = 30 * time.Second
	tm := timing{6 * time.Second, 4 * time.Second, time.Second}
	const period = 2 * time.Second // min(6s/3, 4s/2, 6s-(2+1.2)*1s)
	e := newElection(t)
	e.start("ours-1", memberOpts{timing: &tm})
	waitFor(t, tm.lease+slack, "ours-1 to lead", func() bool {
		l := e.rec.Leaders()
		return len(l) == 1 && l[0] == "ours-1"
	})
	for _, id := range []string{"ours-2", "upstream-1", "upstream-2", "istio-1", "istio-2"} {
		o := memberOpts{timing: &tm}
		switch id[:len(id)-2] {
		case "upstream":
			o.elector = "upstream"
		case "istio":
			o.elector = "istio"
		}
		e.start(id, o)
	}
	time.Sleep(tm.lease) // every follower has read the lock

	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	w, err := e.admin.CoordinationV1().Leases(e.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + e.name})
	if err != nil {
		t.Fatalf("watch the Lease: %v", err)
	}
	defer w.Stop()
	writes := 0
	holders := map[string]bool{}
	for ev := range w.ResultChan() {
		if ev.Type != watch.Modified {
			continue
		}
		writes++
		if h := ev.Object.(*coordinationv1.Lease).Spec.HolderIdentity; h != nil {
			holders[*h] = true
		}
	}
	if len(holders) != 1 || !holders["ours-1"] {
		t.Errorf("the Lease named %v in the window; want ours-1 alone", holders)
	}
	if l := e.rec.Leaders(); len(l) != 1 || l[0] != "ours-1" {
		t.Errorf("leaders after the window: %v; want ours-1 alone", l)
	}
	// One write per renewal period, plus the round trip of each: at
	// RetryPeriod it would be 30.
	if most, least := int(window/period)+1, int(window/period)*2/3; writes > most || writes < least {
		t.Errorf("the Lease was written %d times in %v; want one renewal per %v (%d to %d)", writes, window, period, least, most)
	}
	t.Logf("%d writes of the Lease in %v: %.2f/s, all by ours-1", writes, window, float64(writes)/window.Seconds())
	e.rec.assertSafe(t, nil, false)
}
