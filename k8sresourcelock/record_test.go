package k8sresourcelock

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	upstream "k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fakekube"
)

// TestWireNames pins the names other libraries read and write. They are the
// compatibility contract, so the test spells them out rather than using the
// constants.
func TestWireNames(t *testing.T) {
	for got, want := range map[string]string{
		LeaderElectionRecordAnnotationKey: "control-plane.alpha.kubernetes.io/leader",
		LeaseHolderKey:                    "leader.istio.io/holder-key",
		UnknownLeader:                     "leaderelection.k8s.io/unknown",
		EndpointsResourceLock:             "endpoints",
		ConfigMapsResourceLock:            "configmaps",
		LeasesResourceLock:                "leases",
		EndpointsLeasesResourceLock:       "endpointsleases",
		ConfigMapsLeasesResourceLock:      "configmapsleases",
	} {
		if got != want {
			t.Errorf("wire name %q, want %q", got, want)
		}
	}
}

// TestWrittenObjectsCarryTheWireFormat reads the objects our locks write the
// way another library would: by the literal annotation keys and JSON field
// names.
func TestWrittenObjectsCarryTheWireFormat(t *testing.T) {
	ctx := context.Background()
	cs := fakekube.New()
	renewed := time.Date(2026, 11, 27, 10, 0, 5, 123456000, time.UTC)
	rec := record("a", "stable", 7)
	rec.RenewTime = metav1.NewTime(renewed)
	for _, kind := range []string{ConfigMapsResourceLock, EndpointsResourceLock, LeasesResourceLock} {
		if err := newLock(t, cs, kind, "a", "stable").Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}

	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for what, annotation := range map[string]string{
		"configmap": cm.Annotations["control-plane.alpha.kubernetes.io/leader"],
		"endpoints": ep.Annotations["control-plane.alpha.kubernetes.io/leader"],
	} {
		var fields map[string]any
		if err := json.Unmarshal([]byte(annotation), &fields); err != nil {
			t.Fatalf("%s annotation %q: %v", what, annotation, err)
		}
		for key, want := range map[string]any{
			"holderIdentity": "a", "holderKey": "stable", "leaseDurationSeconds": 15.0,
			"leaderTransitions": 7.0, "renewTime": "2026-11-27T10:00:05.123456Z",
			"acquireTime": "2026-11-27T10:00:00.000000Z", "strategy": "", "preferredHolder": "",
		} {
			if fields[key] != want {
				t.Errorf("%s annotation field %q = %v, want %v (all: %s)", what, key, fields[key], want, annotation)
			}
		}
		// client-go's own record type reads our finer times to the same instant.
		var theirs upstream.LeaderElectionRecord
		if err := json.Unmarshal([]byte(annotation), &theirs); err != nil {
			t.Fatalf("client-go cannot decode the %s record: %v", what, err)
		}
		if theirs.HolderIdentity != "a" || !theirs.RenewTime.Time.Equal(renewed) || theirs.LeaderTransitions != 7 {
			t.Errorf("client-go reads the %s record as %+v", what, theirs)
		}
	}

	lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := lease.Annotations["leader.istio.io/holder-key"]; got != "stable" {
		t.Errorf("lease key annotation = %q, want stable", got)
	}
	if *lease.Spec.HolderIdentity != "a" || *lease.Spec.LeaseDurationSeconds != 15 || *lease.Spec.LeaseTransitions != 7 ||
		!lease.Spec.RenewTime.Time.Equal(renewed) {
		t.Errorf("lease spec = %+v", lease.Spec)
	}
}

// TestRenewalsWithinASecondEncodeApart: our records carry microseconds, so
// two renewals within one second differ in their bytes, for every lock kind:
// an elector on a clientset without resourceVersions still sees both.
func TestRenewalsWithinASecondEncodeApart(t *testing.T) {
	for _, kind := range lockKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cs := fakekube.New()
			lock := newLock(t, cs, kind, "a", "")
			rec := record("a", "", 0)
			if err := lock.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			reader := newLock(t, cs, kind, "b", "")
			_, before, err := reader.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rec.RenewTime = metav1.NewTime(rec.RenewTime.Add(400 * time.Millisecond))
			if err := lock.Update(ctx, rec); err != nil {
				t.Fatal(err)
			}
			_, after, err := reader.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(before) == string(after) {
				t.Fatalf("a renewal 400ms later encodes the same: %s", after)
			}
		})
	}
}

