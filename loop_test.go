package k8sleaderelection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// These tests run the real loops inside a synctest bubble: time is virtual,
// advances only when every goroutine of the test is blocked, and so every
// duration measured here is exact and repeatable.

// hang makes a hookedLock's requests wait for their context to end while
// *on is true, as a real client's do when the API server never answers.
func hang(on *atomic.Bool) func(rl.Interface) rl.Interface {
	wait := func(ctx context.Context) error {
		if on.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	return func(lock rl.Interface) rl.Interface {
		return &hookedLock{Interface: lock, beforeGet: wait,
			beforeWrite: func(ctx context.Context, _ rl.LeaderElectionRecord) error { return wait(ctx) }}
	}
}

// cutOff makes a hookedLock's requests fail at once while *on is true, as
// when the candidate's network to the API server is down.
func cutOff(on *atomic.Bool) func(rl.Interface) rl.Interface {
	fail := func(context.Context) error {
		if on.Load() {
			return errors.New("connection refused")
		}
		return nil
	}
	return func(lock rl.Interface) rl.Interface {
		return &hookedLock{Interface: lock, beforeGet: fail,
			beforeWrite: func(ctx context.Context, _ rl.LeaderElectionRecord) error { return fail(ctx) }}
	}
}

// member competes like istiod: whenever its Run returns it runs again,
// until ctx is done. Its tenures go to f.
func member(t *testing.T, ctx context.Context, wg *sync.WaitGroup, lec LeaderElectionConfig, f *fleet) *LeaderElector {
	id := lec.Lock.Identity()
	lec.Callbacks.OnStartedLeading = func(ctx context.Context) {
		f.begin(id)
		<-ctx.Done()
		f.end(id)
	}
	lec.Callbacks.OnStoppedLeading = func() { f.note(id + " stopped") }
	le := newTestElector(t, lec, nil)
	wg.Go(func() {
		for ctx.Err() == nil {
			le.Run(ctx)
		}
	})
	return le
}

// TestAcquireRetriesAreJittered: attempts against a held lock are spaced by
// RetryPeriod plus a random share of up to JitterFactor*RetryPeriod.
func TestAcquireRetriesAreJittered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		holder := otherHolds("", 0)
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		var mu sync.Mutex
		var reads []time.Time
		lock := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""), beforeGet: func(context.Context) error {
			mu.Lock()
			reads = append(reads, time.Now())
			mu.Unlock()
			return nil
		}}
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, testConfig(lock), nil)
		for range 40 { // the holder keeps renewing, so we keep trying
			time.Sleep(retryPeriod)
			holder.RenewTime = metav1.NewTime(time.Now())
			writeRecord(t, cs, rl.LeasesResourceLock, holder)
		}
		cancel()
		c.finished(t)
		mu.Lock()
		defer mu.Unlock()
		distinct := map[time.Duration]bool{}
		for i := 1; i < len(reads); i++ {
			gap := reads[i].Sub(reads[i-1])
			if gap < retryPeriod || gap > maxAcquireWait {
				t.Errorf("attempt %d came %v after the one before, want between %v and %v", i, gap, retryPeriod, maxAcquireWait)
			}
			distinct[gap] = true
		}
		if len(reads) < 10 || len(distinct) < len(reads)/2 {
			t.Fatalf("%d attempts with %d distinct gaps: not jittered", len(reads), len(distinct))
		}
	})
}

// TestHungRequestsCannotKeepALeaderLeading: requests that never answer
// (until their context ends) must not hold a leader past RenewDeadline.
func TestHungRequestsCannotKeepALeaderLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hung atomic.Bool
		lock := hang(&hung)(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", ""))
		c := runCandidate(t, t.Context(), testConfig(lock), nil)
		leadCtx := c.leading(t)
		time.Sleep(retryPeriod / 2)
		hung.Store(true)
		hungAt := time.Now()
		receive(t, leadCtx.Done(), "the leader to stop")
		if since := time.Since(hungAt); since > renewDeadline {
			t.Fatalf("led on for %v with hung requests, want at most renewDeadline (%v)", since, renewDeadline)
		}
		hung.Store(false)
		c.finished(t)
	})
}

// TestHungRequestDoesNotStallAcquiring: one attempt that never answers times
// out, at maxAcquireAttempt, and the next attempt goes ahead.
func TestHungRequestDoesNotStallAcquiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hung atomic.Bool
		hung.Store(true)
		lock := hang(&hung)(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", ""))
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, testConfig(lock), nil)
		time.Sleep(maxAcquireAttempt + time.Millisecond)
		hung.Store(false)
		c.leading(t)
		if waited := time.Since(c.startAt); waited > maxAcquireAttempt+maxAcquireWait {
			t.Fatalf("acquired after %v, want within one timed-out attempt and one retry", waited)
		}
		cancel()
		c.finished(t)
	})
}

