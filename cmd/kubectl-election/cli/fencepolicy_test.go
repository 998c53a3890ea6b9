package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fencepolicy"
)

// TestFencePolicyIsTheFencePolicyCommand: kubectl election fence-policy takes
// cmd/fence-policy's flags and prints its policy; its bad flags exit 2 with
// the message printed once.
func TestFencePolicyIsTheFencePolicyCommand(t *testing.T) {
	args := []string{"-namespace", "ns", "-lease", "l", "-resources", "configmaps,deployments.apps", "-mode", "EveryWrite"}
	var want, wantErr bytes.Buffer
	if code := fencepolicy.Main("fence-policy", args, &want, &wantErr); code != 0 {
		t.Fatalf("fence-policy %v: exit %d, %s", args, code, wantErr.String())
	}
	r := runWith(t, context.Background(), fake.NewClientset(), append([]string{"fence-policy"}, args...)...)
	if r.code != 0 || r.stdout != want.String() {
		t.Fatalf("kubectl election fence-policy: exit %d, stderr %q, printed\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want.String())
	}
	r = runWith(t, context.Background(), fake.NewClientset(), "fence-policy", "-namespace", "ns", "-lease", "l", "-resources", "configmaps", "stray")
	if r.code != 2 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `unexpected arguments ["stray"]`) {
		t.Fatalf("fence-policy with a stray argument: exit %d, stdout %q, stderr %q; want exit 2 and one line naming it", r.code, r.stdout, r.stderr)
	}
}
