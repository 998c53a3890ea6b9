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
