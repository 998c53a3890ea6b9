package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// lockedBuffer is an output the watch goroutines and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns what was written since the last take.
func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// TestWatchPrintsALinePerChange: watch prints the elections, then one line
// each time the holder, key, term or handoff changes, none for a renewal, a
// deadline for a handoff it sees requested, and the end of an election; it
// returns when its context is done.
func TestWatchPrintsALinePerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := fake.NewClientset(fixtures()...)
		var out, errOut lockedBuffer
		streams := genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut}
		e := &env{streams: streams, flags: genericclioptions.NewConfigFlags(true), now: time.Now}
		e.client = func() (kubernetes.Interface, error) { return client, nil }
		path := kubeconfig(t, "ns")
		e.flags.KubeConfig = &path
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan int, 1)
		go func() { done <- run(ctx, e.command(), []string{"watch"}, streams) }()
		synctest.Wait()

		start := time.Now().Format(time.TimeOnly)
		first := out.take()
		for _, want := range []string{
			start + " Lease ns/ours holder=a key=5 term=3 offer=within 12s handoff=-\n",
			start + " ConfigMap ns/cm-record holder=c key=7 term=2 offer=- handoff=-\n",
			start + " Endpoints ns/ep-record holder=e key=<none> term=6 offer=- handoff=-\n",
		} {
			if !strings.Contains(first, want) {
				t.Fatalf("watch began with\n%s\nwithout the line\n%s", first, want)
			}
		}
		if strings.Contains(first, "plain") || strings.Contains(first, "other/") {
			t.Fatalf("watch printed an object that is not an election of namespace ns:\n%s", first)
		}

		leases := client.CoordinationV1().Leases("ns")
		update := func(change func(*coordinationv1.Lease)) {
			t.Helper()
			l, err := leases.Get(ctx, "ours", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			change(l)
			if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}

		time.Sleep(3 * time.Second) // virtual: lines carry the time
		update(func(l *coordinationv1.Lease) {
			renewed := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &renewed
		})
		if got := out.take(); got != "" {
			t.Fatalf("a renewal alone printed %q; want nothing", got)
		}

		now := time.Now()
		update(func(l *coordinationv1.Lease) {
			l.Annotations[rl.HandoffRequestAnnotationKey] = `{"to":"a","term":3,"holderIdentity":"b","holderKey":"9","leaseDurationSeconds":15}`
		})
		want := now.Format(time.TimeOnly) + " Lease ns/ours holder=a key=5 term=3 offer=within 12s handoff=to b (key 9) by " + now.Add(12*time.Second).Format(time.TimeOnly) + "\n"
		if got := out.take(); got != want {
			t.Fatalf("a handoff request printed %q; want %q", got, want)
		}

		update(func(l *coordinationv1.Lease) {
			holder, transitions := "b", int32(4)
			l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &holder, &transitions
			l.Annotations = map[string]string{rl.LeaseHolderKey: "9"}
		})
		if got, want := out.take(), now.Format(time.TimeOnly)+" Lease ns/ours holder=b key=9 term=4 offer=- handoff=-\n"; got != want {
			t.Fatalf("a handover printed %q; want %q", got, want)
		}

		if err := leases.Delete(ctx, "ours", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := out.take(), now.Format(time.TimeOnly)+" Lease ns/ours deleted\n"; got != want {
			t.Fatalf("a deletion printed %q; want %q", got, want)
		}

		cancel()
		synctest.Wait()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("watch ended with exit %d, stderr %q; want 0 when interrupted", code, errOut.take())
			}
		default:
			t.Fatal("watch did not return once its context was done")
		}
	})
}
