package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
)

// stepDownAnnotation returns the step-down request on the Lease ns/name,
// decoded, and whether there is one.
func stepDownAnnotation(t *testing.T, client *fake.Clientset, name string) (rl.StepDownRequest, bool) {
	t.Helper()
	lease, err := client.CoordinationV1().Leases("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease %s: %v", name, err)
	}
	raw, ok := lease.Annotations[rl.StepDownAnnotationKey]
	if !ok {
		return rl.StepDownRequest{}, false
	}
	var request rl.StepDownRequest
	if err := json.Unmarshal([]byte(raw), &request); err != nil {
		t.Fatalf("annotation %s = %q: %v", rl.StepDownAnnotationKey, raw, err)
	}
	return request, true
}

// TestStepDownWritesTheRequest: step-down writes a request that names the
// holder, its term, the time out, and when it was asked and expires, and
// says who honours it.
func TestStepDownWritesTheRequest(t *testing.T) {
	client := fake.NewClientset(fixtures()...)
	r := runWith(t, context.Background(), client, "step-down", "ours", "--for", "2m", "--timeout", "30s", "--wait=false")
	if r.code != 0 {
		t.Fatalf("step-down ours: exit %d, stderr %q", r.code, r.stderr)
	}
	got, ok := stepDownAnnotation(t, client, "ours")
	want := rl.StepDownRequest{Holder: "a", Term: 3, ForSeconds: 120, RequestedAt: "2026-12-06T12:00:00Z", ExpiresAt: "2026-12-06T12:00:30Z"}
	if !ok || got != want {
		t.Fatalf("step-down request %+v (present %v), want %+v", got, ok, want)
	}
	for _, text := range []string{
		"Asked a, holder of ns/ours in term 3, to step down and stay out for 2m0s; the request expires at 2026-12-06T12:00:30Z.\n",
		"a runs k8sleaderelection with handoffs (its offer stands)",
		"within 12s",
	} {
		if !strings.Contains(r.stdout, text) {
			t.Errorf("step-down printed\n%s\nwithout %q", r.stdout, text)
		}
	}
	d := runWith(t, context.Background(), client, "describe", "lease/ours")
	if !strings.Contains(d.stdout, "Step-down:      requested at 2026-12-06T12:00:00Z: hand over to the best other candidate") {
		t.Errorf("describe after step-down lacks the pending request:\n%s", d.stdout)
	}
}

// TestHandoffWritesTheNamedCandidate: handoff --to names the candidate in
// the request, and says what the priority rule makes of the move; a target
// the plugin does not know is named as such.
func TestHandoffWritesTheNamedCandidate(t *testing.T) {
	client := fake.NewClientset(fixtures()...)
	r := runWith(t, context.Background(), client, "handoff", "ours", "--to", "b", "--wait=false")
	if r.code != 0 {
		t.Fatalf("handoff ours --to b: exit %d, stderr %q", r.code, r.stderr)
	}
	got, _ := stepDownAnnotation(t, client, "ours")
	if got.To != "b" || got.Holder != "a" || got.Term != 3 || got.ForSeconds != 300 || got.ExpiresAt != "2026-12-06T12:01:00Z" {
		t.Fatalf("handoff request %+v, want to b from a in term 3, out 300s, expiring a minute on", got)
	}
	for _, text := range []string{
		"Asked a, holder of ns/ours in term 3, to hand over to b and stay out for 5m0s",
		"If b's key is below a's, a asks for the lock back once its 5m0s out has run; a candidate whose key outranks b's asks b for it as soon as b leads.",
	} {
		if !strings.Contains(r.stdout, text) {
			t.Errorf("handoff printed\n%s\nwithout %q", r.stdout, text)
		}
	}
	if strings.Contains(r.stdout, "not among the known candidates") {
		t.Errorf("handoff to b, a LeaseCandidate, says it is unknown:\n%s", r.stdout)
	}
	r = runWith(t, context.Background(), fake.NewClientset(fixtures()...), "handoff", "ours", "--to", "stranger", "--wait=false")
	if r.code != 0 || !strings.Contains(r.stdout, "stranger is not among the known candidates") {
		t.Errorf("handoff to an unknown candidate: exit %d, stderr %q, printed\n%s", r.code, r.stderr, r.stdout)
	}
}

