package cli

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestListTable: every election in the namespace, whoever wrote it, in one
// table; ConfigMaps and Endpoints without a record are left out, a free
// Lease and an undecodable record are shown.
func TestListTable(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(fixtures()...), "list")
	want := `NAME        KIND        HOLDER             KEY      TERM        LEFT             HANDOFF
cm-record   ConfigMap   c                  7        2           20s              -
ep-record   Endpoints   e                  <none>   6           12s              -
free        Lease       <none>             <none>   0           -                -
garbage     ConfigMap   <invalid record>   <none>   <unknown>   -                -
handing     Lease       h                  1        4           13s              to b (key 9) within 9s of the request
istio       Lease       i                  10       0           29s              -
ours        Lease       a                  5        3           10s              -
upstream    Lease       u                  <none>   1           expired 5s ago   -
`
	if r.code != 0 || r.stdout != want {
		t.Fatalf("list: exit %d, stderr %q, printed\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}
}

// TestListWideShowsOfferFenceTermAndCandidates: -o wide adds the handoff
// offer, the term as fenced writes carry it, the last renewal and the
// LeaseCandidates naming each Lease.
func TestListWideShowsOfferFenceTermAndCandidates(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(fixtures()...), "list", "-o", "wide")
	if r.code != 0 {
		t.Fatalf("list -o wide: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"OFFER        FENCE-TERM   RENEWED   CANDIDATES",
		"ours        Lease       a                  5        3           10s              -                                       within 12s   o/3/a        5s ago    a,b",
		"handing     Lease       h                  1        4           13s              to b (key 9) within 9s of the request   within 9s    h/4/h        2s ago    <none>",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list -o wide lacks the line\n%s\nin\n%s", want, r.stdout)
		}
	}
}

// TestListAllNamespaces: -A lists every namespace and adds the column.
func TestListAllNamespaces(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(fixtures()...), "list", "-A")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAMESPACE   NAME") || !strings.Contains(r.stdout, "\nother       elsewhere   Lease       x ") {
		t.Fatalf("list -A: exit %d, stderr %q, printed\n%s\nwant a NAMESPACE column and other/elsewhere", r.code, r.stderr, r.stdout)
	}
}

// TestListJSON: the fields of each election, as -o json gives them.
func TestListJSON(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(fixtures()...), "list", "-o", "json")
	var got List
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil {
		t.Fatalf("list -o json: exit %d, stderr %q, decode %v:\n%s", r.code, r.stderr, err, r.stdout)
	}
	type row struct {
		Kind, Holder, Key string
		Term              int
		TimeLeft          string
		Offer             int
		Handoff           *Handoff
		Candidates        []string
		Invalid           bool
	}
	byName := map[string]row{}
	for _, e := range got.Items {
		rw := row{Kind: e.Kind, Holder: e.Holder, Key: e.Key, Term: e.Term, Handoff: e.Handoff, Candidates: e.Candidates, Invalid: e.Invalid != ""}
		if e.TimeLeft != nil {
			rw.TimeLeft = e.TimeLeft.Duration.String()
		}
		if e.HandoffOffer != nil {
			rw.Offer = e.HandoffOffer.WithinSeconds
		}
		byName[e.Name] = rw
	}
	want := map[string]row{
		"ours":      {Kind: "Lease", Holder: "a", Key: "5", Term: 3, TimeLeft: "10s", Offer: 12, Candidates: []string{"a", "b"}},
		"upstream":  {Kind: "Lease", Holder: "u", Term: 1, TimeLeft: "-5s"},
		"istio":     {Kind: "Lease", Holder: "i", Key: "10", TimeLeft: "29s"},
		"free":      {Kind: "Lease"},
		"handing":   {Kind: "Lease", Holder: "h", Key: "1", Term: 4, TimeLeft: "13s", Offer: 9, Handoff: &Handoff{To: "b", ToKey: "9", WithinSeconds: 9}},
		"cm-record": {Kind: "ConfigMap", Holder: "c", Key: "7", Term: 2, TimeLeft: "20s"},
		"ep-record": {Kind: "Endpoints", Holder: "e", Term: 6, TimeLeft: "12s"},
		"garbage":   {Kind: "ConfigMap", Invalid: true},
	}
	if !reflect.DeepEqual(byName, want) {
		t.Fatalf("list -o json gave\n%+v\nwant\n%+v", byName, want)
	}
	if got.Items[4].FenceTerm != "h/4/h" {
		t.Errorf("handing: fenceTerm %q, want %q", got.Items[4].FenceTerm, "h/4/h")
	}
}