// TestSlowAcquireAttemptIsNotCancelled: under a burst (every replica of a
// controller with many elections starting at once) the API server answers
// slowly. An attempt to acquire that takes longer than RenewDeadline is
// waited for, not cancelled and sent again behind the same queue, which
// would only add to the load: the candidate reads once and leads when the
// answer comes, as client-go's elector does.
func TestSlowAcquireAttemptIsNotCancelled(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		const answerAfter = renewDeadline + 2*time.Second
		var gets atomic.Int32
		lock := &hookedLock{Interface: newTestLock(t, fk.new(), rl.LeasesResourceLock, "us", ""),
			beforeGet: func(ctx context.Context) error {
				gets.Add(1)
				select {
				case <-time.After(answerAfter):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := runCandidate(t, ctx, testConfig(lock), nil)
		select {
		case <-c.started:
		case <-time.After(3 * answerAfter):
			t.Fatalf("not leading after %v with reads that take %v: %d reads sent, each cancelled before its answer",
				3*answerAfter, answerAfter, gets.Load())
		}
		if n := gets.Load(); n != 1 {
			t.Errorf("%d reads sent, want 1: the first was waited for", n)
		}
		if took := time.Since(c.startAt); took != answerAfter {
			t.Errorf("led %v after starting, want when the first read answered (%v)", took, answerAfter)
		}
		cancel()
		c.finished(t)
	})
}

// TestSlowReadBeforeAcquiringLeavesTheTermItsRenewDeadline: under a burst
// the read before a candidate's write can take most of RenewDeadline. The
// term's renew deadline runs from when the write that took the lock was
// sent (no other candidate can have seen it earlier), not from when the
// read was: the new leader has RenewDeadline to renew, and does, instead of
// being cut off at once and competing again, which would add to the burst.
func TestSlowReadBeforeAcquiringLeavesTheTermItsRenewDeadline(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		const slowRead = renewDeadline - time.Second
		var reads atomic.Int32
		lock := &hookedLock{Interface: newTestLock(t, fk.new(), rl.LeasesResourceLock, "us", ""),
			beforeGet: func(ctx context.Context) error {
				if reads.Add(1) == 1 {
					time.Sleep(slowRead)
				}
				return ctx.Err()
			}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := runCandidate(t, ctx, testConfig(lock), nil)
		work := c.leading(t)
		time.Sleep(3 * leaseDuration)
		if work.Err() != nil || !c.le.IsLeader() {
			t.Fatalf("the leader stopped leading within 3 leases of acquiring; its read took %v before its write, and its term was counted from the read", slowRead)
		}
		cancel()
		c.finished(t)
	})
}

// lateFirstWrite is a watched lock of "us" on cs whose first write (the one
// that takes the lock) is answered late, after it has been made; every
// later request is answered at once.
func lateFirstWrite(t *testing.T, cs clientset, late time.Duration) rl.Interface {
	var writes atomic.Int32
	return watchedHookedLock{&hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""),
		beforeWrite: func(ctx context.Context, _ rl.LeaderElectionRecord) error {
			if writes.Add(1) == 1 {
				time.Sleep(late)
			}
			return ctx.Err()
		}}}
}

// TestTermTakenByALateAnswerRenewsBeforeItsDeadline: the term runs from
// when the write that took the lock was sent, so a write answered late
// leaves the new leader less than RenewDeadline. It renews at once, while
// it still can, instead of waiting RetryPeriod from the answer, past its
// deadline, and being cut off without having tried (Run would return).
func TestTermTakenByALateAnswerRenewsBeforeItsDeadline(t *testing.T) {
	eachFakeAndMode(t, func(t *testing.T, fk fakeClientset, mode followMode) {
		const late = renewDeadline - retryPeriod + time.Second
		lec := testConfig(lateFirstWrite(t, fk.new(), late))
		mode.apply(&lec)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := runCandidate(t, ctx, lec, nil)
		work := c.leading(t)
		time.Sleep(3 * leaseDuration)
		if work.Err() != nil || !c.le.IsLeader() {
			t.Fatalf("the leader stopped leading within 3 leases; the write that took the lock was answered %v after it was sent, leaving %v to renew, and the API server answered at once after that",
				late, renewDeadline-late)
		}
		cancel()
		c.finished(t)
	})
}

