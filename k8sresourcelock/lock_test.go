package k8sresourcelock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

const ns, name = "istio-system", "istio-leader"

// lockKinds builds each lock kind that New knows on one clientset.
var lockKinds = []string{
	LeasesResourceLock, ConfigMapsResourceLock, EndpointsResourceLock,
	ConfigMapsLeasesResourceLock, EndpointsLeasesResourceLock,
}

func newLock(t *testing.T, cs *fakekube.Clientset, kind, identity, key string) Interface {
	t.Helper()
	lock, err := New(kind, ns, name, cs.CoreV1(), cs.CoordinationV1(), ResourceLockConfig{Identity: identity, Key: key})
	if err != nil {
		t.Fatalf("New(%q): %v", kind, err)
	}
	return lock
}

func record(holder, key string, transitions int) LeaderElectionRecord {
	now := metav1.NewTime(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	return LeaderElectionRecord{
		HolderIdentity: holder, HolderKey: key, LeaseDurationSeconds: 15,
		AcquireTime: now, RenewTime: now, LeaderTransitions: transitions,
	}
}

func TestLockRoundTrip(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			lock := newLock(t, cs, kind, "a", "stable")

			if _, _, err := lock.Get(ctx); !apierrors.IsNotFound(err) {
				t.Fatalf("Get of an absent lock: got %v, want NotFound", err)
			}
			if err := lock.Create(ctx, record("a", "stable", 0)); err != nil {
				t.Fatalf("Create: %v", err)
			}
			got, raw, err := lock.Get(ctx)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.HolderIdentity != "a" || got.HolderKey != "stable" || got.LeaseDurationSeconds != 15 {
				t.Errorf("Get after Create = %+v, want holder a, key stable, 15s", got)
			}
			if err := lock.Update(ctx, record("a", "", 3)); err != nil {
				t.Fatalf("Update: %v", err)
			}
			got, raw2, err := lock.Get(ctx)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.HolderKey != "" || got.LeaderTransitions != 3 {
				t.Errorf("Get after Update = %+v, want empty key and 3 transitions", got)
			}
			if string(raw) == string(raw2) {
				t.Errorf("raw record did not change after Update: %s", raw)
			}
		})
	}
}

func TestLockUpdateOverStaleCopyConflicts(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			mine, theirs := newLock(t, cs, kind, "a", ""), newLock(t, cs, kind, "b", "")
			if err := mine.Create(ctx, record("a", "", 0)); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, _, err := theirs.Get(ctx); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if err := theirs.Update(ctx, record("b", "", 1)); err != nil {
				t.Fatalf("Update by b: %v", err)
			}
			err := mine.Update(ctx, record("a", "", 0))
			if !apierrors.IsConflict(err) {
				t.Fatalf("Update over a stale copy: got %v, want Conflict", err)
			}
			got, _, _ := mine.Get(ctx)
			if got.HolderIdentity != "b" {
				t.Errorf("holder after the refused update = %q, want b (nothing lost)", got.HolderIdentity)
			}
		})
	}
}

func TestLockUpdateBeforeGetFails(t *testing.T) {
	for _, kind := range []string{LeasesResourceLock, ConfigMapsResourceLock, EndpointsResourceLock} {
		t.Run(kind, func(t *testing.T) {
			lock := newLock(t, fakekube.New(), kind, "a", "")
			err := lock.Update(context.Background(), record("a", "", 0))
			if err == nil || !strings.Contains(err.Error(), "call Get or Create first") || !strings.Contains(err.Error(), ns+"/"+name) {
				t.Fatalf("Update before Get: got %v, want an error naming the lock and asking for Get first", err)
			}
		})
	}
}

func TestLockWithoutClientErrors(t *testing.T) {
	meta := metav1.ObjectMeta{Namespace: ns, Name: name}
	for _, lock := range []Interface{
		&LeaseLock{LeaseMeta: meta}, &ConfigMapLock{ConfigMapMeta: meta}, &EndpointsLock{EndpointsMeta: meta},
	} {
		t.Run(fmt.Sprintf("%T", lock), func(t *testing.T) {
			if _, _, err := lock.Get(context.Background()); err == nil || !strings.Contains(err.Error(), "Client must not be nil") {
				t.Errorf("Get: got %v, want an error naming Client", err)
			}
			if err := lock.Create(context.Background(), record("a", "", 0)); err == nil {
				t.Error("Create without a client succeeded")
			}
		})
	}
}

