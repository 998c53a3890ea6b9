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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

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
