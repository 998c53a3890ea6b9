package k8sleaderelection

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// leadingElector returns an elector that has just taken the lock.
func leadingElector(t *testing.T, cs clientset, kind string) *LeaderElector {
	t.Helper()
	le := newTestElector(t, testConfig(newTestLock(t, cs, kind, "us", "stable")), clocktesting.NewFakeClock(t0))
	if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
		t.Fatalf("acquire: %v %v", v, err)
	}
	le.startLeading(t0)
	return le
}

func TestRelease(t *testing.T) {
	for _, fk := range fakes {
		for _, kind := range lockKinds {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				cs := fk.new()
				le := leadingElector(t, cs, kind)
				if !le.release(logger) {
					t.Fatal("release failed")
				}
				rec := readRecord(t, cs, kind)
				if rec.HolderIdentity != "" || rec.HolderKey != "" || rec.LeaseDurationSeconds != 1 {
					t.Fatalf("record after release: %+v", rec)
				}
				if le.GetLeader() != "" {
					t.Fatalf("GetLeader after release = %q", le.GetLeader())
				}
			})
		}
	}
}

// TestReleaseRetriesConflicts: each conflict is read through again, for as
// long as RenewDeadline allows.
func TestReleaseRetriesConflicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		le := newTestElector(t, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", "")), nil)
		if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
			t.Fatalf("acquire: %v %v", v, err)
		}
		left := conflicts(cs, 6)
		if !le.release(logger) || *left != 0 {
			t.Fatalf("release through six conflicts failed (%d left)", *left)
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
			t.Fatalf("holder after release = %q", rec.HolderIdentity)
		}
	})
}

func TestReleaseNeverOverwritesANewHolder(t *testing.T) {
	for _, fk := range fakes {
		t.Run(fk.name, func(t *testing.T) {
			cs := fk.new()
			le := leadingElector(t, cs, rl.LeasesResourceLock)
			writeRecord(t, cs, rl.LeasesResourceLock, otherHolds("canary", 1))
			cs.ClearActions()
			if !le.release(logger) {
				t.Fatal("release reported failure for a lock that is no longer ours")
			}
			if n := count(cs, "update", ""); n != 0 {
				t.Fatalf("release wrote %d times to a lock held by another", n)
			}
			if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "other" {
				t.Fatalf("holder after release = %q, want other", rec.HolderIdentity)
			}
		})
	}
}

func TestReleaseGivesUpAfterRenewDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		le := newTestElector(t, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "us", "")), nil)
		if v, err := le.tryAcquireOrRenew(context.Background(), false); err != nil || !v.writes() {
			t.Fatalf("acquire: %v %v", v, err)
		}
		conflicts(cs, 1<<30)
		start := time.Now()
		if le.release(logger) {
			t.Fatal("release succeeded against endless conflicts")
		}
		if took := time.Since(start); took > renewDeadline {
			t.Fatalf("release took %v, want at most renewDeadline (%v)", took, renewDeadline)
		}
	})
}

// TestReleaseReportsFailures: a write or read that fails for another reason
// than a conflict is reported, not retried and not taken for success.
func TestReleaseReportsFailures(t *testing.T) {
	for _, verb := range []string{"get", "update"} {
		t.Run(verb, func(t *testing.T) {
			cs := fakekube.New()
			le := leadingElector(t, cs, rl.LeasesResourceLock)
			failNext(cs, verb, 1, errors.New("connection reset"))
			if le.release(logger) {
				t.Fatalf("release reported success though its %s failed", verb)
			}
			if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "us" {
				t.Fatalf("holder = %q, want us: nothing was released", rec.HolderIdentity)
			}
		})
	}
}

// TestReleaseOfAGoneLock: a lock someone deleted has nothing to release.
func TestReleaseOfAGoneLock(t *testing.T) {
	cs := fakekube.New()
	le := leadingElector(t, cs, rl.LeasesResourceLock)
	if err := deleteLock(cs, rl.LeasesResourceLock); err != nil {
		t.Fatal(err)
	}
	if !le.release(logger) {
		t.Fatal("release of a deleted lock failed")
	}
}