// TestWriteAnsweredAfterItsTermsDeadlineStartsNoWork: a write that took
// the lock but was answered after RenewDeadline (an attempt to acquire may
// wait up to a minute) began a term that is over by then: the candidate
// starts no work in it, and renews the lock before leading,
// instead of starting OnStartedLeading past its deadline and returning from
// Run with the lock still naming it.
func TestWriteAnsweredAfterItsTermsDeadlineStartsNoWork(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		const late = renewDeadline + time.Second
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := runCandidate(t, ctx, testConfig(lateFirstWrite(t, cs, late)), nil)
		var work context.Context
		select {
		case work = <-c.started:
		case <-c.done:
			t.Fatalf("Run returned %v after starting: the write that took the lock was answered %v after it was sent, and the API server answered at once after that",
				time.Since(c.startAt), late)
		case <-time.After(patience):
			t.Fatalf("not leading after %v", patience)
		}
		synctest.Wait()
		if work.Err() != nil {
			t.Fatalf("OnStartedLeading was started %v after the write that took the lock was sent, in a term already over", time.Since(c.startAt))
		}
		time.Sleep(3 * leaseDuration)
		if work.Err() != nil || !c.le.IsLeader() {
			t.Fatal("the leader stopped leading within 3 leases")
		}
		cancel()
		c.finished(t)
	})
}

// TestFollowerPollsWhileItsWatchOpensAndAsksForItOnce: under a burst the
// shared watch of a namespace with many locks opens slowly (its first list
// is long). Meanwhile the follower polls at a jittered RetryPeriod, as one
// that cannot watch does, so that a release written meanwhile is seen
// within a poll; it does not ask for the watch again (which would make the
// shared watch start its list over); and once the watch is open it sends
// nothing more.
func TestFollowerPollsWhileItsWatchOpensAndAsksForItOnce(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		const opens = 3 * retryPeriod
		cs := fk.new()
		holder := otherHolds("", 0)
		holder.LeaseDurationSeconds = 3600
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		lock := &countingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""),
			beforeWatch: func(ctx context.Context) error {
				select {
				case <-time.After(opens):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := runCandidate(t, ctx, testConfig(lock), nil)
		time.Sleep(opens - time.Millisecond)
		// A read at the start, then one every jittered RetryPeriod.
		minReads, maxReads := 1+int32(opens/maxAcquireWait), 1+int32(opens/retryPeriod)
		if gets, writes, watches := lock.requests(); gets < minReads || gets > maxReads || writes != 0 || watches != 1 {
			t.Fatalf("%d reads, %d writes and %d watch requests while a watch took %v to open; want %d to %d, 0 and 1",
				gets, writes, watches, opens, minReads, maxReads)
		}
		gets, _, _ := lock.requests()
		time.Sleep(10 * time.Minute)
		if after, writes, watches := lock.requests(); after != gets || writes != 0 || watches != 1 {
			t.Fatalf("%d reads, %d writes and %d watch requests in ten minutes after the watch opened; want 0, 0 and 1",
				after-gets, writes, watches)
		}
		cancel()
		c.finished(t)
	})
}

// TestAttemptTimeoutIsADeadline: an attempt cut short by its timeout says
// so: its error wraps context.DeadlineExceeded.
func TestAttemptTimeoutIsADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hung atomic.Bool
		hung.Store(true)
		lock := hang(&hung)(newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", ""))
		le := newTestElector(t, testConfig(lock), nil)
		ctx, cancel := le.withTimeout(context.Background(), renewDeadline)
		defer cancel()
		if _, err := le.tryAcquireOrRenew(ctx, false); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want one wrapping context.DeadlineExceeded", err)
		}
	})
}

// TestFailedWritesNeverLead: a candidate whose every create or takeover
// loses a race never starts leading.
func TestFailedWritesNeverLead(t *testing.T) {
	for _, failure := range []error{
		apierrors.NewAlreadyExists(schema.GroupResource{Resource: "leases"}, testLockName),
		apierrors.NewConflict(schema.GroupResource{Resource: "leases"}, testLockName, errors.New("modified")),
	} {
		t.Run(fmt.Sprint(apierrors.ReasonForError(failure)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				writeRecord(t, cs, rl.LeasesResourceLock, released(0))
				lock := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""),
					beforeWrite: func(context.Context, rl.LeaderElectionRecord) error { return failure }}
				ctx, cancel := context.WithCancel(t.Context())
				c := runCandidate(t, ctx, testConfig(lock), nil)
				time.Sleep(5 * leaseDuration)
				if len(c.started) != 0 || c.le.IsLeader() {
					t.Fatal("a candidate whose writes all failed started leading")
				}
				cancel()
				c.finished(t)
			})
		})
	}
}

