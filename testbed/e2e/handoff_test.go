package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// offered is the time a holder of this suite offers to take to hand over:
// a RetryPeriod to notice the request without a watch, StopTimeout (the
// RenewDeadline by default) for its work to stop, and a RenewDeadline for
// the write.
const offered = retryPeriod + renewDeadline + renewDeadline

// TestHandoffFromAHangingHolder: the holder's work never stops once told,
// so the holder never hands the lock over while it may still run. It gives
// up waiting after StopTimeout (the RenewDeadline here) and its term ends;
// its next Run does not compete while that work still runs, so the
// requester takes the lock once the holder's offer has run out.
func TestHandoffFromAHangingHolder(t *testing.T) {
	e := newElection(t)
	low := prioritized(rl.LeasesResourceLock, "canary")
	low.windDown = -1
	e.start("low", low)
	waitFor(t, maxAttemptWait+slack, "canary leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "low" })
	startedAt := time.Now()
	e.start("high", prioritized(rl.LeasesResourceLock, "stable"))
	waitFor(t, offered+maxAttemptWait+slack, "stable takes the lock", func() bool { return len(e.rec.StartedAfter(startedAt)) == 1 })
	took := e.rec.StartedAfter(startedAt)[0].Start.Sub(startedAt)
	addFigure("handoff from a hanging holder: time to lead", took)
	if took < renewDeadline {
		t.Fatalf("stable took the lock %v after it asked, before the holder's StopTimeout (%v) ran out", took, renewDeadline)
	}
	if rec, err := e.record(rl.LeasesResourceLock); err != nil || rec.HolderIdentity != "high" || rec.LeaderTransitions != 1 {
		t.Fatalf("record: %+v, %v", rec, err)
	}
}

// TestHandoffToADeadRequester: the requester dies (its connection cut) the
// moment its request is written. The holder hands the lock over all the
// same; the election recovers within one lease of the dead requester.
func TestHandoffToADeadRequester(t *testing.T) {
	e := newElection(t)
	e.start("low", prioritized(rl.LeasesResourceLock, "canary"))
	waitFor(t, maxAttemptWait+slack, "canary leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "low" })
	asked := make(chan time.Time, 1)
	high := prioritized(rl.LeasesResourceLock, "stable")
	high.wrap = func(lock rl.Keyed) rl.Keyed {
		return &afterWrite{Keyed: lock, then: func(r rl.LeaderElectionRecord) {
			if r.HandoffRequest.HolderIdentity == "high" {
				e.member("high").proxy.Cut()
				select {
				case asked <- time.Now():
				default:
				}
			}
		}}
	}
	e.start("high", high)
	askedAt := receiveWithin(t, asked, maxAttemptWait+slack, "the request")
	waitFor(t, leaseDuration+maxAttemptWait+slack, "a leader again", func() bool {
		return strings.Join(e.rec.Leaders(), ",") == "low" && len(e.rec.StartedAfter(askedAt)) == 1
	})
	addFigure("handoff to a dead requester: back to a leader", e.rec.StartedAfter(askedAt)[0].Start.Sub(askedAt))
	e.rec.assertSafe(t, rank, false)
}

// TestPreemptionAcrossElectors: holders on Istio's fork or client-go's
// elector cannot hand over (they make no offer), so a higher key of ours
// takes the lock from them at once; a higher key on Istio's fork takes it
// from ours, which, watching, steps down at once. The old holder on another
// elector notices only when its renewals fail: that overlap is theirs.
func TestPreemptionAcrossElectors(t *testing.T) {
	foreignBound := renewDeadline + retryPeriod + slack
	for _, tc := range []struct {
		name      string
		low, high memberOpts
		bound     time.Duration // the longest overlap allowed
	}{
		{"ours takes from client-go", memberOpts{elector: "upstream"}, prioritized(rl.LeasesResourceLock, "stable"), foreignBound},
		{"ours takes from istio", istioOpts("canary"), prioritized(rl.LeasesResourceLock, "stable"), foreignBound},
		{"istio takes from ours", prioritized(rl.LeasesResourceLock, "canary"), istioOpts("stable"), slack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newElection(t)
			e.start("low", tc.low)
			waitFor(t, maxAttemptWait+slack, "low leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "low" })
			time.Sleep(retryPeriod / 2)
			startedAt := time.Now()
			e.start("high", tc.high)
			waitFor(t, maxAttemptWait+slack, "high takes the lock", func() bool { return len(e.rec.StartedAfter(startedAt)) == 1 })
			if took := e.rec.StartedAfter(startedAt)[0].Start.Sub(startedAt); took > slack {
				t.Fatalf("high took %v to take the lock, want its first attempt", took)
			}
			waitFor(t, foreignBound, "low steps down", func() bool { return strings.Join(e.rec.Leaders(), ",") == "high" })
			for _, o := range e.rec.Overlaps() {
				if o.Length > tc.bound {
					t.Errorf("overlap longer than %v: %v", tc.bound, o)
				}
				addFigure("steal across electors: overlap, "+tc.name, o.Length)
			}
		})
	}
}

func istioOpts(key string) memberOpts {
	o := prioritized(rl.LeasesResourceLock, key)
	o.elector = "istio"
	return o
}

// afterWrite wraps a lock and calls then after each successful write,
// passing the lock's key, resourceVersion and watch on.
type afterWrite struct {
	rl.Keyed
	then func(rl.LeaderElectionRecord)
}

func (l *afterWrite) Update(ctx context.Context, r rl.LeaderElectionRecord) error {
	if err := l.Keyed.Update(ctx, r); err != nil {
		return err
	}
	l.then(r)
	return nil
}

func (l *afterWrite) ResourceVersion() string { return l.Keyed.(rl.Versioned).ResourceVersion() }

func (l *afterWrite) Watch(ctx context.Context) (watch.Interface, error) {
	return l.Keyed.(rl.Watcher).Watch(ctx)
}

func (l *afterWrite) Apply(ev watch.Event) (*rl.LeaderElectionRecord, []byte, error) {
	return l.Keyed.(rl.Watcher).Apply(ev)
}

// receiveWithin waits for ch for at most limit.
func receiveWithin[T any](t *testing.T, ch <-chan T, limit time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(limit):
		t.Fatalf("%s: not within %v", what, limit)
		var zero T
		return zero
	}
}
