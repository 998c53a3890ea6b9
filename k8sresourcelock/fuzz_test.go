package k8sresourcelock

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzAnnotationRecord feeds arbitrary annotation values to the decoder that
// ConfigMap and Endpoints locks share. Whatever it is given, it must not
// panic, must hand back the exact bytes, and must either decode a record that
// survives a write and a read unchanged or report ErrInvalidRecord.
func FuzzAnnotationRecord(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `{not json`, `"string"`, `{"holderIdentity":5}`,
		`{"holderIdentity":"a","holderKey":"k","leaseDurationSeconds":15,"acquireTime":"2026-11-27T10:00:00Z","renewTime":"2026-11-27T10:00:00Z","leaderTransitions":1}`,
		`{"leaseDurationSeconds":-1}`, `{"leaseDurationSeconds":99999999999999999999}`,
		`{"acquireTime":"yesterday"}`, `{"holderIdentity":"\u0000"}`, `{"strategy":"OldestEmulationVersion","preferredHolder":"b"}`,
	} {
		f.Add(seed)
	}
	store := (&ConfigMapLock{ConfigMapMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}).store()
	f.Fuzz(func(t *testing.T, annotation string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Annotations: map[string]string{LeaderElectionRecordAnnotationKey: annotation},
		}}
		rec, raw, err := store.decode(cm)
		if !bytes.Equal(raw, []byte(annotation)) {
			t.Fatalf("raw = %q, want the annotation %q", raw, annotation)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) || rec != nil {
				t.Fatalf("decode(%q) = %v, %v; want only an ErrInvalidRecord", annotation, rec, err)
			}
			return
		}
		if err := store.encode(cm, rec); err != nil {
			t.Fatalf("encode of a decoded record: %v", err)
		}
		again, _, err := store.decode(cm)
		if err != nil {
			t.Fatalf("decode after encode: %v", err)
		}
		first, _ := json.Marshal(rec)
		second, _ := json.Marshal(again)
		if !bytes.Equal(first, second) {
			t.Fatalf("record changed in a write and read: %s -> %s", first, second)
		}
	})
}

// FuzzLeaseRecord converts Leases with arbitrary spec values to records and
// back: no panic, and what a record says survives into the spec.
func FuzzLeaseRecord(f *testing.F) {
	f.Add("a", "k", int32(15), int32(3), true)
	f.Add("", "", int32(0), int32(0), false)
	f.Add("x", "", int32(-7), int32(-1), true)
	f.Fuzz(func(t *testing.T, holder, key string, duration, transitions int32, setFields bool) {
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{LeaseHolderKey: key}}}
		if setFields {
			lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, LeaseTransitions: &transitions}
		}
		rec := LeaseToLeaderElectionRecord(lease)
		spec := LeaderElectionRecordToLeaseSpec(rec)
		if *spec.HolderIdentity != rec.HolderIdentity || int(*spec.LeaseDurationSeconds) != rec.LeaseDurationSeconds ||
			int(*spec.LeaseTransitions) != rec.LeaderTransitions || rec.HolderKey != key {
			t.Fatalf("record %+v does not match spec %+v", rec, spec)
		}
	})
}