// TestFailedAttemptsWaitBeforeTheNextOne: a candidate whose attempts to
// take an expired lock fail at once, while its watch runs, tries again at
// the polling pace, not at once and for ever; the request count bounds the
// test, so that a spinning loop fails it within seconds.
func TestFailedAttemptsWaitBeforeTheNextOne(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("", 0))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		lock := &cutOffLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""),
			t: t, hangs: hangingOps{writes: true}, failFast: true, spun: cancel}
		lock.goSilent()
		c := runCandidate(t, ctx, testConfig(lock), nil)
		const watched = 5 * leaseDuration
		time.Sleep(watched)
		if len(c.started) != 0 {
			t.Fatal("a candidate whose writes all failed started leading")
		}
		// The lease ran out after leaseDuration; from then on one
		// read and one write per attempt, at least a RetryPeriod
		// apart, plus the first read and the watch.
		most := 2*int64((watched-leaseDuration)/retryPeriod+1) + 2
		if n := lock.requests.Load(); n > most {
			t.Errorf("%d requests in %v, want at most %d: failed attempts do not wait", n, watched, most)
		}
		cancel()
		c.finished(t)
	})
}

// TestPreemptedLeaderStepsDown is the step-down guarantee when a higher key
// steals the lock (handoffs off): a watching leader steps down the moment
// the steal lands, a polling one on its first renewal after it, at most one
// RetryPeriod later, not after RenewDeadline. It holds on the stock fake
// too, which accepts the old leader's write over the new holder's.
func TestPreemptedLeaderStepsDown(t *testing.T) {
	eachFakeModeAndCase(t, modes, lockKinds, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()

		low := testConfig(newTestLock(t, cs, kind, "a", "canary"))
		low.KeyComparison = outranksAllBut("canary")
		mode.apply(&low)
		a := runCandidate(t, ctx, low, nil)
		aLeading := a.leading(t)
		time.Sleep(retryPeriod / 2) // the steal lands between renewals

		high := testConfig(newTestLock(t, cs, kind, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		high.DisableHandoff = true
		b := runCandidate(t, ctx, high, nil)
		b.leading(t)
		stolenAt := time.Now()
		if stolenAt != b.startAt {
			t.Fatalf("b took %v to preempt, want its first attempt", stolenAt.Sub(b.startAt))
		}

		receive(t, aLeading.Done(), "the preempted leader to step down")
		overlap := time.Since(stolenAt)
		if mode.name == "watch" && overlap != 0 {
			t.Fatalf("a watching leader led on for %v after the steal, want 0", overlap)
		}
		if overlap > retryPeriod {
			t.Fatalf("a led on for %v after the steal, want at most one RetryPeriod (%v)", overlap, retryPeriod)
		}
		a.finished(t)
		receive(t, a.stopped, "OnStoppedLeading")
		time.Sleep(3 * retryPeriod)
		rec := readRecord(t, cs, kind)
		if rec.HolderIdentity != "b" || rec.HolderKey != "stable" || rec.LeaderTransitions != 1 {
			t.Fatalf("record after the steal: %+v; want b, stable, 1 transition", rec)
		}
		if a.le.IsLeader() || !b.le.IsLeader() {
			t.Fatalf("IsLeader: a %v, b %v", a.le.IsLeader(), b.le.IsLeader())
		}
	})
}

// TestPreemptedThenReleasedLeaderStepsDown: a leader is preempted, and the
// preemptor releases the lock before the old leader's next renewal. The old
// leader finds the lock free, but it changed hands since its last write:
// it steps down instead of leading on as if it had never lost the lock.
func TestPreemptedThenReleasedLeaderStepsDown(t *testing.T) {
	eachFakeModeAndCase(t, modes, lockKinds, itself, func(t *testing.T, fk fakeClientset, mode followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		low := testConfig(newTestLock(t, cs, kind, "a", "canary"))
		mode.apply(&low)
		a := runCandidate(t, ctx, low, nil)
		aLeading := a.leading(t)
		time.Sleep(retryPeriod / 4)

		bCtx, stopB := context.WithCancel(ctx)
		high := testConfig(newTestLock(t, cs, kind, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		high.ReleaseOnCancel = true
		high.DisableHandoff = true
		b := runCandidate(t, bCtx, high, nil)
		b.leading(t)
		stolenAt := time.Now()
		time.Sleep(retryPeriod / 4)
		stopB()
		b.finished(t)
		if rec := readRecord(t, cs, kind); rec.HolderIdentity != "" {
			t.Fatalf("b did not release: %+v", rec)
		}
		receive(t, aLeading.Done(), "the preempted leader to step down")
		if overlap := time.Since(stolenAt); overlap > retryPeriod {
			t.Fatalf("a led on for %v after the steal, want at most one RetryPeriod", overlap)
		}
		a.finished(t)
	})
}

// TestLeaderStopsWithinRenewDeadline cuts a leader off from the API: it must
// stop leading no later than RenewDeadline after its last renewal, which is
// before anyone else may take the lock.
func TestLeaderStopsWithinRenewDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		a := runCandidate(t, t.Context(), testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", "")), nil)
		leadCtx := a.leading(t)
		time.Sleep(3*retryPeriod + retryPeriod/2)
		cutAt := time.Now()
		cs.SetOutage(errors.New("connection refused"))
		receive(t, leadCtx.Done(), "the cut-off leader to stop")
		// The last renewal was at most one renewal period (5s; see
		// pace.go) before the cut.
		if since := time.Since(cutAt); since > renewDeadline || since < renewDeadline-corePeriod {
			t.Fatalf("stopped %v after the cut, want between %v and %v", since, renewDeadline-corePeriod, renewDeadline)
		}
		a.finished(t)
	})
}

// TestRewriterNeverMakesTwoLeaders: something keeps rewriting the record with
// garbage while two candidates, which rejoin whenever they lose, compete for
// it. At no period are there ever two leaders. A rewrite faster than the
// lease keeps everyone from leading (nobody can tell it from a live leader);
// a slower one lets a candidate take the lock between rewrites.
func TestRewriterNeverMakesTwoLeaders(t *testing.T) {
	// Faster than a retry, between a retry and a lease, slower than a lease.
	periods := []time.Duration{200 * time.Millisecond, 1500 * time.Millisecond, 5 * time.Second, 20 * time.Second}
	for _, fk := range fakes {
		for _, kind := range []string{rl.ConfigMapsResourceLock, rl.EndpointsLeasesResourceLock} {
			for _, period := range periods {
				t.Run(fmt.Sprintf("%s/%s/every %v", fk.name, kind, period), func(t *testing.T) {
					t.Parallel()
					synctest.Test(t, func(t *testing.T) {
						cs := fk.new()
						ctx, cancel := context.WithCancel(t.Context())
						var wg sync.WaitGroup
						f := newFleet()
						if fk.name == "stock" {
							// Both candidates see the garbage at the same
							// instant and take it a lease later at the same
							// instant; that fake accepts both writes.
							f.raceAllowance = retryPeriod
						}
						member(t, ctx, &wg, testConfig(newTestLock(t, cs, kind, "a", "")), f)
						time.Sleep(retryPeriod)
						member(t, ctx, &wg, testConfig(newTestLock(t, cs, kind, "b", "")), f)
						time.Sleep(retryPeriod)
						wg.Go(func() {
							for i := 0; ctx.Err() == nil; i++ {
								_ = scribble(ctx, cs, kind, fmt.Sprintf("junk-%d", i))
								time.Sleep(period)
							}
						})
						time.Sleep(max(time.Minute, 8*period))
						cancel()
						wg.Wait()
						f.check(t)
						acquisitions, _ := f.count()
						// (On the stock fake a leader's renewal can land over the
						// garbage unseen and win the lock back once more.)
						if period < leaseDuration && acquisitions != 1 && fk.name == "strict" {
							t.Fatalf("%d acquisitions with the record rewritten every %v; want only the first, before the rewrites", acquisitions, period)
						}
						if period > leaseDuration+maxAcquireWait && acquisitions < 3 {
							t.Fatalf("%d acquisitions with the record rewritten every %v; want the lock taken between rewrites", acquisitions, period)
						}
					})
				})
			}
		}
	}
}

// TestSubSecondTimings: with sub-second retry periods a leader renews several
// times within one wall-clock second. Followers must see every renewal, so
// that they never take the lock from a healthy leader, and never from a
// cut-off one before it has stopped.
func TestSubSecondTimings(t *testing.T) {
	timings := []struct{ lease, renew, retry time.Duration }{
		{2 * time.Second, 1500 * time.Millisecond, 400 * time.Millisecond},
		{1 * time.Second, 900 * time.Millisecond, 700 * time.Millisecond},
	}
	// One kind per record layout; TestRenewalsWithinOneSecondAreSeen
	// covers every kind one attempt at a time.
	kinds := []string{rl.LeasesResourceLock, rl.ConfigMapsResourceLock, rl.EndpointsLeasesResourceLock}
	for _, fk := range fakes {
		for _, kind := range kinds {
			for _, tm := range timings {
				name := fmt.Sprintf("%s/%s/%v-%v-%v", fk.name, kind, tm.lease, tm.renew, tm.retry)
				config := func(lock rl.Interface) LeaderElectionConfig {
					lec := testConfig(lock)
					lec.LeaseDuration, lec.RenewDeadline, lec.RetryPeriod = tm.lease, tm.renew, tm.retry
					return lec
				}
				t.Run(name+"/healthy leader", func(t *testing.T) {
					t.Parallel()
					synctest.Test(t, func(t *testing.T) {
						cs := fk.new()
						ctx, cancel := context.WithCancel(t.Context())
						var wg sync.WaitGroup
						f := newFleet()
						for _, id := range []string{"a", "b", "c"} {
							member(t, ctx, &wg, config(newTestLock(t, cs, kind, id, "")), f)
							time.Sleep(tm.retry / 3)
						}
						time.Sleep(time.Minute)
						cancel()
						wg.Wait()
						f.check(t)
						if acquisitions, _ := f.count(); acquisitions != 1 {
							t.Fatalf("%d acquisitions in a minute without a fault; want 1", acquisitions)
						}
					})
				})
				t.Run(name+"/cut-off leader", func(t *testing.T) {
					t.Parallel()
					synctest.Test(t, func(t *testing.T) {
						cs := fk.new()
						ctx, cancel := context.WithCancel(t.Context())
						var wg sync.WaitGroup
						f := newFleet()
						if fk.name == "stock" {
							// b and c see the cut-off leader's lease run out
							// at the same instant and both take the lock:
							// that fake accepts both writes. A migration lock
							// is not watched, so each finds the other's write
							// at its next renewal (the promised exception).
							f.raceAllowance = tm.retry
						}
						var cut atomic.Bool
						leader := member(t, ctx, &wg, config(cutOff(&cut)(newTestLock(t, cs, kind, "a", ""))), f)
						time.Sleep(tm.retry / 3)
						for _, id := range []string{"b", "c"} {
							member(t, ctx, &wg, config(newTestLock(t, cs, kind, id, "")), f)
						}
						for round := range 5 {
							time.Sleep(3*tm.lease + time.Duration(round)*tm.retry/7)
							if leader.IsLeader() {
								cut.Store(true)
							}
							time.Sleep(3 * tm.lease)
							cut.Store(false)
						}
						cancel()
						wg.Wait()
						f.check(t)
						if acquisitions, _ := f.count(); acquisitions < 2 {
							t.Fatalf("%d acquisitions; the cut-off leader was never replaced", acquisitions)
						}
					})
				})
			}
		}
	}
}

// TestManyCandidatesOneLeader: five candidates start at once; one leads and
// keeps leading.
func TestManyCandidatesOneLeader(t *testing.T) {
	eachFakeModeAndCase(t, byDefault, lockKinds, itself, func(t *testing.T, fk fakeClientset, _ followMode, kind string) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		f := newFleet()
		var electors []*LeaderElector
		for _, id := range []string{"a", "b", "c", "d", "e"} {
			electors = append(electors, member(t, ctx, &wg, testConfig(newTestLock(t, cs, kind, id, "")), f))
		}
		time.Sleep(3 * leaseDuration)
		leaders := 0
		for _, le := range electors {
			if le.IsLeader() {
				leaders++
			}
		}
		cancel()
		wg.Wait()
		f.check(t)
		if acquisitions, _ := f.count(); leaders != 1 || acquisitions != 1 {
			t.Fatalf("leaders %d, acquisitions %d; want 1, 1", leaders, acquisitions)
		}
	})
}