// TestHandoffWireFormat pins the handoff annotations, their keys and their
// JSON field names, as literals: a renamed key or field would make electors
// of two versions miss each other's offers and requests, and every
// preemption between them would become a steal.
func TestHandoffWireFormat(t *testing.T) {
	if HandoffAnnotationKey != "k8sleaderelection.github.io/handoff" {
		t.Errorf("HandoffAnnotationKey = %q", HandoffAnnotationKey)
	}
	if HandoffRequestAnnotationKey != "k8sleaderelection.github.io/handoff-request" {
		t.Errorf("HandoffRequestAnnotationKey = %q", HandoffRequestAnnotationKey)
	}
	ctx := context.Background()
	cs := fakekube.New()
	rec := record("a", "canary", 7)
	rec.Handoff = HandoffOffer{Holder: "a", WithinSeconds: 22}
	rec.HandoffRequest = HandoffRequest{To: "a", Term: 7, HolderIdentity: "b", HolderKey: "stable", LeaseDurationSeconds: 15, OffersWithinSeconds: 30}
	for _, kind := range []string{ConfigMapsResourceLock, EndpointsResourceLock, LeasesResourceLock} {
		if err := newLock(t, cs, kind, "a", "canary").Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	annotations := map[string]map[string]string{}
	if cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		annotations["configmap"] = cm.Annotations
	} else {
		t.Fatal(err)
	}
	if ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		annotations["endpoints"] = ep.Annotations
	} else {
		t.Fatal(err)
	}
	if lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		annotations["lease"] = lease.Annotations
	} else {
		t.Fatal(err)
	}
	for what, got := range annotations {
		for key, want := range map[string]string{
			"k8sleaderelection.github.io/handoff":         `{"holder":"a","withinSeconds":22}`,
			"k8sleaderelection.github.io/handoff-request": `{"to":"a","term":7,"holderIdentity":"b","holderKey":"stable","leaseDurationSeconds":15,"offersWithinSeconds":30}`,
		} {
			if got[key] != want {
				t.Errorf("%s annotation %q = %q, want %q", what, key, got[key], want)
			}
		}
	}
}

// TestStepDownWireFormat: every lock kind keeps an operator's step-down
// request in one annotation, with the names kubectl election writes, reads
// it back, and drops the annotation once a record carries none. A MultiLock
// reads it from the Lease when an operator asked there alone.
func TestStepDownWireFormat(t *testing.T) {
	if StepDownAnnotationKey != "k8sleaderelection.github.io/step-down" {
		t.Errorf("StepDownAnnotationKey = %q", StepDownAnnotationKey)
	}
	ctx := context.Background()
	request := StepDownRequest{Holder: "a", Term: 7, To: "b", ForSeconds: 300,
		RequestedAt: "2026-12-06T08:00:00Z", ExpiresAt: "2026-12-06T08:01:00Z"}
	const wire = `{"holder":"a","term":7,"to":"b","forSeconds":300,"requestedAt":"2026-12-06T08:00:00Z","expiresAt":"2026-12-06T08:01:00Z"}`
	for _, kind := range []string{ConfigMapsResourceLock, EndpointsResourceLock, LeasesResourceLock} {
		t.Run(kind, func(t *testing.T) {
			cs := fakekube.New()
			lock := newLock(t, cs, kind, "a", "canary")
			rec := record("a", "canary", 7)
			rec.StepDown = request
			if err := lock.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			obj, err := cs.Tracker().Get(groupVersionResource(kind), ns, name)
			if err != nil {
				t.Fatal(err)
			}
			meta, _ := metaOf(obj)
			if got := meta.GetAnnotations()[StepDownAnnotationKey]; got != wire {
				t.Errorf("annotation %q = %q, want %q", StepDownAnnotationKey, got, wire)
			}
			got, _, err := newLock(t, cs, kind, "x", "").Get(ctx)
			if err != nil || got.StepDown != request {
				t.Fatalf("Get = %+v, %v; want the step-down request %+v", got, err, request)
			}
			rec.StepDown = StepDownRequest{}
			if err := lock.Update(ctx, rec); err != nil {
				t.Fatal(err)
			}
			obj, _ = cs.Tracker().Get(groupVersionResource(kind), ns, name)
			meta, _ = metaOf(obj)
			if v, ok := meta.GetAnnotations()[StepDownAnnotationKey]; ok {
				t.Errorf("a record without a step-down request left annotation %q = %q", StepDownAnnotationKey, v)
			}
		})
	}
	t.Run("multilock", func(t *testing.T) {
		cs := fakekube.New()
		primary := newLock(t, cs, ConfigMapsResourceLock, "a", "canary")
		secondary := newLock(t, cs, LeasesResourceLock, "a", "canary")
		rec := record("a", "canary", 7)
		if err := primary.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		rec.StepDown = request
		if err := secondary.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		ml := &MultiLock{Primary: newLock(t, cs, ConfigMapsResourceLock, "x", ""), Secondary: newLock(t, cs, LeasesResourceLock, "x", "")}
		got, _, err := ml.Get(ctx)
		if err != nil || got.StepDown != request {
			t.Fatalf("MultiLock Get = %+v, %v; want the Lease's step-down request %+v", got, err, request)
		}
	})
}