// TestListYAML: -o yaml prints the same list.
func TestListYAML(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(fixtures()...), "list", "-o", "yaml")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "items:\n") || !strings.Contains(r.stdout, "  holder: a\n") {
		t.Fatalf("list -o yaml: exit %d, stderr %q, printed\n%s", r.code, r.stderr, r.stdout)
	}
}

// TestListEmptyJSONIsAnEmptyList: no elections print as [], not null.
func TestListEmptyJSONIsAnEmptyList(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(), "list", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n    \"items\": []\n}" {
		t.Fatalf("list -o json with no elections: exit %d, printed %q", r.code, r.stdout)
	}
}

// forbid makes client refuse verb on resource with a 403, as RBAC does.
func forbid(client *fake.Clientset, verb, resource, group string) {
	client.PrependReactor(verb, resource, func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: resource}, "",
			errForbiddenReason)
	})
}

var errForbiddenReason = forbiddenReason(`User "nobody" cannot ` + "do this")

type forbiddenReason string

func (r forbiddenReason) Error() string { return string(r) }

// TestBadInput: each refusal exits 1 with one line that says what was wrong.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*fake.Clientset)
		args  []string
		want  string
	}{
		{"unknown name", nil, []string{"describe", "nope"},
			`error: election ns/nope not found: no Lease, ConfigMap or Endpoints of that name in namespace "ns"`},
		{"unknown lease", nil, []string{"describe", "lease/cm-record"},
			`error: election ns/cm-record not found: no Lease of that name in namespace "ns"`},
		{"not an election", nil, []string{"describe", "plain"},
			`error: ConfigMap ns/plain is not an election: it has no control-plane.alpha.kubernetes.io/leader annotation`},
		{"list forbidden", func(c *fake.Clientset) { forbid(c, "list", "leases", "coordination.k8s.io") }, []string{"list"},
			`error: no permission to list leases.coordination.k8s.io in namespace "ns": leases.coordination.k8s.io is forbidden: User "nobody" cannot do this`},
		{"get forbidden", func(c *fake.Clientset) { forbid(c, "get", "configmaps", "") }, []string{"describe", "configmap/cm-record"},
			`error: no permission to get configmaps "cm-record" in namespace "ns": configmaps is forbidden: User "nobody" cannot do this`},
		{"all namespaces and a namespace", nil, []string{"list", "-A", "-n", "ns"},
			`error: --all-namespaces and --namespace conflict: give one`},
		{"unknown output", nil, []string{"list", "-o", "table"},
			`error: --output "table": must be one of wide, json, yaml`},
		{"describe without a name", nil, []string{"describe"},
			`error: describe takes one NAME, got 0 arguments []`},
		{"unknown kind", nil, []string{"describe", "secret/x"},
			`error: election "secret/x": kind "secret" is not one of lease, configmap, endpoints`},
		{"unknown command", nil, []string{"bogus"},
			`error: unknown command "bogus" for "kubectl election"`},
		{"watch a name in all namespaces", nil, []string{"watch", "ours", "-A"},
			`error: watch NAME and --all-namespaces conflict: a name is looked up in one namespace`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(fixtures()...)
			if tc.setup != nil {
				tc.setup(client)
			}
			r := runWith(t, context.Background(), client, tc.args...)
			if r.code == 0 || r.stderr != tc.want+"\n" {
				t.Fatalf("%v: exit %d, stderr %q; want a non-zero exit and %q", tc.args, r.code, r.stderr, tc.want)
			}
		})
	}
}

// TestCandidatesUnreadableAreUnknown: a user who may not list
// LeaseCandidates still gets the list, with a warning.
func TestCandidatesUnreadableAreUnknown(t *testing.T) {
	client := fake.NewClientset(fixtures()...)
	forbid(client, "list", "leasecandidates", "coordination.k8s.io")
	r := runWith(t, context.Background(), client, "list", "-o", "wide")
	if r.code != 0 || !strings.Contains(r.stdout, "o/3/a        5s ago    <none>") || !strings.HasPrefix(r.stderr, "warning: candidates unknown: ") {
		t.Fatalf("list with leasecandidates forbidden: exit %d, stderr %q, printed\n%s", r.code, r.stderr, r.stdout)
	}
}