func TestThreeKeysInEveryOrderEndWithTheHighest(t *testing.T) {
	orders := [][]string{
		{"old", "canary", "stable"}, {"old", "stable", "canary"}, {"canary", "old", "stable"},
		{"canary", "stable", "old"}, {"stable", "old", "canary"}, {"stable", "canary", "old"},
	}
	for _, order := range orders {
		t.Run(order[0]+"-"+order[1]+"-"+order[2], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				f := newFleet()
				byKey := map[string]*LeaderElector{}
				for _, key := range order {
					lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, key, key))
					lec.KeyComparison = outranksAllBut(key)
					byKey[key] = member(t, ctx, &wg, lec, f)
					time.Sleep(retryPeriod)
				}
				time.Sleep(3 * leaseDuration)
				if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "stable" {
					t.Fatalf("leader = %q, want stable", rec.HolderIdentity)
				}
				for key, le := range byKey {
					if le.IsLeader() != (key == "stable") {
						t.Errorf("%s IsLeader = %v", key, le.IsLeader())
					}
				}
				acquisitions, _ := f.count()
				cancel()
				wg.Wait()
				// Each key leads at most once: a lower key never takes the
				// lock back from a higher one.
				if acquisitions > 3 {
					t.Fatalf("%d acquisitions for three keys: someone took the lock back", acquisitions)
				}
			})
		})
	}
}

