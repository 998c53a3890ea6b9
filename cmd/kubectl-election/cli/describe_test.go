package cli

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

// TestDescribeShowsHandoffAndRawAnnotations: describe names the pending
// handoff, what happens at its deadline, and every annotation as stored.
func TestDescribeShowsHandoffAndRawAnnotations(t *testing.T) {
	client := fake.NewClientset(fixtures()...)
	r := runWith(t, context.Background(), client, "describe", "handing")
	if r.code != 0 {
		t.Fatalf("describe handing: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"Holder:         h\n",
		"Key:            1\n",
		"Term:           4 (fenced writes carry h/4/h)\n",
		"Time left:      13s ",
		"Handoff offer:  the holder hands over within 9s of a request",
		"Handoff:        pending: to b (key 9) within 9s of the request; if the holder has not handed over by then, b takes the lock\n",
		`  k8sleaderelection.github.io/handoff-request={"to":"h","term":4,"holderIdentity":"b","holderKey":"9","leaseDurationSeconds":15}` + "\n",
		"  leader.istio.io/holder-key=1\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe handing lacks %q in\n%s", want, r.stdout)
		}
	}
}

// TestDescribeInvalidRecord: a record that does not decode is shown as such,
// with the annotation as it is.
func TestDescribeInvalidRecord(t *testing.T) {
	r := runWith(t, context.Background(), fake.NewClientset(fixtures()...), "describe", "garbage")
	if r.code != 0 || !strings.Contains(r.stdout, "Record:      cannot be decoded: ") ||
		!strings.Contains(r.stdout, "  control-plane.alpha.kubernetes.io/leader=not json\n") {
		t.Fatalf("describe garbage: exit %d, stderr %q, printed\n%s", r.code, r.stderr, r.stdout)
	}
}

// TestDescribeCandidatesNotServed: a server without LeaseCandidates
// (NotFound on the resource) leaves candidates unknown, without a warning.
func TestDescribeCandidatesNotServed(t *testing.T) {
	client := fake.NewClientset(fixtures()...)
	client.PrependReactor("list", "leasecandidates", notServed)
	r := runWith(t, context.Background(), client, "describe", "lease/ours")
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Candidates:     <none>\n") {
		t.Fatalf("describe ours without LeaseCandidates served: exit %d, stderr %q, printed\n%s", r.code, r.stderr, r.stdout)
	}
	r = runWith(t, context.Background(), fake.NewClientset(fixtures()...), "describe", "lease/ours")
	if !strings.Contains(r.stdout, "Candidates:     a, b\n") {
		t.Fatalf("describe ours: printed\n%s\nwant its candidates a, b", r.stdout)
	}
}
