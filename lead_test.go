package k8sleaderelection

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// queuedWatch is a lockWatch whose events are all queued already, as if
// they had arrived while the elector was busy.
func queuedWatch(events ...watch.Event) *lockWatch {
	lw := &lockWatch{w: watch.NewFake(), queue: events, ready: make(chan struct{}, 1), exited: make(chan struct{})}
	close(lw.exited)
	lw.signal()
	return lw
}

// TestLeaderStepsDownOnAForeignStateEvenIfOursFollows: a leader's watch
// delivers another candidate's state and then one naming the leader again
// (its own write, landed over the other's on a clientset that does not
// version objects). The lock changed hands since the leader's last write:
// it steps down, although the latest state names it.
func TestLeaderStepsDownOnAForeignStateEvenIfOursFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fakekube.New()
		lock := newTestLock(t, cs, rl.LeasesResourceLock, "a", "")
		le := newTestElector(t, testConfig(lock), nil)
		if v, err := le.tryAcquireOrRenew(t.Context(), false); v != verdictCreate || err != nil {
			t.Fatalf("acquire: %v %v", v, err)
		}
		le.startLeading(time.Now())
		ours, err := cs.CoordinationV1().Leases(testNamespace).Get(t.Context(), testLockName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		theirs := ours.DeepCopy()
		b := "b"
		theirs.Spec.HolderIdentity, theirs.ResourceVersion = &b, "100"
		again := ours.DeepCopy()
		again.ResourceVersion = "101"
		le.watch = &watcher{lock: lock.(rl.Watcher)}
		le.watch.current = queuedWatch(watch.Event{Type: watch.Modified, Object: theirs}, watch.Event{Type: watch.Modified, Object: again})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if end := le.hold(ctx, nil); !end.lost {
			t.Fatalf("hold ended with %+v; want lost: the lock changed hands since our last write", end)
		}
	})
}

// TestReleaseWaitsForTheWork: a leader told to stop with ReleaseOnCancel
// releases the lock only once OnStartedLeading has returned, renewing it
// meanwhile, so that a successor never starts while the work still runs,
// even when the work takes longer than a lease to stop.
func TestReleaseWaitsForTheWork(t *testing.T) {
	const windDown = 20 * time.Second // longer than the lease (15s)
	for _, fk := range fakes {
		for _, kind := range lockKinds {
			t.Run(fk.name+"/"+kind, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					cs := fk.new()
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					f := newFleet()
					aCtx, stopA := context.WithCancel(ctx)
					lec := testConfig(newTestLock(t, cs, kind, "a", ""))
					lec.ReleaseOnCancel = true
					lec.StopTimeout = time.Minute
					a := startCandidate(t, aCtx, lec, f, windDown)
					a.leading(t)
					b := runCandidate(t, ctx, testConfig(newTestLock(t, cs, kind, "b", "")), f)
					time.Sleep(retryPeriod / 2)
					stopA()
					stoppedAt := time.Now()
					b.leading(t)
					a.finished(t)
					f.check(t)
					if took := time.Since(stoppedAt); took != windDown {
						t.Fatalf("b led %v after a was told to stop, want when a's work returned (%v)", took, windDown)
					}
				})
			})
		}
	}
}

// TestReleaseOfWorkThatNeverStops: a leader whose work does not return
// within StopTimeout does not release the lock while the work may still
// run; the lock expires instead. With a negative StopTimeout it releases at
// once, as client-go's elector does.
func TestReleaseOfWorkThatNeverStops(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stopTimeout time.Duration
		least, most time.Duration // from the stop until b leads
	}{
		// The lease runs from a's last renewal, made within StopTimeout.
		{"waits, then lets it expire", 5 * time.Second, leaseDuration, 5*time.Second + leaseDuration},
		{"does not wait", -1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				aCtx, stopA := context.WithCancel(ctx)
				lec := testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "a", ""))
				lec.ReleaseOnCancel = true
				lec.StopTimeout = tc.stopTimeout
				a := startCandidate(t, aCtx, lec, nil, -1)
				a.leading(t)
				b := runCandidate(t, ctx, testConfig(newTestLock(t, cs, rl.LeasesResourceLock, "b", "")), nil)
				time.Sleep(retryPeriod / 2)
				stopA()
				stoppedAt := time.Now()
				b.leading(t)
				if took := time.Since(stoppedAt); took < tc.least || took > tc.most {
					t.Fatalf("b led %v after a was told to stop, want between %v and %v", took, tc.least, tc.most)
				}
				a.finished(t)
			})
		})
	}
}
