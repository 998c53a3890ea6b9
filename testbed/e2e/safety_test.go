package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestSubSecondTimings: with sub-second retry periods a leader renews
// several times within one wall-clock second. Followers must see each
// renewal (by resourceVersion), so that they never take the lock from a
// healthy leader, and never from a cut-off one before it has stopped.
func TestSubSecondTimings(t *testing.T) {
	for _, tm := range []timing{
		{2 * time.Second, 1500 * time.Millisecond, 400 * time.Millisecond},
		{1 * time.Second, 900 * time.Millisecond, 700 * time.Millisecond},
	} {
		for _, kind := range []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock} {
			t.Run(fmt.Sprintf("%s/%v-%v-%v", kind, tm.lease, tm.renew, tm.retry), func(t *testing.T) {
				e := newElection(t)
				members := map[string]*member{}
				for _, id := range []string{"a", "b", "c"} {
					members[id] = e.start(id, memberOpts{kind: kind, timing: &tm})
				}
				maxWait := tm.retry + time.Duration(1.2*float64(tm.retry))
				waitFor(t, tm.lease+maxWait+slack, "a first leader", func() bool { return len(e.rec.Leaders()) == 1 })
				// A healthy leader keeps the lock: nobody takes it while it
				// leads. (A leader whose renewal misses the short deadline on
				// a loaded machine may step down on its own; that is safe.)
				time.Sleep(20 * time.Second)
				e.rec.assertSafe(t, nil, false)
				t.Logf("%d tenures in 20s without a fault (1 unless a renewal missed its deadline)", len(e.rec.All()))
				// Cut it off: it must stop before another takes over.
				leader := members[e.rec.Leaders()[0]]
				leader.proxy.Cut()
				waitFor(t, tm.lease+2*maxWait+slack, "another member takes over", func() bool {
					l := e.rec.Leaders()
					return len(l) == 1 && l[0] != leader.id
				})
				if err := leader.proxy.Heal(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Second)
				e.rec.assertSafe(t, nil, false)
			})
		}
	}
}

// TestRewriterNeverMakesTwoLeaders: something (a GitOps tool re-applying a
// broken manifest) keeps rewriting the ConfigMap's record with garbage while
// two members compete. There are never two leaders. A rewrite faster than
// the lease keeps everyone from taking the lock (and makes the leader step
// down); a slower one lets a member take it between rewrites.
func TestRewriterNeverMakesTwoLeaders(t *testing.T) {
	for _, period := range []time.Duration{200 * time.Millisecond, 2 * time.Second, 8 * time.Second} {
		t.Run(fmt.Sprintf("every %v", period), func(t *testing.T) {
			e := newElection(t)
			e.start("a", memberOpts{kind: rl.ConfigMapsResourceLock})
			e.start("b", memberOpts{kind: rl.ConfigMapsResourceLock})
			waitFor(t, leaseDuration+maxAttemptWait+slack, "a first leader", func() bool { return len(e.rec.Leaders()) == 1 })
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { rewrite(ctx, e, period) })
			time.Sleep(max(30*time.Second, 5*period))
			stop()
			wg.Wait()
			e.rec.assertSafe(t, nil, false)
			tenures := len(e.rec.All())
			if period < leaseDuration && tenures != 1 {
				t.Fatalf("%d tenures with the record rewritten every %v; want only the first", tenures, period)
			}
			if period > leaseDuration+maxAttemptWait && tenures < 2 {
				t.Fatalf("%d tenures with the record rewritten every %v; want the lock taken between rewrites", tenures, period)
			}
			// Once the rewriting stops, someone leads again.
			waitFor(t, leaseDuration+2*maxAttemptWait+slack, "a leader after the rewriting stopped", func() bool { return len(e.rec.Leaders()) == 1 })
		})
	}
}

// rewrite replaces the record annotation of e's ConfigMap with garbage every
// period until ctx is done.
func rewrite(ctx context.Context, e *election, period time.Duration) {
	api := e.admin.CoreV1().ConfigMaps(e.ns)
	for i := 0; ctx.Err() == nil; i++ {
		if cm, err := api.Get(ctx, e.name, metav1.GetOptions{}); err == nil {
			cm.Annotations[rl.LeaderElectionRecordAnnotationKey] = fmt.Sprintf("{garbage %d", i)
			_, _ = api.Update(ctx, cm, metav1.UpdateOptions{})
		}
		select {
		case <-ctx.Done():
		case <-time.After(period):
		}
	}
}

// TestPreemptedThenReleasedLeaderStepsDown: the preemptor steals the lock
// (handoffs off) and releases it before the old leader's next renewal. The old leader finds the lock free,
// but it changed hands since its last write: it steps down at that renewal
// instead of leading on through the other's whole tenure.
func TestPreemptedThenReleasedLeaderStepsDown(t *testing.T) {
	for _, kind := range []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock} {
		t.Run(kind, func(t *testing.T) {
			e := newElection(t)
			e.start("low", prioritized(kind, "canary"))
			waitFor(t, maxAttemptWait+slack, "canary leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "low" })
			time.Sleep(retryPeriod / 4)
			startedAt := time.Now()
			steal := prioritized(kind, "stable")
			steal.disableHandoff = true
			high := e.start("high", steal)
			waitFor(t, maxAttemptWait+slack, "stable takes over", func() bool { return len(e.rec.StartedAfter(startedAt)) == 1 })
			high.stop() // releases
			waitFor(t, retryPeriod+slack, "canary's first tenure ends", func() bool { return !e.rec.All()[0].End.IsZero() })
			first := e.rec.All()[0]
			stolen := e.rec.StartedAfter(startedAt)[0].Start
			if overlap := first.End.Sub(stolen); overlap > retryPeriod+slack {
				t.Fatalf("canary led on for %v after the steal", overlap)
			}
			e.rec.assertSafe(t, rank, true)
		})
	}
}