// TestMigratingLeaderYieldsToALeaseOnlyPreemptor: mid-migration, a leader on
// a ConfigMap+Lease MultiLock is preempted by a higher-key candidate that
// uses the Lease alone. The old leader steps down on its next renewal instead
// of writing over the Lease; rejoining, it sees the two halves disagree and
// never takes the lock back while the new leader renews the Lease, although
// its KeyComparison claims to outrank everyone.
func TestMigratingLeaderYieldsToALeaseOnlyPreemptor(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		f := newFleet()
		low := testConfig(newTestLock(t, cs, rl.ConfigMapsLeasesResourceLock, "a", "canary"))
		low.KeyComparison = func(string) bool { return true }
		a := member(t, ctx, &wg, low, f)
		time.Sleep(retryPeriod + retryPeriod/2)
		if !a.IsLeader() {
			t.Fatal("a does not lead")
		}

		high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
		high.KeyComparison = outranksAllBut("stable")
		high.DisableHandoff = true // a steal leaves the two halves disagreeing
		b := member(t, ctx, &wg, high, f)
		time.Sleep(retryPeriod)
		if a.IsLeader() || !b.IsLeader() {
			t.Fatalf("one RetryPeriod after the steal: a leads %v, b leads %v", a.IsLeader(), b.IsLeader())
		}
		time.Sleep(5 * leaseDuration)
		if a.IsLeader() || !b.IsLeader() {
			t.Fatalf("after five leases: a leads %v, b leads %v", a.IsLeader(), b.IsLeader())
		}
		cancel()
		wg.Wait()
		if acquisitions, _ := f.count(); acquisitions != 2 {
			t.Fatalf("%d acquisitions, want 2: a, then b for good", acquisitions)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "b" {
			t.Fatalf("Lease holder = %q, want b", rec.HolderIdentity)
		}
	})
}

