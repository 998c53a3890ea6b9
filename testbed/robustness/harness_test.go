package robustness

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestLogRecordingSeesLinesAppendedAndLinesLost: each version of the log
// is recorded as the lines it appended to the one before; a version that
// does not start with those lines is marked rewritten, which the checker
// reports as lost writes.
func TestLogRecordingSeesLinesAppendedAndLinesLost(t *testing.T) {
	r := &run{}
	version := func(rv, log string) watch.Event {
		return watch.Event{Type: watch.Modified, Object: &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: logName, ResourceVersion: rv},
			Data:       map[string]string{"log": log},
		}}
	}
	r.onLog(version("10", "a 1\n"))
	r.onLog(version("11", "a 1\nb 1\n"))
	r.onLog(version("12", "a 1\nc 2\n"))
	got := r.h.Log
	if len(got) != 3 || !slices.Equal(got[0].Added, []string{"a 1"}) || !slices.Equal(got[1].Added, []string{"b 1"}) || got[1].Rewritten || got[1].RV != 11 {
		t.Fatalf("recorded %+v; want versions 10 and 11 appending a 1 and b 1", got)
	}
	if !got[2].Rewritten {
		t.Fatalf("version 12 dropped line b 1 but is not marked rewritten: %+v", got[2])
	}
	vs, _ := Check(&History{Log: got, FinalLog: []string{"a 1", "c 2"}})
	if !slices.ContainsFunc(vs, func(v Violation) bool { return v.Property == PropWrites }) {
		t.Fatalf("the checker did not report the lost line: %v", vs)
	}
}

// TestSettleMarksAGapWhenItCannotReadTheLease: settling waits for the
// Lease's watch to reach the Lease's last version; a failed read of that
// version leaves the wait nothing to wait for, and the Lease's last changes
// may be missing from the history: a gap, not silence.
func TestSettleMarksAGapWhenItCannotReadTheLease(t *testing.T) {
	admin := fake.NewClientset()
	admin.PrependReactor("get", "leases", func(k8stesting.Action) (bool, kruntime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	r := &run{suite: &Suite{admin: admin}, ns: "ns"}
	r.settle(context.Background())
	if !slices.ContainsFunc(r.h.Gaps, func(g string) bool { return strings.Contains(g, "read the final Lease: connection refused") }) {
		t.Fatalf("gaps %q; want one for the Lease that could not be read", r.h.Gaps)
	}
}
