package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	coordinationv1beta1 "k8s.io/api/coordination/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// testNow is the local clock of every unit test.
var testNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// kubeconfig writes a kubeconfig whose context is in namespace ns, so that
// the command reads its default namespace as kubectl would.
func kubeconfig(t *testing.T, ns string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	config := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ` + ns + `}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is what one run of the plugin printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runWith runs the plugin on client with args, in namespace "ns" unless args
// say otherwise.
func runWith(t *testing.T, ctx context.Context, client kubernetes.Interface, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	streams := genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &stdout, ErrOut: &stderr}
	e := &env{streams: streams, flags: genericclioptions.NewConfigFlags(true), now: func() time.Time { return testNow }}
	e.client = func() (kubernetes.Interface, error) { return client, nil }
	path := kubeconfig(t, "ns")
	e.flags.KubeConfig = &path
	code := run(ctx, e.command(), args, streams)
	return result{stdout.String(), stderr.String(), code}
}

// leaseObj is a Lease as the API server stores it, with a UID (here the
// first letter of its name, so that tables stay narrow).
func leaseObj(ns, name string, spec coordinationv1.LeaseSpec, annotations map[string]string) *coordinationv1.Lease {
	meta := metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations, UID: types.UID(name[:1])}
	return &coordinationv1.Lease{ObjectMeta: meta, Spec: spec}
}

func heldSpec(holder string, transitions, duration int32, renewedAgo time.Duration) coordinationv1.LeaseSpec {
	acquired := metav1.NewMicroTime(testNow.Add(-time.Hour))
	renewed := metav1.NewMicroTime(testNow.Add(-renewedAgo))
	return coordinationv1.LeaseSpec{
		HolderIdentity: &holder, LeaseTransitions: &transitions, LeaseDurationSeconds: &duration,
		AcquireTime: &acquired, RenewTime: &renewed,
	}
}

// fixtures are the elections of the unit tests: one of each kind of writer
// and record, and objects that are not elections.
func fixtures() []runtime.Object {
	at := func(ago time.Duration) string { return testNow.Add(-ago).Format(time.RFC3339) }
	return []runtime.Object{
		// Ours: a key, a standing handoff offer, and a request left
		// from an earlier term, which lapsed when the lock changed hands.
		leaseObj("ns", "ours", heldSpec("a", 3, 15, 5*time.Second), map[string]string{
			rl.LeaseHolderKey:              "5",
			rl.HandoffAnnotationKey:        `{"holder":"a","withinSeconds":12}`,
			rl.HandoffRequestAnnotationKey: `{"to":"z","term":2,"holderIdentity":"a","holderKey":"5","leaseDurationSeconds":15}`,
		}),
		// Upstream's: no key, and a lease that ran out 5s ago.
		leaseObj("ns", "upstream", heldSpec("u", 1, 15, 20*time.Second), nil),
		// Istio's fork: the key annotation alone.
		leaseObj("ns", "istio", heldSpec("i", 0, 30, time.Second), map[string]string{rl.LeaseHolderKey: "10"}),
		// A free Lease is an election too.
		leaseObj("ns", "free", coordinationv1.LeaseSpec{}, nil),
		// A pending handoff: b (key 9) asked h in term 4.
		leaseObj("ns", "handing", heldSpec("h", 4, 15, 2*time.Second), map[string]string{
			rl.LeaseHolderKey:              "1",
			rl.HandoffAnnotationKey:        `{"holder":"h","withinSeconds":9}`,
			rl.HandoffRequestAnnotationKey: `{"to":"h","term":4,"holderIdentity":"b","holderKey":"9","leaseDurationSeconds":15}`,
		}),
		// A ConfigMap record as Istio's fork writes it, with holderKey.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm-record", Annotations: map[string]string{
			rl.LeaderElectionRecordAnnotationKey: `{"holderIdentity":"c","holderKey":"7","leaseDurationSeconds":30,"acquireTime":"` + at(time.Hour) + `","renewTime":"` + at(10*time.Second) + `","leaderTransitions":2}`,
		}}},
		// An Endpoints record as upstream wrote it, without a key.
		&corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ep-record", Annotations: map[string]string{
			rl.LeaderElectionRecordAnnotationKey: `{"holderIdentity":"e","leaseDurationSeconds":15,"acquireTime":"` + at(time.Hour) + `","renewTime":"` + at(3*time.Second) + `","leaderTransitions":6}`,
		}}},
		// An annotation that is not a record.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "garbage", Annotations: map[string]string{
			rl.LeaderElectionRecordAnnotationKey: `not json`,
		}}},
		// Not elections: no record annotation.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "plain"}},
		&corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "service"}},
		// Coordinated election's candidates for "ours".
		&coordinationv1beta1.LeaseCandidate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}, Spec: coordinationv1beta1.LeaseCandidateSpec{LeaseName: "ours"}},
		&coordinationv1beta1.LeaseCandidate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}, Spec: coordinationv1beta1.LeaseCandidateSpec{LeaseName: "ours"}},
		// Another namespace, for -A.
		leaseObj("other", "elsewhere", heldSpec("x", 0, 15, 0), nil),
	}
}

// notServed answers as an API server that does not serve the resource.
func notServed(action k8stesting.Action) (bool, runtime.Object, error) {
	return true, nil, apierrors.NewNotFound(action.GetResource().GroupResource(), "")
}
