package k8sresourcelock

import (
	"context"
	"errors"
	"slices"
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

// TestPreparedWatchOpensAsideFromTheLock: each lock kind's PrepareWatch
// notes the state to resume from at once, and what it returns opens the
// watch on another goroutine while the lock is read and written (the race
// detector checks that it touches nothing of the lock), from the state noted
// when it was prepared.
func TestPreparedWatchOpensAsideFromTheLock(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs := fakekube.New()
				lock := newLock(t, cs, kind, "a", "")
				ctx := t.Context()
				if err := lock.Create(ctx, record("a", "", 0)); err != nil {
					t.Fatal(err)
				}
				prepared := lock.(WatchStarter).PrepareWatch()
				noted := strings.Split(lock.(Versioned).ResourceVersion(), ",")
				if prepared == nil {
					t.Fatalf("a %s lock's PrepareWatch returned nil, want a function that opens its watch", kind)
				}
				var versions []string
				cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
					// A shared watch of the namespace watches from its
					// own list; only a watch of one object resumes from
					// the lock's state.
					if opts := a.(k8stesting.WatchActionImpl).ListOptions; opts.FieldSelector != "" {
						versions = append(versions, opts.ResourceVersion)
					}
					return false, nil, nil
				})
				opened := make(chan error, 1)
				go func() {
					w, err := prepared(ctx)
					if err == nil {
						w.Stop()
					}
					opened <- err
				}()
				for i := range 3 {
					if err := lock.Update(ctx, record("a", "", i)); err != nil {
						t.Fatal(err)
					}
				}
				if err := <-opened; err != nil {
					t.Fatalf("prepared watch: %v", err)
				}
				synctest.Wait()
				for _, v := range versions {
					if !slices.Contains(noted, v) {
						t.Fatalf("watches opened from resourceVersions %q, want those noted by PrepareWatch (%q), before the updates", versions, noted)
					}
				}
			})
		})
	}
}

// TestMultiLockOfHalvesThatCannotOpenAsideHasNoPreparedWatch: a MultiLock
// whose halves can be watched only from the lock's goroutine says so with a
// nil PrepareWatch, so that the elector calls Watch instead; one with a
// half that cannot be watched at all says so when its watch opens.
func TestMultiLockOfHalvesThatCannotOpenAsideHasNoPreparedWatch(t *testing.T) {
	cs := fakekube.New()
	lease := newLock(t, cs, LeasesResourceLock, "a", "")
	type watchOnly struct{ Watcher }
	type both struct {
		Interface
		watchOnly
	}
	onlyWatch := &both{lease, watchOnly{lease.(Watcher)}}
	ml := &MultiLock{Primary: onlyWatch, Secondary: lease}
	if ml.PrepareWatch() != nil {
		t.Error("PrepareWatch of a MultiLock with a half that is not a WatchStarter is not nil")
	}
	ml = &MultiLock{Primary: struct{ Interface }{lease}, Secondary: lease}
	if _, err := ml.PrepareWatch()(t.Context()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("prepared watch of a MultiLock with a half that cannot be watched = %v, want ErrUnsupported", err)
	}
}
