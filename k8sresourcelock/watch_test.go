package k8sresourcelock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

// scriptedWatches makes every watch of cs a fake the test feeds, by
// resource; a namespace-wide Lease watch (a shared watch's) is forbidden, so
// that a Lease lock watches its object alone.
func scriptedWatches(cs *fakekube.Clientset) map[string]*watch.FakeWatcher {
	watchers := map[string]*watch.FakeWatcher{}
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		resource := a.GetResource().Resource
		if resource == "leases" && a.(k8stesting.WatchAction).GetWatchRestrictions().Fields.Empty() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: resource}, "", errors.New("only by name"))
		}
		w := watch.NewFakeWithChanSize(10, false)
		watchers[resource] = w
		return true, w, nil
	})
	return watchers
}

// objectNamed is an object of resource called name, held by holder.
func objectNamed(resource, name, holder string) runtime.Object {
	meta := metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "9",
		Annotations: map[string]string{LeaderElectionRecordAnnotationKey: `{"holderIdentity":"` + holder + `"}`}}
	switch resource {
	case "configmaps":
		return &corev1.ConfigMap{ObjectMeta: meta}
	case "endpoints":
		return &corev1.Endpoints{ObjectMeta: meta}
	}
	return &coordinationv1.Lease{ObjectMeta: meta, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
}

// TestLockWatchDeliversItsObjectAndErrors: each lock kind's watch (each half
// of a MultiLock's) delivers the events of its own object, which Apply
// takes as the lock's state, and every error, so that the elector notices a
// broken watch; events of other objects never arrive. A MultiLock's watch
// ends as soon as either half's does, so that the elector reads and watches
// both again.
func TestLockWatchDeliversItsObjectAndErrors(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				watchers := scriptedWatches(cs)
				lock := newLock(t, cs, kind, "a", "")
				if err := lock.Create(context.Background(), record("a", "", 0)); err != nil {
					t.Fatal(err)
				}
				w, err := lock.(Watcher).Watch(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				defer w.Stop()
				resources := map[string][]string{
					LeasesResourceLock: {"leases"}, ConfigMapsResourceLock: {"configmaps"}, EndpointsResourceLock: {"endpoints"},
					ConfigMapsLeasesResourceLock: {"configmaps", "leases"}, EndpointsLeasesResourceLock: {"endpoints", "leases"},
				}[kind]
				for _, resource := range resources {
					source := watchers[resource]
					if source == nil {
						t.Fatalf("no watch of %s", resource)
					}
					source.Modify(objectNamed(resource, "someone-else", "other"))
					source.Modify(objectNamed(resource, name, "b"))
					ev, ok := next(t, w)
					if !ok {
						t.Fatalf("the watch ended instead of delivering the %s's change", resource)
					}
					if m, _ := metaOf(ev.Object); m == nil || m.GetName() != name {
						t.Fatalf("the watch delivered %v of another object", ev.Type)
					}
					if _, _, err := lock.(Watcher).Apply(ev); err != nil {
						t.Fatalf("Apply of the %s's change: %v", resource, err)
					}
				}
				if got, _, err := lock.(Watcher).Apply(watch.Event{Type: watch.Modified, Object: objectNamed(resources[len(resources)-1], name, "b")}); err != nil || got.HolderIdentity != "b" {
					t.Fatalf("Apply = %+v, %v; want holder b on every half", got, err)
				}
				status := apierrors.NewInternalError(errors.New("etcd is gone")).ErrStatus
				watchers[resources[0]].Error(&status)
				if ev, ok := next(t, w); !ok || ev.Type != watch.Error {
					t.Fatalf("got %v (open %v) after an error on the %s watch, want the error", ev.Type, ok, resources[0])
				}
				watchers[resources[len(resources)-1]].Stop()
				synctest.Wait()
				select {
				case ev, ok := <-w.ResultChan():
					if ok {
						t.Fatalf("got %v after the %s watch ended, want the lock's watch ended", ev.Type, resources[len(resources)-1])
					}
				default:
					t.Fatalf("the lock's watch goes on after its %s watch ended", resources[len(resources)-1])
				}
			})
		})
	}
}

// TestApplyTakesOnlyItsObject: Apply takes a deletion as NotFound and
// forgets the object (the next write must be a Create), and refuses events
// of other objects or of no object, leaving the lock's state as it was.
func TestApplyTakesOnlyItsObject(t *testing.T) {
	for _, kind := range []string{LeasesResourceLock, ConfigMapsResourceLock, EndpointsResourceLock} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			lock := newLock(t, cs, kind, "a", "")
			if err := lock.Create(ctx, record("a", "", 0)); err != nil {
				t.Fatal(err)
			}
			resource := map[string]string{LeasesResourceLock: "leases", ConfigMapsResourceLock: "configmaps", EndpointsResourceLock: "endpoints"}[kind]
			w := lock.(Watcher)
			for _, ev := range []watch.Event{
				{Type: watch.Modified, Object: objectNamed(resource, "someone-else", "x")},
				{Type: watch.Modified, Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}},
				{Type: watch.Bookmark, Object: objectNamed(resource, name, "x")},
				{Type: watch.Modified},
			} {
				if _, _, err := w.Apply(ev); !errors.Is(err, errNotThisLock) {
					t.Errorf("Apply(%v of %T) = %v, want it refused as not this lock's", ev.Type, ev.Object, err)
				}
			}
			if rv := lock.(Versioned).ResourceVersion(); rv == "" {
				t.Fatal("a refused event made the lock forget its object")
			}
			if _, _, err := w.Apply(watch.Event{Type: watch.Deleted, Object: objectNamed(resource, name, "a")}); !apierrors.IsNotFound(err) {
				t.Fatalf("Apply of the deletion = %v, want NotFound", err)
			}
			if err := lock.Update(ctx, record("a", "", 1)); err == nil || !strings.Contains(err.Error(), "not initialized") {
				t.Fatalf("Update after a deletion = %v, want it refused: nothing is left to write over", err)
			}
		})
	}
}

// next waits a moment for an event of w.
func next(t *testing.T, w watch.Interface) (watch.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		return ev, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return watch.Event{}, false
	}
}
