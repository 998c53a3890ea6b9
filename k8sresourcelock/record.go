package k8sresourcelock

import (
	"encoding/json"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wireRecord is LeaderElectionRecord as this package writes it: the same
// fields under the same names, with times to the microsecond instead of the
// second. Every reader of the record (client-go's, Istio's fork, ours) parses
// RFC 3339 times with or without a fraction, so the finer times are read
// back as they were written. They make two renewals within one second encode
// to different bytes, so that an elector comparing a record's bytes (on a
// clientset that does not version objects) still sees both.
type wireRecord struct {
	HolderIdentity       string                                  `json:"holderIdentity"`
	HolderKey            string                                  `json:"holderKey"`
	LeaseDurationSeconds int                                     `json:"leaseDurationSeconds"`
	AcquireTime          metav1.MicroTime                        `json:"acquireTime"`
	RenewTime            metav1.MicroTime                        `json:"renewTime"`
	LeaderTransitions    int                                     `json:"leaderTransitions"`
	Strategy             coordinationv1.CoordinatedLeaseStrategy `json:"strategy"`
	PreferredHolder      string                                  `json:"preferredHolder"`
}

// encodeRecord encodes r as JSON with microsecond times; see wireRecord.
func encodeRecord(r *LeaderElectionRecord) ([]byte, error) {
	return json.Marshal(wireRecord{
		HolderIdentity:       r.HolderIdentity,
		HolderKey:            r.HolderKey,
		LeaseDurationSeconds: r.LeaseDurationSeconds,
		AcquireTime:          metav1.MicroTime{Time: r.AcquireTime.Time},
		RenewTime:            metav1.MicroTime{Time: r.RenewTime.Time},
		LeaderTransitions:    r.LeaderTransitions,
		Strategy:             r.Strategy,
		PreferredHolder:      r.PreferredHolder,
	})
}

// putHandoff sets, or removes when they are empty, the annotations that hold
// r's handoff offer and request and its step-down request, and returns the
// annotations.
func putHandoff(annotations map[string]string, r *LeaderElectionRecord) map[string]string {
	for key, value := range map[string]any{HandoffAnnotationKey: r.Handoff, HandoffRequestAnnotationKey: r.HandoffRequest, StepDownAnnotationKey: r.StepDown} {
		if value == (HandoffOffer{}) || value == (HandoffRequest{}) || value == (StepDownRequest{}) {
			delete(annotations, key)
			continue
		}
		encoded, err := json.Marshal(value)
		if err != nil {
			continue // strings and ints always encode
		}
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[key] = string(encoded)
	}
	return annotations
}

// getHandoff reads the handoff offer and request and the step-down request
// annotations into r. One that cannot be decoded is ignored: without an
// offer a candidate takes the lock as it always could, and without a
// request nobody hands it over or steps down.
func getHandoff(annotations map[string]string, r *LeaderElectionRecord) {
	r.Handoff, r.HandoffRequest, r.StepDown = HandoffOffer{}, HandoffRequest{}, StepDownRequest{}
	if raw, ok := annotations[HandoffAnnotationKey]; ok {
		var offer HandoffOffer
		if json.Unmarshal([]byte(raw), &offer) == nil {
			r.Handoff = offer
		}
	}
	if raw, ok := annotations[HandoffRequestAnnotationKey]; ok {
		var request HandoffRequest
		if json.Unmarshal([]byte(raw), &request) == nil {
			r.HandoffRequest = request
		}
	}
	if raw, ok := annotations[StepDownAnnotationKey]; ok {
		var request StepDownRequest
		if json.Unmarshal([]byte(raw), &request) == nil {
			r.StepDown = request
		}
	}
}