type recordedEvent struct {
	obj                        runtime.Object
	eventType, reason, message string
}

type eventRecorder struct{ events []recordedEvent }

func (r *eventRecorder) Eventf(obj runtime.Object, eventType, reason, message string, args ...any) {
	r.events = append(r.events, recordedEvent{obj, eventType, reason, fmt.Sprintf(message, args...)})
}

func TestRecordEvent(t *testing.T) {
	wantKind := map[string]string{
		LeasesResourceLock: "Lease", ConfigMapsResourceLock: "ConfigMap", EndpointsResourceLock: "Endpoints",
	}
	for kind, objKind := range wantKind {
		t.Run(kind, func(t *testing.T) {
			rec := &eventRecorder{}
			cs := fakekube.New()
			lock, err := New(kind, ns, name, cs.CoreV1(), cs.CoordinationV1(), ResourceLockConfig{Identity: "a", EventRecorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			// Before any Get or Create: must not dereference a missing object.
			lock.RecordEvent("became leader")
			if err := lock.Create(context.Background(), record("a", "", 0)); err != nil {
				t.Fatal(err)
			}
			lock.RecordEvent("stopped leading")
			if len(rec.events) != 2 {
				t.Fatalf("recorded %d events, want 2", len(rec.events))
			}
			for i, ev := range rec.events {
				m, err := metaOf(ev.obj)
				if err != nil {
					t.Fatal(err)
				}
				if m.GetName() != name || m.GetNamespace() != ns {
					t.Errorf("event %d filed against %s/%s, want %s/%s", i, m.GetNamespace(), m.GetName(), ns, name)
				}
				if got := ev.obj.GetObjectKind().GroupVersionKind().Kind; got != objKind {
					t.Errorf("event %d kind = %q, want %q", i, got, objKind)
				}
				if ev.eventType != corev1.EventTypeNormal || ev.reason != "LeaderElection" {
					t.Errorf("event %d = %s/%s, want Normal/LeaderElection", i, ev.eventType, ev.reason)
				}
			}
			if rec.events[0].message != "a became leader" || rec.events[1].message != "a stopped leading" {
				t.Errorf("messages = %q, %q", rec.events[0].message, rec.events[1].message)
			}
		})
	}
	t.Run("no recorder", func(t *testing.T) {
		for _, kind := range lockKinds {
			newLock(t, fakekube.New(), kind, "a", "").RecordEvent("became leader")
		}
	})
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	switch o := obj.(type) {
	case *coordinationv1.Lease:
		return o, nil
	case *corev1.ConfigMap:
		return o, nil
	case *corev1.Endpoints:
		return o, nil
	}
	return nil, fmt.Errorf("unexpected event object %T", obj)
}

func TestAnnotationLockInvalidRecord(t *testing.T) {
	for _, kind := range []string{ConfigMapsResourceLock, EndpointsResourceLock, ConfigMapsLeasesResourceLock} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			annotations := map[string]string{LeaderElectionRecordAnnotationKey: "{not json", "keep": "me"}
			meta := metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}
			cs := fakekube.New(&corev1.ConfigMap{ObjectMeta: meta}, &corev1.Endpoints{ObjectMeta: meta})
			lock := newLock(t, cs, kind, "a", "")

			got, raw, err := lock.Get(ctx)
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("Get: got %v, want ErrInvalidRecord", err)
			}
			if got != nil || !strings.Contains(string(raw), "{not json") {
				t.Errorf("Get = %v, %q; want no record and the raw annotation", got, raw)
			}
			if !strings.Contains(err.Error(), ns+"/"+name) || !strings.Contains(err.Error(), LeaderElectionRecordAnnotationKey) {
				t.Errorf("error %q does not name the lock and the annotation", err)
			}
			// The object was kept: a good record can be written over the bad one.
			if err := lock.Update(ctx, record("a", "", 1)); err != nil {
				t.Fatalf("Update over an invalid record: %v", err)
			}
			if got, _, err := lock.Get(ctx); err != nil || got.HolderIdentity != "a" {
				t.Fatalf("Get after overwrite = %+v, %v", got, err)
			}
			cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if kind != EndpointsResourceLock && cm.Annotations["keep"] != "me" {
				t.Errorf("other annotations were lost: %v", cm.Annotations)
			}
		})
	}
}