// TestStepDownRefusesWhatCouldNotStand: bad input and requests that nobody
// would honour, or that could not stand, fail with an error naming why, and
// write nothing.
func TestStepDownRefusesWhatCouldNotStand(t *testing.T) {
	forbidden := func(client *fake.Clientset) {
		client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "ours", nil)
		})
	}
	for _, tc := range []struct {
		name  string
		args  []string
		setup func(*fake.Clientset)
		want  string
	}{
		{"unknown name", []string{"step-down", "nope"}, nil, `election ns/nope not found`},
		{"not an election", []string{"step-down", "configmap/plain"}, nil, "not an election"},
		{"undecodable record", []string{"step-down", "garbage"}, nil, "cannot be decoded"},
		{"free lock", []string{"step-down", "free"}, nil, "election ns/free has no holder"},
		{"holder without an offer", []string{"step-down", "upstream"}, nil, `holder "u" makes no handoff offer`},
		{"coordinated", []string{"step-down", "coordinated"}, nil, "is a coordinated election (strategy OldestEmulationVersion)"},
		{"no permission", []string{"step-down", "ours"}, forbidden, `no permission to update leases.coordination.k8s.io "ours" in namespace "ns"`},
		{"a stepped-down holder still out", []string{"step-down", "ours"}, func(client *fake.Clientset) {
			lease, _ := client.CoordinationV1().Leases("ns").Get(context.Background(), "ours", metav1.GetOptions{})
			lease.Annotations[rl.StepDownAnnotationKey] = `{"holder":"z","term":2,"forSeconds":300,"requestedAt":"2026-12-06T11:58:00Z","expiresAt":"2026-12-06T11:59:00Z","outUntil":"2026-12-06T12:03:00Z"}`
			if _, err := client.CoordinationV1().Leases("ns").Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
				panic(err)
			}
			client.ClearActions()
		}, `"z" stepped down and stays out until 2026-12-06T12:03:00Z; the lock remembers one such holder, so a new request now would let "z" back in early`},
		{"handoff without --to", []string{"handoff", "ours"}, nil, "handoff needs --to ID"},
		{"handoff to the holder", []string{"handoff", "ours", "--to", "a"}, nil, `"a" already holds the lock`},
		{"handoff past a higher request", []string{"handoff", "handing", "--to", "c"}, nil, `candidate "b" (key "9") has asked "h" for the lock`},
		{"negative time out", []string{"step-down", "ours", "--for", "-1s"}, nil, "--for -1s: must be between 0 and 24h0m0s"},
		{"time out too long", []string{"step-down", "ours", "--for", "25h"}, nil, "--for 25h0m0s: must be between 0 and 24h0m0s"},
		{"no timeout", []string{"step-down", "ours", "--timeout", "0s"}, nil, "--timeout 0s: must be between 1s and 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			strategy := coordinationv1.OldestEmulationVersion
			spec := heldSpec("k", 2, 15, time.Second)
			spec.Strategy = &strategy
			objects := append(fixtures(), leaseObj("ns", "coordinated", spec, map[string]string{rl.HandoffAnnotationKey: `{"holder":"k","withinSeconds":9}`}))
			client := fake.NewClientset(objects...)
			if tc.setup != nil {
				tc.setup(client)
			}
			r := runWith(t, context.Background(), client, append(tc.args, "--wait=false")...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.HasPrefix(r.stderr, "error: ") {
				t.Fatalf("%q: exit %d, stderr %q; want exit 1 and an error containing %q", tc.args, r.code, r.stderr, tc.want)
			}
			for _, name := range []string{"ours", "upstream", "free", "coordinated", "handing"} {
				if got, ok := stepDownAnnotation(t, client, name); ok && got.Holder != "z" {
					t.Errorf("%q wrote a step-down request into %s: %+v", tc.args, name, got)
				}
			}
		})
	}
}

