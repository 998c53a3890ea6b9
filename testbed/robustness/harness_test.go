package robustness

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
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

// TestWatchKeepsItsPlaceAfterAnEventItCannotRead: an event of the Lease's
// watch that carries no Lease tells the recording nothing about where it
// is; the watch reopens from the last version it saw (not from now, which
// would skip versions unseen) and the event is a gap.
func TestWatchKeepsItsPlaceAfterAnEventItCannotRead(t *testing.T) {
	admin := fake.NewClientset()
	admin.PrependReactor("list", "leases", func(k8stesting.Action) (bool, kruntime.Object, error) {
		return true, &coordinationv1.LeaseList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
	})
	admin.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, kruntime.Object, error) {
		return true, &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
	})
	type opened struct {
		rv string
		w  *watch.FakeWatcher
	}
	leaseWatches := make(chan opened, 10)
	logWatch := watch.NewFake()
	admin.PrependWatchReactor("leases", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w := watch.NewFake()
		leaseWatches <- opened{a.(k8stesting.WatchAction).GetWatchRestrictions().ResourceVersion, w}
		return true, w, nil
	})
	admin.PrependWatchReactor("configmaps", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, logWatch, nil
	})
	r := &run{suite: &Suite{admin: admin}, ns: "ns"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if err := r.watch(ctx, &wg); err != nil {
		t.Fatal(err)
	}
	next := func() opened {
		select {
		case o := <-leaseWatches:
			return o
		case <-time.After(10 * time.Second):
			t.Fatal("the Lease's watch was not (re)opened within 10s")
			return opened{}
		}
	}
	first := next()
	first.w.Add(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaseName, ResourceVersion: "5"}})
	first.w.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", ResourceVersion: "9"}})
	first.w.Stop()
	second := next()
	cancel()
	second.w.Stop()
	logWatch.Stop()
	wg.Wait()
	if second.rv != "5" {
		t.Errorf("the Lease's watch reopened from rv %q after an event it could not read; want 5, the last version it saw", second.rv)
	}
	if !slices.ContainsFunc(r.h.Gaps, func(g string) bool { return strings.Contains(g, "*v1.Pod") }) {
		t.Errorf("gaps %q; want one for the event that carried no Lease", r.h.Gaps)
	}
}