// TestReleaseOfMultiLockWithoutItsLease: the Lease half of a MultiLock was
// deleted while we led; release still clears the half that names us.
func TestReleaseOfMultiLockWithoutItsLease(t *testing.T) {
	cs := fakekube.New()
	le := leadingElector(t, cs, rl.ConfigMapsLeasesResourceLock)
	if err := cs.CoordinationV1().Leases(testNamespace).Delete(context.Background(), testLockName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !le.release(logger) {
		t.Fatal("release failed")
	}
	if rec := readRecord(t, cs, rl.ConfigMapsResourceLock); rec.HolderIdentity != "" || rec.LeaseDurationSeconds != 1 {
		t.Fatalf("ConfigMap after release: %+v", rec)
	}
}

// TestReleaseWhenGetReturnsNothing: a custom lock whose Get returns neither
// a record nor an error makes release fail with a log line, not a panic,
// also when Run releases on its way out.
func TestReleaseWhenGetReturnsNothing(t *testing.T) {
	le := leadingElector(t, fakekube.New(), rl.LeasesResourceLock)
	le.config.Lock = nothingLock{le.config.Lock}
	if le.release(logger) {
		t.Fatal("release reported success though Get returned nothing")
	}
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var empty atomic.Bool
		inner := newTestLock(t, cs, rl.LeasesResourceLock, "us", "")
		lock := &emptyAfter{Interface: inner, empty: &empty}
		lec := testConfig(lock)
		lec.ReleaseOnCancel = true
		ctx, cancel := context.WithCancel(t.Context())
		c := runCandidate(t, ctx, lec, nil)
		c.leading(t)
		empty.Store(true)
		cancel()
		c.finished(t)
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "us" {
			t.Fatalf("holder = %q; nothing can have been released", rec.HolderIdentity)
		}
	})
}

// emptyAfter is a lock whose Get returns (nil, nil, nil) once *empty is set.
type emptyAfter struct {
	rl.Interface
	empty *atomic.Bool
}

// Key passes the lock's key on, so that the elector competes with it.
func (l *emptyAfter) Key() string { return lockKey(l.Interface) }

func (l *emptyAfter) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	if l.empty.Load() {
		return nil, nil, nil
	}
	return l.Interface.Get(ctx)
}

// TestLeadingContextEndsBeforeRelease: a leader that stops on its own (here
// its renewals keep failing until RenewDeadline) has told the work it guards
// to stop before it releases the lock to anyone else.
func TestLeadingContextEndsBeforeRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		var failing, released, releasedWhileLeading atomic.Bool
		leadCtx := make(chan context.Context, 1)
		lock := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "us", ""),
			beforeWrite: func(_ context.Context, r rl.LeaderElectionRecord) error {
				if r.HolderIdentity == "" {
					ctx := <-leadCtx
					released.Store(true)
					releasedWhileLeading.Store(ctx.Err() == nil)
					return nil
				}
				if failing.Load() {
					return errors.New("renewal refused")
				}
				return nil
			}}
		lec := testConfig(lock)
		lec.ReleaseOnCancel = true
		c := runCandidate(t, t.Context(), lec, nil)
		leadCtx <- c.leading(t)
		failing.Store(true)
		c.finished(t)
		if !released.Load() || releasedWhileLeading.Load() {
			t.Fatalf("released %v, while the leading context was still live %v", released.Load(), releasedWhileLeading.Load())
		}
		if rec := readRecord(t, cs, rl.LeasesResourceLock); rec.HolderIdentity != "" {
			t.Fatalf("holder after the leader stopped = %q, want released", rec.HolderIdentity)
		}
	})
}

// TestReleaseAfterALostTermWaitsForTheWork: a leader whose renewals failed
// until its RenewDeadline ran out (a write outage), while the lock still
// names it, releases the lock (ReleaseOnCancel) only once its work has
// returned: released at once, a watching follower would take it and lead
// while the old work still winds down. Without ReleaseOnCancel the follower
// waits out the lease, by which time the work has stopped.
func TestReleaseAfterALostTermWaitsForTheWork(t *testing.T) {
	for _, release := range []bool{false, true} {
		name := "withoutRelease"
		if release {
			name = "ReleaseOnCancel"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				f := newFleet()
				var failing atomic.Bool
				lockA := &hookedLock{Interface: newTestLock(t, cs, rl.LeasesResourceLock, "a", ""),
					beforeWrite: func(context.Context, rl.LeaderElectionRecord) error {
						if failing.Load() {
							return errors.New("etcdserver: request timed out")
						}
						return nil
					}}
				lecA := testConfig(lockA)
				lecA.ReleaseOnCancel = release
				const windDown = 3 * time.Second // well within StopTimeout (RenewDeadline)
				a := startCandidate(t, ctx, lecA, f, windDown)
				a.leading(t)
				b := startCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "")), f, 0)

				// a renews at 2s and 4s; its writes then fail until 13s, so
				// that its renewals at 6, 8, 10 and 12s fail and it stops at
				// 14s, its RenewDeadline after the renewal at 4s.
				time.Sleep(2*retryPeriod + retryPeriod/4)
				failing.Store(true)
				time.Sleep(renewDeadline - retryPeriod/2)
				failing.Store(false)
				a.finished(t)
				select {
				case <-b.started:
				case <-time.After(patience):
					t.Fatalf("b never led")
				}
				time.Sleep(windDown + time.Second) // a's work has returned by now
				cancel()
				b.finished(t)
				t.Logf("history %q", f.history())
				f.check(t)
			})
		})
	}
}