func TestAnnotationLockWithoutRecordIsFree(t *testing.T) {
	meta := metav1.ObjectMeta{Namespace: ns, Name: name}
	cs := fakekube.New(&corev1.ConfigMap{ObjectMeta: meta})
	got, raw, err := newLock(t, cs, ConfigMapsResourceLock, "a", "").Get(context.Background())
	if err != nil || got.HolderIdentity != "" || len(raw) != 0 {
		t.Fatalf("Get of a ConfigMap without a record = %+v, %q, %v; want an empty record", got, raw, err)
	}
}

func TestReadsIstioWireFormat(t *testing.T) {
	// A record as Istio's fork writes it, without the upstream-only fields.
	istio := `{"holderIdentity":"istiod-1","holderKey":"default","leaseDurationSeconds":30,` +
		`"acquireTime":"2026-11-27T10:00:00Z","renewTime":"2026-11-27T10:00:05Z","leaderTransitions":4}`
	meta := metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{LeaderElectionRecordAnnotationKey: istio}}
	cs := fakekube.New(&corev1.ConfigMap{ObjectMeta: meta})
	got, _, err := newLock(t, cs, ConfigMapsResourceLock, "a", "").Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := LeaderElectionRecord{
		HolderIdentity: "istiod-1", HolderKey: "default", LeaseDurationSeconds: 30, LeaderTransitions: 4,
		AcquireTime: metav1.NewTime(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)),
		RenewTime:   metav1.NewTime(time.Date(2026, 11, 27, 10, 0, 5, 0, time.UTC)),
	}
	if !got.AcquireTime.Equal(&want.AcquireTime) || !got.RenewTime.Equal(&want.RenewTime) {
		t.Errorf("times = %v, %v", got.AcquireTime, got.RenewTime)
	}
	got.AcquireTime, got.RenewTime = want.AcquireTime, want.RenewTime
	if *got != want {
		t.Errorf("decoded %+v, want %+v", *got, want)
	}
}

// TestResourceVersionChangesOnEveryWrite: each lock kind reports the
// resourceVersion of what it last read or wrote, so that an elector sees
// every write, even two in one second; none before a read, none after a
// read found the lock gone.
func TestResourceVersionChangesOnEveryWrite(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			lock := newLock(t, cs, kind, "a", "")
			versioned, ok := lock.(Versioned)
			if !ok {
				t.Fatalf("%T does not report its resourceVersion", lock)
			}
			if v := versioned.ResourceVersion(); v != "" {
				t.Fatalf("before any read: %q", v)
			}
			if err := lock.Create(ctx, record("a", "", 0)); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{versioned.ResourceVersion(): true}
			for i := range 3 {
				// The same record each time: only the version tells the writes apart.
				if err := lock.Update(ctx, record("a", "", 0)); err != nil {
					t.Fatal(err)
				}
				v := versioned.ResourceVersion()
				if v == "" || seen[v] {
					t.Fatalf("write %d left resourceVersion %q, seen before: %v", i, v, seen)
				}
				seen[v] = true
			}
			reader := newLock(t, cs, kind, "b", "")
			if _, _, err := reader.Get(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := reader.(Versioned).ResourceVersion(), versioned.ResourceVersion(); got != want {
				t.Fatalf("a reader sees version %q, the writer %q", got, want)
			}
		})
	}
	t.Run("multilock with a half that cannot tell", func(t *testing.T) {
		cs := fakekube.New()
		ml := &MultiLock{
			Primary:   struct{ Interface }{newLock(t, cs, ConfigMapsResourceLock, "a", "")},
			Secondary: newLock(t, cs, LeasesResourceLock, "a", ""),
		}
		if err := ml.Create(context.Background(), record("a", "", 0)); err != nil {
			t.Fatal(err)
		}
		if v := ml.ResourceVersion(); v != "" {
			t.Fatalf("ResourceVersion = %q, want none: the elector must compare the bytes instead", v)
		}
	})
}

