package k8sleaderelection

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// TestAcquireRetriesAreJittered: attempts against a held lock are spaced by
// RetryPeriod plus a random share of up to JitterFactor*RetryPeriod.
func TestAcquireRetriesAreJittered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		holder := otherHolds("", 0)
		writeRecord(t, cs, rl.LeasesResourceLock, holder)
		var mu sync.Mutex
		var reads []time.Time
		lock := &hangingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""), reads: func() {
			mu.Lock()
			reads = append(reads, time.Now())
			mu.Unlock()
		}}
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, testConfig(lock))
		for range 40 { // the holder keeps renewing, so we keep trying
			time.Sleep(retryPeriod)
			holder.RenewTime = metav1.NewTime(time.Now())
			writeRecord(t, cs, rl.LeasesResourceLock, holder)
		}
		cancel()
		<-c.done
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

// TestRunOrDieWiresTheWatchDog: a leader whose renewals deadlock (its
// requests never return, context or not) is reported unhealthy by the
// watchdog RunOrDie was given, once LeaseDuration plus its timeout passed.
func TestRunOrDieWiresTheWatchDog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 5 * time.Second
		cs := fakekube.New()
		lock := &hangingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""), release: make(chan struct{})}
		watchdog := NewLeaderHealthzAdaptor(timeout)
		lec := testConfig(lock)
		lec.WatchDog = watchdog
		leading := make(chan struct{})
		lec.Callbacks.OnStartedLeading = func(context.Context) { close(leading) }
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); RunOrDie(ctx, lec) }()
		<-leading
		lock.stuck.Store(true)
		time.Sleep(leaseDuration + timeout - time.Second)
		if err := watchdog.Check(nil); err != nil {
			t.Fatalf("unhealthy before LeaseDuration+timeout: %v", err)
		}
		time.Sleep(2 * time.Second)
		if err := watchdog.Check(nil); err == nil {
			t.Fatal("a deadlocked leader is reported healthy")
		}
		lock.stuck.Store(false)
		close(lock.release)
		cancel()
		<-done
	})
}

// TestHungRequestsCannotKeepALeaderLeading: requests that never answer
// (until their context ends) must not hold a leader past RenewDeadline.
func TestHungRequestsCannotKeepALeaderLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		lock := &hangingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", "")}
		c := runCandidate(t, t.Context(), testConfig(lock))
		leadCtx := c.leading(t)
		time.Sleep(retryPeriod / 2)
		lock.hang.Store(true)
		hungAt := time.Now()
		<-leadCtx.Done()
		if since := time.Since(hungAt); since > renewDeadline {
			t.Fatalf("led on for %v with hung requests, want at most renewDeadline (%v)", since, renewDeadline)
		}
		lock.hang.Store(false)
		<-c.done
	})
}

// TestHungRequestDoesNotStallAcquiring: one attempt that never answers times
// out, and the next attempt goes ahead.
func TestHungRequestDoesNotStallAcquiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		lock := &hangingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", "")}
		lock.hang.Store(true)
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, testConfig(lock))
		time.Sleep(renewDeadline + time.Millisecond)
		lock.hang.Store(false)
		c.leading(t)
		if waited := time.Since(c.startAt); waited > renewDeadline+maxAcquireWait {
			t.Fatalf("acquired after %v, want within one timed-out attempt and one retry", waited)
		}
		cancel()
		<-c.done
	})
}

// TestAttemptTimeoutIsADeadline: an attempt cut short by its timeout says
// so: its error wraps context.DeadlineExceeded.
func TestAttemptTimeoutIsADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &hangingLock{Interface: newTestLock(t, fakekube.New(), rl.LeasesResourceLock, "us", "")}
		lock.hang.Store(true)
		le := newTestElector(t, testConfig(lock), nil)
		ctx, cancel := le.withTimeout(context.Background(), renewDeadline)
		defer cancel()
		if _, err := le.tryAcquireOrRenew(ctx, false); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want one wrapping context.DeadlineExceeded", err)
		}
	})
}

// TestLeadingContextEndsBeforeRelease: the work a leader guards is told to
// stop before the lock is handed to anyone else.
func TestLeadingContextEndsBeforeRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var leadCtx context.Context
		var releasedWhileLeading, released bool
		lock := &hangingLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", "")}
		lock.writes = func(r rl.LeaderElectionRecord) {
			if r.HolderIdentity == "" {
				released = true
				releasedWhileLeading = leadCtx.Err() == nil
			}
		}
		lec := testConfig(lock)
		lec.ReleaseOnCancel = true
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, lec)
		leadCtx = c.leading(t)
		cancel()
		<-c.done
		if !released || releasedWhileLeading {
			t.Fatalf("released %v, while the leading context was still live %v", released, releasedWhileLeading)
		}
	})
}

