package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