// TestStockFakeRaceLoserStepsDownOnNextRenewal: on client-go's stock fake,
// which accepts a write over a state the writer never saw, two candidates
// that take a free lock at the same instant both succeed. The one whose
// write was overwritten finds out at its next renewal, which reads first on
// such a clientset, and steps down.
func TestStockFakeRaceLoserStepsDownOnNextRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		writeRecord(t, cs, rl.LeasesResourceLock, released(0))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		bDone := make(chan struct{})
		aLock := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", ""),
			beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
				select {
				case <-bDone:
				default:
					// a has read the free lock; b now reads and takes it too.
					// Polling: a watching b could see a's write and step
					// down before a even starts leading; this is the
					// renewal's catch.
					bConfig := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", ""))
					bConfig.DisableWatch = true
					b := runCandidate(t, ctx, bConfig, f)
					b.leading(t)
					close(bDone)
				}
				return nil
			}}
		a := runCandidate(t, ctx, testConfig(aLock), f)
		a.leading(t)
		// b's next renewal comes one RetryPeriod after it took the lock.
		time.Sleep(retryPeriod + time.Millisecond)
		if _, most := f.count(); most != 2 {
			t.Fatalf("at most %d leaders at once; the race did not happen as staged", most)
		}
		f.mu.Lock()
		leaders := len(f.leading)
		f.mu.Unlock()
		if leaders != 1 {
			t.Fatalf("%d leaders one RetryPeriod after the race; want the overwritten one stepped down", leaders)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "a" || !a.le.IsLeader() {
			t.Fatalf("holder %q, a leads %v; want a, whose write came last", rec.HolderIdentity, a.le.IsLeader())
		}
	})
}

// TestSeededResourceVersionOnStockFake: client-go's stock fake keeps
// whatever resourceVersion an object was seeded with, so it never changes.
// Candidates must see through it: tell states apart by their bytes, and not
// write blindly over a state they take for versioned.
func TestSeededResourceVersionOnStockFake(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fake.NewClientset(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
					Namespace: testNamespace, Name: testLockName, ResourceVersion: "1"}})
				ctx, cancel := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				f := newFleet()
				for _, id := range []string{"a", "b"} {
					lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, id, ""))
					mode.apply(&lec)
					member(t, ctx, &wg, lec, f)
					time.Sleep(retryPeriod / 2)
				}
				time.Sleep(10 * leaseDuration)
				cancel()
				wg.Wait()
				f.check(t)
				if acquisitions, _ := f.count(); acquisitions != 1 {
					t.Fatalf("%d acquisitions without a fault, want 1", acquisitions)
				}
			})
		})
	}
}