// TestStepDownWaitsForTheOutcome: with --wait (the default) the command
// reads the lock until the holder has stepped down, and fails, naming why,
// when the request expires with nothing changed, or when the lock went to
// another candidate than the one named.
func TestStepDownWaitsForTheOutcome(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		newHolder string // "" for nobody acting
		code      int
		want      string
	}{
		{"stepped down", []string{"step-down", "ours"}, "b", 0, "a stepped down: ns/ours is held by b (term 4).\n"},
		{"released", []string{"step-down", "ours"}, "-", 0, "a stepped down and released ns/ours"},
		{"handed to the named", []string{"handoff", "ours", "--to", "b"}, "b", 0, "a handed ns/ours over to b (term 4).\n"},
		{"went to another", []string{"handoff", "ours", "--to", "b"}, "c", 1, "ns/ours went to c (term 4), not to b"},
		{"nobody answered", []string{"handoff", "ours", "--to", "b"}, "", 1, "b did not ask a for the lock of ns/ours before the request expired: it is not a live candidate"},
		{"holder ignored it", []string{"step-down", "ours"}, "", 1, "a did not step down from ns/ours before the request expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client := fake.NewClientset(fixtures()...)
				done := make(chan result, 1)
				go func() { done <- runWith(t, t.Context(), client, tc.args...) }()
				time.Sleep(3 * time.Second)
				if _, ok := stepDownAnnotation(t, client, "ours"); !ok {
					t.Fatal("no step-down request written")
				}
				if tc.newHolder != "" {
					// The holder carries the request out.
					lease, _ := client.CoordinationV1().Leases("ns").Get(context.Background(), "ours", metav1.GetOptions{})
					holder := tc.newHolder
					if holder == "-" {
						holder = ""
					}
					transitions := int32(4)
					lease.Spec.HolderIdentity, lease.Spec.LeaseTransitions = &holder, &transitions
					delete(lease.Annotations, rl.StepDownAnnotationKey)
					if _, err := client.CoordinationV1().Leases("ns").Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				var r result
				select {
				case r = <-done:
				case <-time.After(5 * time.Minute):
					t.Fatal("the command still waits 5 minutes on")
				}
				out := r.stdout
				if r.code != 0 {
					out = r.stderr
				}
				if r.code != tc.code || !strings.Contains(out, tc.want) {
					t.Fatalf("%q: exit %d, stdout %q, stderr %q; want exit %d with %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
				}
			})
		})
	}
}

// TestStepDownWriteRereadsAfterAConflict: a write that conflicts (the
// holder renewed meanwhile) is tried again over the object read anew; if the
// lock changed hands meanwhile, nothing is written and the error says so.
func TestStepDownWriteRereadsAfterAConflict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		newOwner string
		want     string
	}{
		{"renewed meanwhile", "a", ""},
		{"changed hands meanwhile", "b", `election ns/ours changed hands while asking: Lease now names "b" in term 4, not "a" in term 3; nothing written`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(fixtures()...)
			conflicted := false
			client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
				if conflicted {
					return false, nil, nil
				}
				conflicted = true
				lease, _ := client.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), "ns", "ours")
				l := lease.(*coordinationv1.Lease).DeepCopy()
				holder, transitions := tc.newOwner, int32(3)
				if holder != "a" {
					transitions = 4
				}
				l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &holder, &transitions
				if err := client.Tracker().Update(coordinationv1.SchemeGroupVersion.WithResource("leases"), l, "ns"); err != nil {
					t.Fatal(err)
				}
				return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "ours", nil)
			})
			r := runWith(t, context.Background(), client, "step-down", "ours", "--wait=false")
			got, written := stepDownAnnotation(t, client, "ours")
			if tc.want == "" {
				if r.code != 0 || !written || got.Holder != "a" || got.Term != 3 {
					t.Fatalf("after a conflict with a renewal: exit %d, stderr %q, request %+v (written %v); want a's term 3 request written", r.code, r.stderr, got, written)
				}
				return
			}
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || written {
				t.Fatalf("after the lock changed hands: exit %d, stderr %q, request written %v; want exit 1, %q, nothing written", r.code, r.stderr, written, tc.want)
			}
		})
	}
}

// TestDescribeShowsWhoStaysOut: describe names the holder that stepped down
// and until when it stays out, as the lock records it.
func TestDescribeShowsWhoStaysOut(t *testing.T) {
	client := fake.NewClientset(leaseObj("ns", "moved", heldSpec("b", 4, 15, time.Second), map[string]string{
		rl.HandoffAnnotationKey:  `{"holder":"b","withinSeconds":12}`,
		rl.StepDownAnnotationKey: `{"holder":"a","term":3,"forSeconds":300,"requestedAt":"2026-12-06T11:58:00Z","expiresAt":"2026-12-06T11:59:00Z","outUntil":"2026-12-06T12:03:00.5Z"}`,
	}))
	r := runWith(t, context.Background(), client, "describe", "moved")
	if want := "Stepped down:   a stays out of the election until 2026-12-06T12:03:00Z\n"; r.code != 0 || !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "Step-down:") {
		t.Fatalf("describe moved: exit %d, stderr %q; want %q and no pending step-down in\n%s", r.code, r.stderr, want, r.stdout)
	}
}
