package robustness

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
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