// TestMigrationReleasedHalfKeepsTheOtherLease: mid-migration, the last
// MultiLock leader releases both halves (a one-second lease) and a
// Lease-only candidate takes the Lease. A MultiLock candidate sees the
// halves disagree; it must wait out the Lease holder's lease, not the
// released half's second, or it takes the lock from a leader whose renewals
// are merely slow.
func TestMigrationReleasedHalfKeepsTheOtherLease(t *testing.T) {
	for _, kind := range []string{rl.ConfigMapsLeasesResourceLock, rl.EndpointsLeasesResourceLock} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				f := newFleet()
				m1Ctx, stopM1 := context.WithCancel(ctx)
				old := testConfig(newTestLock(t, cs, kind, "m1", ""))
				old.ReleaseOnCancel = true
				m1 := runCandidate(t, m1Ctx, old, f)
				m1.leading(t)
				time.Sleep(retryPeriod / 2)
				stopM1()
				m1.finished(t)
				// The Lease-only leader's writes each take 1.5s: slow, never failing.
				slow := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "l", ""),
					beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
						time.Sleep(1500 * time.Millisecond)
						return nil
					}}
				l := runCandidate(t, ctx, testConfig(slow), f)
				l.leading(t)
				m2 := runCandidate(t, ctx, testConfig(newTestLock(t, cs, kind, "m2", "")), f)
				time.Sleep(time.Minute)
				if m2.le.IsLeader() {
					t.Error("m2 took the lock from l, whose renewals never failed")
				}
				f.check(t)
			})
		})
	}
}

// TestUnreadableRecordWithALongerLease: a holder with a 60s lease renews
// every 30s; a follower with our 15s sees the record turn unreadable once.
// It must not take the lock before the holder's own lease could have run
// out, or it leads beside a live leader.
func TestUnreadableRecordWithALongerLease(t *testing.T) {
	eachFake(t, func(t *testing.T, fk fakeClientset) {
		cs := fk.new()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		long := testConfig(newTestLock(t, cs, rl.ConfigMapsResourceLock, "a", ""))
		long.LeaseDuration, long.RenewDeadline, long.RetryPeriod = 60*time.Second, 40*time.Second, 30*time.Second
		long.DisableWatch = true // learns of the garbage at its next renewal, 30s on
		a := runCandidate(t, ctx, long, f)
		a.leading(t)
		time.Sleep(retryPeriod / 4)
		runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.ConfigMapsResourceLock, "b", "")), f)
		time.Sleep(retryPeriod / 4)
		if err := scribble(ctx, cs, rl.ConfigMapsResourceLock, "{not json"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		f.check(t)
	})
}

// TestWipedLockIsNotTakenAtOnce: a third party deletes the lock, or wipes
// its record to nothing, while a leader holds it. A follower that saw the
// leader's lease running waits that lease out before it takes the lock, so
// that the leader (which steps down on seeing the wipe) is gone first.
func TestWipedLockIsNotTakenAtOnce(t *testing.T) {
	for _, mode := range modes {
		for _, wipe := range []string{"delete", "null", "{}"} {
			t.Run(mode.name+"/"+wipe, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					kind := rl.ConfigMapsResourceLock
					if wipe == "delete" {
						kind = rl.LeasesResourceLock
					}
					cs := fakekube.New()
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					f := newFleet()
					lec := testConfig(newTestLock(t, cs, kind, "a", ""))
					lec.DisableWatch = true // learns of the wipe at its next renewal
					runCandidate(t, ctx, lec, f).leading(t)
					var armed atomic.Bool
					follower := &hookedLock{Interface: newTestLock(t, cs, kind, "b", ""),
						beforeGet: func(ctx context.Context) error {
							if !armed.CompareAndSwap(true, false) {
								return nil
							}
							if wipe == "delete" {
								return deleteLock(cs, kind)
							}
							return scribble(ctx, cs, kind, wipe)
						}}
					lec = testConfig(follower)
					mode.apply(&lec)
					b := runCandidate(t, ctx, lec, f)
					time.Sleep(leaseDuration)
					armed.Store(true)
					b.leading(t)
					f.check(t)
				})
			})
		}
	}
}

// TestStockFakeOverwriteMidRenewal: on client-go's stock fake, a preemption
// that lands between a renewal's read and its write is overwritten by it.
// A watching leader still sees the preemptor's state go by and steps down;
// nobody is left leading beside anyone.
func TestStockFakeOverwriteMidRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFleet()
		var armed atomic.Bool
		stolen := make(chan time.Time, 1)
		aLock := watchedHookedLock{&hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", "canary"),
			beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
				if armed.CompareAndSwap(true, false) {
					high := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "stable"))
					high.KeyComparison = outranksAllBut("stable")
					high.DisableHandoff = true
					runCandidate(t, ctx, high, f).leading(t)
					stolen <- time.Now()
				}
				return nil
			}}}
		low := testConfig(aLock)
		aLeading := runCandidate(t, ctx, low, f).leading(t)
		armed.Store(true)
		stolenAt := receive(t, stolen, "the preemption to be staged")
		receive(t, aLeading.Done(), "the overwriting leader to step down")
		if overlap := time.Since(stolenAt); overlap > retryPeriod {
			t.Fatalf("a led on for %v after its write landed over b's", overlap)
		}
	})
}
