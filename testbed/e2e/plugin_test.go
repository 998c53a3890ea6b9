package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/k8sleaderelection/k8sleaderelection/cmd/kubectl-election/cli"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// plugin runs kubectl election in-process against the control plane, as a
// user whose kubeconfig is the file kubeconfig, and returns its output and
// exit code.
func plugin(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(append([]string{"--kubeconfig", kubeconfig}, args...), genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

// TestPluginReadsLiveElections: on kube-apiserver, kubectl election lists and
// describes the Lease our elector holds and the ConfigMap record Istio's fork
// holds, with holder, key and term as the locks store them; an unknown name,
// a record that is not an election, and a user without RBAC are refused in
// one line each.
func TestPluginReadsLiveElections(t *testing.T) {
	e := newElection(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	e.start("a", memberOpts{key: "5"})
	e.start("i", memberOpts{kind: rl.ConfigMapsResourceLock, elector: "istio", key: "7"})
	holds := func(kind, id string) func() bool {
		return func() bool {
			rec, err := e.record(kind)
			return err == nil && rec.HolderIdentity == id
		}
	}
	waitFor(t, leaseDuration+maxAttemptWait+slack, "a holds the Lease", holds(rl.LeasesResourceLock, "a"))
	waitFor(t, leaseDuration+maxAttemptWait+slack, "i holds the ConfigMap", holds(rl.ConfigMapsResourceLock, "i"))
	lease, err := e.record(rl.LeasesResourceLock)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := e.record(rl.ConfigMapsResourceLock)
	if err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := plugin(t, kubeconfig, "-n", e.ns, "list", "-o", "json")
	var list cli.List
	if err := json.Unmarshal([]byte(stdout), &list); code != 0 || err != nil {
		t.Fatalf("list -o json: exit %d, stderr %q, decode %v:\n%s", code, stderr, err, stdout)
	}
	if len(list.Items) != 2 {
		t.Fatalf("list -o json gave %d elections, want the Lease and the ConfigMap:\n%s", len(list.Items), stdout)
	}
	for _, want := range []struct {
		kind, holder, key string
		term              int
	}{{"ConfigMap", "i", "7", cm.LeaderTransitions}, {"Lease", "a", "5", lease.LeaderTransitions}} {
		var got *cli.Election
		for i := range list.Items {
			if list.Items[i].Kind == want.kind {
				got = &list.Items[i]
			}
		}
		if got == nil || got.Name != e.name || got.Holder != want.holder || got.Key != want.key || got.Term != want.term {
			t.Errorf("list: %s %s is %+v; want holder %s, key %s, term %d", want.kind, e.name, got, want.holder, want.key, want.term)
			continue
		}
		if got.TimeLeft == nil || got.TimeLeft.Duration <= 0 || got.TimeLeft.Duration > leaseDuration+time.Second {
			t.Errorf("list: %s time left %v; want within (0, %v] while its holder renews", want.kind, got.TimeLeft, leaseDuration)
		}
	}

	stdout, stderr, code = plugin(t, kubeconfig, "-n", e.ns, "describe", "lease/"+e.name)
	for _, want := range []string{"Holder:         a\n", "Key:            5\n", "Handoff offer:  the holder hands over within", rl.LeaseHolderKey + "=5\n"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("describe lease/%s: exit %d, stderr %q, lacks %q in\n%s", e.name, code, stderr, want, stdout)
		}
	}

	if _, err := e.admin.CoreV1().ConfigMaps(e.ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", e.ns, "describe", "nope"}, `error: election ` + e.ns + `/nope not found: no Lease, ConfigMap or Endpoints of that name in namespace "` + e.ns + `"` + "\n"},
		{[]string{"-n", e.ns, "describe", "plain"}, `error: ConfigMap ` + e.ns + `/plain is not an election: it has no control-plane.alpha.kubernetes.io/leader annotation` + "\n"},
		{[]string{"-n", e.ns, "--as", "nobody", "list"}, `error: no permission to list leases.coordination.k8s.io in namespace "` + e.ns + `": leases.coordination.k8s.io is forbidden: User "nobody" cannot list resource "leases" in API group "coordination.k8s.io" in the namespace "` + e.ns + `"` + "\n"},
		{[]string{"-n", e.ns, "--as", "nobody", "describe", e.name}, `error: no permission to get leases.coordination.k8s.io "` + e.name + `" in namespace "` + e.ns + `": leases.coordination.k8s.io "` + e.name + `" is forbidden: User "nobody" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "` + e.ns + `"` + "\n"},
	} {
		stdout, stderr, code := plugin(t, kubeconfig, bad.args...)
		if code == 0 || stdout != "" || stderr != bad.want {
			t.Errorf("%v: exit %d, stdout %q, stderr\n%q\nwant a non-zero exit and\n%q", bad.args, code, stdout, stderr, bad.want)
		}
	}
}

// TestPluginStepDownAndHandoff: on kube-apiserver, step-down moves
// leadership from the highest key to the other candidate with zero overlap,
// and the old holder stays out for --for before it asks for the lock back;
// handoff --to moves it to the named candidate, not to another follower;
// a candidate that does not exist, an unknown name, a record that is not an
// election, a user without RBAC and a holder running client-go's elector
// are refused, each with one line that says why.
func TestPluginStepDownAndHandoff(t *testing.T) {
	const out = 8 * time.Second
	e := newElection(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	high := prioritized(rl.LeasesResourceLock, "stable")
	high.windDown = 250 * time.Millisecond // its work stops before anyone else's starts
	e.start("high", high)
	waitFor(t, maxAttemptWait+slack, "high leads", func() bool { return strings.Join(e.rec.Leaders(), ",") == "high" })
	e.start("mid", prioritized(rl.LeasesResourceLock, "canary"))
	waitFor(t, maxAttemptWait+slack, "mid sees high lead", func() bool { return e.member("mid").leaderSeen() == "high" })

	asked := time.Now()
	stdout, stderr, code := plugin(t, kubeconfig, "-n", e.ns, "step-down", e.name, "--for", out.String())
	if want := "high stepped down: " + e.ns + "/" + e.name + " is held by mid"; code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("step-down: exit %d, stderr %q, want %q in\n%s", code, stderr, want, stdout)
	}
	if !strings.Contains(stdout, "high runs k8sleaderelection with handoffs (its offer stands)") {
		t.Errorf("step-down does not say who honours the request:\n%s", stdout)
	}
	for _, tenure := range e.rec.All() {
		if tenure.ID == "high" && tenure.End.After(asked) {
			if next := e.rec.StartedAfter(asked); len(next) > 0 {
				// Positive: nobody led in between; negative would be
				// an overlap, which Overlaps below refuses.
				addFigure("step-down: gap from the old leader's end to the next one's start", next[0].Start.Sub(tenure.End))
				addFigure("step-down: request to the next leader's start", next[0].Start.Sub(asked))
			}
			break
		}
	}
	// high stays out for --for, then asks mid for the lock back (its key
	// outranks mid's) and mid hands it over.
	waitFor(t, out+offered+maxAttemptWait+slack, "high leads again", func() bool { return strings.Join(e.rec.Leaders(), ",") == "high" })
	again := e.rec.StartedAfter(asked)
	if len(again) != 2 || again[0].ID != "mid" || again[1].ID != "high" {
		t.Fatalf("tenures since the step-down: %+v; want mid, then high", again)
	}
	if back := again[1].Start.Sub(asked); back < out {
		t.Errorf("high led again %v after the step-down, within the %v it was asked to stay out", back, out)
	}
	if overlaps := e.rec.Overlaps(); len(overlaps) > 0 {
		t.Fatalf("two leaders at once: %v", overlaps[0])
	}

	// Bad input first, while high leads. A candidate that does not
	// exist never asks: nothing changes, and the command says so when
	// the request expires.
	stdout, stderr, code = plugin(t, kubeconfig, "-n", e.ns, "handoff", e.name, "--to", "nobody", "--timeout", "2s")
	if want := "error: nobody did not ask high for the lock of " + e.ns + "/" + e.name + " before the request expired: it is not a live candidate"; code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("handoff --to nobody: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
	}
	if leaders := strings.Join(e.rec.Leaders(), ","); leaders != "high" {
		t.Errorf("after a handoff to nobody %q lead, want high still", leaders)
	}
	if _, err := e.admin.CoreV1().ConfigMaps(e.ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Lease as client-go's elector holds it: no handoff offer.
	holder, duration := "u", int32(3600)
	upstream := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "upstream"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	if _, err := e.admin.CoordinationV1().Leases(e.ns).Create(context.Background(), upstream, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", e.ns, "step-down", "nope"}, `error: election ` + e.ns + `/nope not found: no Lease, ConfigMap or Endpoints of that name in namespace "` + e.ns + `"` + "\n"},
		{[]string{"-n", e.ns, "step-down", "plain"}, `error: ConfigMap ` + e.ns + `/plain is not an election: it has no control-plane.alpha.kubernetes.io/leader annotation` + "\n"},
		{[]string{"-n", e.ns, "--as", "nobody", "step-down", e.name}, `error: no permission to get leases.coordination.k8s.io "` + e.name + `" in namespace "` + e.ns + `": leases.coordination.k8s.io "` + e.name + `" is forbidden: User "nobody" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "` + e.ns + `"` + "\n"},
		{[]string{"-n", e.ns, "handoff", e.name, "--to", "high"}, `error: election ` + e.ns + `/` + e.name + `: "high" already holds the lock` + "\n"},
		{[]string{"-n", e.ns, "step-down", "upstream"}, `error: election ` + e.ns + `/upstream: holder "u" makes no handoff offer (it runs client-go's or Istio's elector, or k8sleaderelection with DisableHandoff or Coordinated), so nobody would honour a step-down request; nothing written` + "\n"},
	} {
		stdout, stderr, code := plugin(t, kubeconfig, bad.args...)
		if code == 0 || stdout != "" || stderr != bad.want {
			t.Errorf("%v: exit %d, stdout %q, stderr\n%q\nwant a non-zero exit and\n%q", bad.args, code, stdout, stderr, bad.want)
		}
	}
	if lease, err := e.admin.CoordinationV1().Leases(e.ns).Get(context.Background(), "upstream", metav1.GetOptions{}); err != nil || lease.Annotations[rl.StepDownAnnotationKey] != "" {
		t.Errorf("a refused step-down wrote into the Lease: %v, %v", lease.Annotations, err)
	}

	// low does not outrank mid, so mid's lead, once handed to it, stands;
	// low is there to show the lock goes to the one named.
	e.start("low", prioritized(rl.LeasesResourceLock, "old"))
	waitFor(t, maxAttemptWait+slack, "low sees high lead", func() bool { return e.member("low").leaderSeen() == "high" })
	handed := time.Now()
	stdout, stderr, code = plugin(t, kubeconfig, "-n", e.ns, "handoff", e.name, "--to", "mid", "--for", "2m")
	if want := "high handed " + e.ns + "/" + e.name + " over to mid"; code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("handoff --to mid: exit %d, stderr %q, want %q in\n%s", code, stderr, want, stdout)
	}
	if got := e.rec.StartedAfter(handed); len(got) != 1 || got[0].ID != "mid" {
		t.Fatalf("tenures since the handoff: %+v; want mid alone", got)
	}
	if overlaps := e.rec.Overlaps(); len(overlaps) > 0 {
		t.Fatalf("two leaders at once: %v", overlaps[0])
	}
	// While high stays out, a new request would take its note's place.
	_, stderr, code = plugin(t, kubeconfig, "-n", e.ns, "step-down", e.name)
	if want := `"high" stepped down and stays out until`; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("step-down while high stays out: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
}