// TestGetOfAGoneLockForgetsIt: once a read finds the object gone, there is
// nothing to write over: Update asks for Get or Create, and no version is
// reported.
func TestGetOfAGoneLockForgetsIt(t *testing.T) {
	for _, kind := range []string{LeasesResourceLock, ConfigMapsResourceLock, EndpointsResourceLock} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			lock := newLock(t, cs, kind, "a", "")
			if err := lock.Create(ctx, record("a", "", 0)); err != nil {
				t.Fatal(err)
			}
			for _, resource := range []string{"leases", "configmaps", "endpoints"} {
				_ = cs.Tracker().Delete(groupVersionResource(resource), ns, name)
			}
			if _, _, err := lock.Get(ctx); !apierrors.IsNotFound(err) {
				t.Fatalf("Get = %v, want NotFound", err)
			}
			if v := lock.(Versioned).ResourceVersion(); v != "" {
				t.Errorf("ResourceVersion after the lock is gone = %q", v)
			}
			if err := lock.Update(ctx, record("a", "", 0)); err == nil || !strings.Contains(err.Error(), "call Get or Create first") {
				t.Errorf("Update after the lock is gone = %v", err)
			}
		})
	}
}

// TestUpdateNeverChangesWhatGetReturned: the object a read returned may be
// shared (an informer's cache); a write changes a copy of it, whether the
// write succeeds or fails.
func TestUpdateNeverChangesWhatGetReturned(t *testing.T) {
	for _, kind := range []string{LeasesResourceLock, ConfigMapsResourceLock, EndpointsResourceLock} {
		for _, fail := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/failing %v", kind, fail), func(t *testing.T) {
				ctx := context.Background()
				cs := fakekube.New()
				if err := newLock(t, cs, kind, "x", "").Create(ctx, record("x", "old", 0)); err != nil {
					t.Fatal(err)
				}
				stored, err := cs.Tracker().Get(groupVersionResource(kind), ns, name)
				if err != nil {
					t.Fatal(err)
				}
				shared := stored.DeepCopyObject()
				pristine := shared.DeepCopyObject()
				cs.PrependReactor("get", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, shared, nil
				})
				if fail {
					cs.PrependReactor("update", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
						return true, nil, errors.New("refused")
					})
				}
				mine, err := NewWithLabels(kind, ns, name, cs.CoreV1(), cs.CoordinationV1(),
					ResourceLockConfig{Identity: "a", Key: "new"}, map[string]string{"team": "x"})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := mine.Get(ctx); err != nil {
					t.Fatal(err)
				}
				_ = mine.Update(ctx, record("a", "new", 1))
				if !equality.Semantic.DeepEqual(shared, pristine) {
					t.Fatalf("the object Get returned was changed by Update:\n%+v\nwant\n%+v", shared, pristine)
				}
			})
		}
	}
}

// TestValidate: each lock kind names what it is missing.
func TestValidate(t *testing.T) {
	meta := metav1.ObjectMeta{Namespace: ns, Name: name}
	cs := fakekube.New()
	cases := []struct {
		lock Validator
		want []string
	}{
		{&LeaseLock{LeaseMeta: meta, Client: cs.CoordinationV1()}, nil},
		{&LeaseLock{LeaseMeta: meta}, []string{"lease lock istio-system/istio-leader: Client must not be nil"}},
		{&ConfigMapLock{Client: cs.CoreV1()}, []string{`configmap lock "": namespace must not be empty`, `configmap lock in namespace "": name must not be empty`}},
		{&EndpointsLock{EndpointsMeta: metav1.ObjectMeta{Namespace: ns}, Client: cs.CoreV1()}, []string{`endpoints lock in namespace "istio-system": name must not be empty`}},
		{&MultiLock{Primary: &ConfigMapLock{ConfigMapMeta: meta}, Secondary: &LeaseLock{LeaseMeta: meta, Client: cs.CoordinationV1()}},
			[]string{"multilock Primary: configmap lock istio-system/istio-leader: Client must not be nil"}},
	}
	for _, tc := range cases {
		err := tc.lock.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%T: Validate = %v, want nil", tc.lock, err)
			}
			continue
		}
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%T: Validate = %v, want one line", tc.lock, err)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%T: Validate = %q, does not say %q", tc.lock, err, want)
			}
		}
	}
}

// groupVersionResource names the API resource of a single-object lock kind
// (whose name is its resource's).
func groupVersionResource(resource string) schema.GroupVersionResource {
	if resource == LeasesResourceLock {
		return coordinationv1.SchemeGroupVersion.WithResource(resource)
	}
	return corev1.SchemeGroupVersion.WithResource(resource)
}