// TestLeaderOverwritesACorruptRecord: someone breaks the record by hand while
// we lead; we write ours over it on the next renewal and lead on.
func TestLeaderOverwritesACorruptRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.ConfigMapsResourceLock, "us", "")))
		leadCtx := c.leading(t)
		time.Sleep(2 * retryPeriod)
		before := readRecord(t, cs, rl.ConfigMapsResourceLock)
		cm, err := cs.CoreV1().ConfigMaps(testNamespace).Get(ctx, testLockName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Annotations[rl.LeaderElectionRecordAnnotationKey] = `{"holderIdentity": "us", oops`
		if _, err := cs.CoreV1().ConfigMaps(testNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * retryPeriod)
		if leadCtx.Err() != nil {
			t.Fatal("the leader stepped down over a corrupt record")
		}
		after := readRecord(t, cs, rl.ConfigMapsResourceLock)
		if after.HolderIdentity != "us" || after.LeaderTransitions != before.LeaderTransitions || !after.AcquireTime.Equal(&before.AcquireTime) {
			t.Fatalf("record after the overwrite %+v, before %+v", after, before)
		}
		cancel()
		<-c.done
	})
}

// TestReleaseOfMultiLockWithoutItsLease: the Lease half of a MultiLock was
// deleted while we led; release still clears the half that names us.
func TestReleaseOfMultiLockWithoutItsLease(t *testing.T) {
	cs := fakekube.New()
	le, _ := leadingElector(t, cs, rl.ConfigMapsLeasesResourceLock)
	if err := cs.CoordinationV1().Leases(testNamespace).Delete(context.Background(), testLockName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !le.release(klog.Background()) {
		t.Fatal("release failed")
	}
	if rec := readRecord(t, cs, rl.ConfigMapsResourceLock); rec.HolderIdentity != "" || rec.LeaseDurationSeconds != 1 {
		t.Fatalf("ConfigMap after release: %+v", rec)
	}
}

// TestNotifierDeliversQueuedCallsAfterStop: stop does not wait, but what was
// queued is still delivered, in order.
func TestNotifierDeliversQueuedCallsAfterStop(t *testing.T) {
	var got []string
	gate := make(chan struct{})
	n := startNotifier(func(id string) { <-gate; got = append(got, id) })
	for _, id := range []string{"a", "", "b", "c"} {
		n.notify(id)
	}
	n.stop() // returns although the first call is held at the gate
	close(gate)
	<-n.done
	if want := []string{"a", "", "b", "c"}; !equalStrings(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNewFromKubeconfigBoundsRequests: the lock's client gives up on a
// request after half a renewal.
func TestNewFromKubeconfigBoundsRequests(t *testing.T) {
	lock, err := rl.NewFromKubeconfig(rl.LeasesResourceLock, testNamespace, testLockName,
		rl.ResourceLockConfig{Identity: "us"}, &rest.Config{Host: "https://127.0.0.1:1"}, renewDeadline)
	if err != nil {
		t.Fatal(err)
	}
	client := lock.(*rl.LeaseLock).Client.(*coordinationv1client.CoordinationV1Client)
	if got := client.RESTClient().(*rest.RESTClient).Client.Timeout; got != renewDeadline/2 {
		t.Fatalf("request timeout = %v, want %v", got, renewDeadline/2)
	}
}

// failingUpdates fails the next failures Updates.
type failingUpdates struct {
	rl.Interface
	failures int
}

func (l *failingUpdates) Update(ctx context.Context, r rl.LeaderElectionRecord) error {
	if l.failures > 0 {
		l.failures--
		return errors.New("connection reset")
	}
	return l.Interface.Update(ctx, r)
}

// TestLeaderKeepsItsTermAcrossFailedOverwrites: the record turns
// undecodable and the leader's first write over it fails; the next one still
// carries the leader's own acquire time and transition count.
func TestLeaderKeepsItsTermAcrossFailedOverwrites(t *testing.T) {
	cs := fakekube.New()
	released := otherHolds("", 4)
	released.HolderIdentity = ""
	writeRecord(t, cs, rl.ConfigMapsResourceLock, released)
	lock := &failingUpdates{Interface: newTestLock(t, cs, rl.ConfigMapsResourceLock, "us", "stable")}
	clk := clocktesting.NewFakeClock(time.Now())
	le := newTestElector(t, testConfig(lock), clk)
	if v, err := le.tryAcquireOrRenew(context.Background(), false); v != verdictTakeFree || err != nil {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(clk.Now())
	term := readRecord(t, cs, rl.ConfigMapsResourceLock)

	cm, err := cs.CoreV1().ConfigMaps(testNamespace).Get(context.Background(), testLockName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Annotations[rl.LeaderElectionRecordAnnotationKey] = "{broken"
	if _, err := cs.CoreV1().ConfigMaps(testNamespace).Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(retryPeriod)
	lock.failures = 2 // the fast-path write, then the overwrite
	if v, err := le.tryAcquireOrRenew(context.Background(), true); v != verdictRenew || err == nil {
		t.Fatalf("first overwrite: %v, %v; want a failed renewal", v, err)
	}
	clk.Step(retryPeriod)
	if v, err := le.tryAcquireOrRenew(context.Background(), true); v != verdictRenew || err != nil {
		t.Fatalf("overwrite: %v, %v", v, err)
	}
	got := readRecord(t, cs, rl.ConfigMapsResourceLock)
	if got.HolderIdentity != "us" || got.LeaderTransitions != term.LeaderTransitions || !got.AcquireTime.Equal(&term.AcquireTime) {
		t.Fatalf("record after the overwrite %+v, want our term %+v", got, term)
	}
}
