package k8sleaderelection

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestAdvLowerKeyTakeoverIsNotAPreemption: ElectionMetric.Preempted is
// documented as "called when this replica stops leading because a
// candidate whose key outranks ours took the election over". Here the
// leader holds the highest key ("stable"), and the lock is then written
// naming a holder with the lowest key (""): a takeover nobody with a
// higher key made (as a lower-key or client-go candidate does that took
// the lease as expired after the leader was frozen, e.g. a long GC pause
// or a VM migration, or an operator's edit). steppedDown counts every
// foreign holder as a steal without comparing keys, so the metric reports
// a preemption by a higher key that never happened, and
// leader_election_preemptions_total{how="steal"} fires its alert.
func TestAdvLowerKeyTakeoverIsNotAPreemption(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakes[0].new()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "stable"))
				lec.KeyComparison = outranksAllBut("stable")
				lec.Name = "adv-lowerkey-" + uniqueName()
				mode.apply(&lec)
				a := runCandidate(t, ctx, lec, nil)
				leadCtx := a.leading(t)
				time.Sleep(retryPeriod / 2)
				// "other" with key "", which "stable" outranks.
				writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 1))
				receive(t, leadCtx.Done(), "the leader to step down")
				cancel()
				a.finished(t)
				got := whats(eventsOf(testMetrics.electionEvents(lec.Name), "handed over", "stolen"))
				if len(got) != 0 {
					t.Fatalf("the leader (key %q) reported a preemption %q when the lock was taken by a holder with key %q, which it outranks; "+
						"Preempted promises a candidate whose key outranks ours", "stable", got, "")
				}
			})
		})
	}
}

// TestAdvFrozenLeaderIsNotPreempted: the plainest deployment, no keys at
// all. The leader's renewal request hangs (a frozen process, a stalled
// connection) for longer than its lease; a follower, by the rules, takes the
// lease as expired. When the old leader's request returns it finds the lock
// naming the follower and steps down, and reports Preempted(steal): nobody
// outranks anybody here, and the ElectionMetric documentation promises that
// a term ending otherwise than by a higher key, such as a renewal failing
// until RenewDeadline, is not a preemption. Every such pause then shows as
// leader_election_preemptions_total{how="steal"}, the alert the README
// suggests for "a holder had the lock taken without handing it over" by a
// higher key.
func TestAdvFrozenLeaderIsNotPreempted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakes[0].new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var freeze atomic.Bool
		lec := testConfig(watchedHookedLock{&hookedLock{
			Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", ""),
			beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
				if freeze.CompareAndSwap(true, false) {
					// The request hangs past the lease, ignoring its
					// context, as a frozen process does.
					time.Sleep(leaseDuration + 2*retryPeriod)
				}
				return nil
			},
		}})
		lec.Name = "adv-frozen-a-" + uniqueName()
		a := runCandidate(t, ctx, lec, nil)
		leadCtx := a.leading(t)
		lb := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", ""))
		lb.Name = "adv-frozen-b-" + uniqueName()
		b := runCandidate(t, ctx, lb, nil)
		time.Sleep(retryPeriod / 2)
		freeze.Store(true)
		b.leading(t)
		receive(t, leadCtx.Done(), "the frozen leader to step down")
		cancel()
		a.finished(t)
		b.finished(t)
		got := whats(eventsOf(testMetrics.electionEvents(lec.Name), "handed over", "stolen"))
		if len(got) != 0 {
			t.Fatalf("a leader whose lease ran out while it was frozen, taken by a candidate of the same (no) key, reported a preemption %q; "+
				"no higher key took the election over", got)
		}
	})
}

// TestAdvPanickingProviderDoesNotBreakNewLeaderElector: the elector
// recovers panics of every metric call, so that "a broken metric cannot
// stop the election"; but the provider's NewLeaderMetric, called from
// NewLeaderElector, is not guarded: a provider that panics there (e.g.
// one that registers its collectors lazily with MustRegister, on the second
// elector) makes NewLeaderElector panic instead of returning an elector
// without metrics or an error.
func TestAdvPanickingProviderDoesNotBreakNewLeaderElector(t *testing.T) {
	var f metricsFactory
	f.setProvider(providerFunc(func() SwitchMetric { panic("duplicate metrics collector registration attempted") }))
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		f.newLeaderMetrics()
	}()
	if recovered != nil {
		t.Fatalf("making an elector's metrics panicked with %v: NewLeaderElector would panic; a panicking provider should leave the elector without metrics, as a panicking metric call is ignored", recovered)
	}
}
