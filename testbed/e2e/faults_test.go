package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// healBound is how soon after a fault heals a leader must exist again.
const healBound = leaseDuration + time.Duration(1.2*float64(retryPeriod)) + slack

// faultElection starts three members with equal keys and waits for a leader.
func faultElection(t *testing.T) (*election, map[string]*member, *member) {
	t.Helper()
	e := newElection(t)
	byID := map[string]*member{}
	for _, id := range []string{"a", "b", "c"} {
		byID[id] = e.start(id, memberOpts{kind: rl.LeasesResourceLock})
	}
	waitFor(t, leaseDuration+maxAttemptWait+slack, "a first leader", func() bool { return len(e.rec.Leaders()) == 1 })
	time.Sleep(retryPeriod)
	return e, byID, byID[e.rec.Leaders()[0]]
}

// afterHeal checks that a leader exists within healBound of healedAt, and
// that nobody ever led beside another.
func afterHeal(t *testing.T, e *election, name string, healedAt time.Time) {
	t.Helper()
	waitFor(t, healBound, "a leader after the fault healed", func() bool { return len(e.rec.Leaders()) == 1 })
	if d, ok := e.rec.LeaderSince(healedAt); ok {
		addFigure("leader after heal: "+name, d)
	}
	time.Sleep(2 * retryPeriod)
	if got := e.rec.Leaders(); len(got) != 1 {
		t.Fatalf("leaders after the fault = %v, want one", got)
	}
	e.rec.assertSafe(t, nil, false)
}

// TestLeaderPartitioned cuts the leader off from the API server: it stops
// leading before another member takes over, and another does take over.
func TestLeaderPartitioned(t *testing.T) {
	for _, fault := range []string{"cut", "blackhole"} {
		t.Run(fault, func(t *testing.T) {
			e, _, leader := faultElection(t)
			cutAt := time.Now()
			if fault == "cut" {
				leader.proxy.Cut()
			} else if err := leader.proxy.BlackHole(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, leaseDuration+2*maxAttemptWait+slack, "another member takes over", func() bool {
				l := e.rec.Leaders()
				return len(l) == 1 && l[0] != leader.id
			})
			took := e.rec.StartedAfter(cutAt)[0].Start.Sub(cutAt)
			addFigure("failover after partition ("+fault+")", took)
			if took < leaseDuration-retryPeriod {
				t.Fatalf("took over %v after the partition, sooner than the lease allows", took)
			}
			time.Sleep(leaseDuration)
			healedAt := time.Now()
			if err := leader.proxy.Heal(); err != nil {
				t.Fatal(err)
			}
			afterHeal(t, e, "partition "+fault, healedAt)
		})
	}
}

// TestLatencySpikes slows the leader's traffic. A delay its requests absorb
// (200ms each way) must not cost it the lease; delays of 1 to 5 seconds each
// way push every request past the client's timeout (half the renew
// deadline), so another member must take over, and the slowed leader must
// stop first (checked by afterHeal).
func TestLatencySpikes(t *testing.T) {
	e, byID, _ := faultElection(t)
	for _, d := range []time.Duration{200 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second} {
		leader := byID[e.rec.Leaders()[0]]
		spikeAt := time.Now()
		if err := leader.proxy.Latency(d); err != nil {
			t.Fatal(err)
		}
		if absorbed := d < renewDeadline/4; absorbed {
			time.Sleep(leaseDuration + 2*maxAttemptWait)
			if got := e.rec.StartedAfter(spikeAt); len(got) != 0 {
				t.Fatalf("latency %v each way cost the leader its lease: %v", d, got)
			}
		} else {
			// The leader stops within RenewDeadline, but the requests it
			// gave up on are still in the pipe and land up to d later,
			// renewing a lease nobody leads on (harmless: once anyone
			// else writes, such a stale write conflicts). The others see
			// the last of them at their next attempt and take over at the
			// first attempt a lease later.
			bound := renewDeadline + d + leaseDuration + 2*maxAttemptWait + slack
			waitFor(t, bound, fmt.Sprintf("latency %v: another member takes over", d), func() bool {
				return len(e.rec.StartedAfter(spikeAt)) > 0
			})
			got := e.rec.StartedAfter(spikeAt)
			if got[0].ID == leader.id {
				t.Fatalf("latency %v each way: the slowed leader %s took the lock again: %v", d, leader.id, got)
			}
			addFigure(fmt.Sprintf("takeover under latency %v", d), got[0].Start.Sub(spikeAt))
		}
		healedAt := time.Now()
		if err := leader.proxy.Heal(); err != nil {
			t.Fatal(err)
		}
		afterHeal(t, e, fmt.Sprintf("latency %v", d), healedAt)
	}
}

// TestAPIServerRestart stops the API server long enough for the leader to
// give up, then starts it again.
func TestAPIServerRestart(t *testing.T) {
	if !cp.Embedded() {
		t.Skip("needs the embedded control plane")
	}
	e, _, _ := faultElection(t)
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	// At most RenewDeadline after its last renewal, which came before the stop.
	waitFor(t, renewDeadline+slack, "the leader gives up", func() bool { return len(e.rec.Leaders()) == 0 })
	time.Sleep(retryPeriod)
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	afterHeal(t, e, "apiserver restart", time.Now())
}

// TestEtcdRestart stops etcd under the API server, then starts it again.
func TestEtcdRestart(t *testing.T) {
	if !cp.Embedded() {
		t.Skip("needs the embedded control plane")
	}
	e, _, _ := faultElection(t)
	if err := cp.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, renewDeadline+slack, "the leader gives up", func() bool { return len(e.rec.Leaders()) == 0 })
	time.Sleep(retryPeriod)
	if err := cp.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	healedAt := time.Now()
	// The API server's etcd client needs a moment to reconnect.
	waitFor(t, 30*time.Second, "the API server answers again", func() bool {
		_, err := e.admin.CoreV1().Namespaces().Get(context.Background(), e.ns, metav1.GetOptions{})
		return err == nil
	})
	afterHeal(t, e, "etcd restart", healedAt)
}

// TestConflictStorm runs eight members while another writer rewrites the
// Lease as fast as it can, so that most writes conflict.
func TestConflictStorm(t *testing.T) {
	e := newElection(t)
	for i := range 8 {
		e.start(fmt.Sprintf("m%d", i), memberOpts{kind: rl.LeasesResourceLock})
	}
	waitFor(t, leaseDuration+maxAttemptWait+slack, "a first leader", func() bool { return len(e.rec.Leaders()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*leaseDuration)
	defer cancel()
	var wg sync.WaitGroup
	var writes, conflicts int
	var mu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				lease, err := e.admin.CoordinationV1().Leases(e.ns).Get(ctx, e.name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				if lease.Annotations == nil {
					lease.Annotations = map[string]string{}
				}
				lease.Annotations["storm"] = fmt.Sprintf("%d-%d", w, time.Now().UnixNano())
				_, err = e.admin.CoordinationV1().Leases(e.ns).Update(ctx, lease, metav1.UpdateOptions{})
				mu.Lock()
				writes++
				if err != nil {
					conflicts++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("storm: %d writes, %d conflicts", writes, conflicts)
	if conflicts < 100 {
		t.Fatalf("only %d of %d storm writes conflicted: not a storm", conflicts, writes)
	}
	afterHeal(t, e, "conflict storm", time.Now())
}
