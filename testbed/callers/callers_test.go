package callers

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// caller is a package of somebody else's that uses an elector, and the files
// in it that import one. pkg is an import path, or a directory under
// testdata holding code written the way a project we cannot import writes
// it. test, when set, names a test file in testdata that is added to the
// rewritten package and run there, so that the caller is not only built
// but used.
type caller struct {
	name  string
	pkg   string
	files []string
	test  string
}

// callers are the real callers checked. Each must build with only its
// elector imports swapped for ours, names kept by an import alias.
var callers = []caller{
	{name: "client-go's leader-election example", pkg: "k8s.io/client-go/examples/leader-election", files: []string{"main.go"}},
	{name: "component-base's leader-election metrics", pkg: "k8s.io/component-base/metrics/prometheus/clientgo/leaderelection", files: []string{"metrics.go"}},
	{name: "kube-controller-manager (coordinated election, healthz, RunOrDie)", pkg: "k8s.io/kubernetes/cmd/kube-controller-manager/app", files: []string{"controllermanager.go"}},
	{name: "istiod's pilot/pkg/leaderelection", pkg: "istio.io/istio/pilot/pkg/leaderelection", files: []string{"leaderelection.go"}},
	{name: "controller-runtime's leader-election metrics", pkg: "sigs.k8s.io/controller-runtime/pkg/metrics", files: []string{"leaderelection.go"}},
	// An upstream resourcelock.Interface implemented outside client-go,
	// run as the lock of an election of ours.
	{name: "controller-runtime's fake resource lock", pkg: "sigs.k8s.io/controller-runtime/pkg/leaderelection/fake", files: []string{"leader_election.go"}, test: "crfake_election_test.go"},
	// cert-manager's healthz test fake (pkg/healthz/healthz_test.go),
	// reproduced in shape: cert-manager is too heavy a module to import.
	{name: "cert-manager's healthz fake lock (its shape)", pkg: "./testdata/certmanagerlock", files: []string{"lock.go"}},
	// Istio's fork's callers ask the lock New returns for its key, and
	// implement locks that have one.
	{name: "a lock keyed the way Istio's fork keys it", pkg: "./testdata/istiokeyed", files: []string{"keyed.go"}},
}

// swaps are the import paths replaced, each with the alias that keeps the
// caller's package names.
var swaps = []struct{ from, to string }{
	{`"k8s.io/client-go/tools/leaderelection/resourcelock"`, `resourcelock "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"`},
	{`"k8s.io/client-go/tools/leaderelection"`, `leaderelection "github.com/k8sleaderelection/k8sleaderelection"`},
	{`"istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection/k8sresourcelock"`, `"github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"`},
	{`"istio.io/istio/pilot/pkg/leaderelection/k8sleaderelection"`, `"github.com/k8sleaderelection/k8sleaderelection"`},
}

func TestRealCallersCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds other projects' packages")
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			// The go command lays nothing over the module cache, so the
			// caller's package is copied, rewritten, into a scratch
			// directory of this module for the build, and removed after.
			src := c.pkg
			if !strings.HasPrefix(src, "./testdata/") {
				src = goList(t, c.pkg)
			}
			scratch, err := os.MkdirTemp(".", "caller-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(scratch) })
			entries, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, entry := range entries {
				name := entry.Name()
				if entry.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
					continue
				}
				text, err := os.ReadFile(filepath.Join(src, name))
				if err != nil {
					t.Fatal(err)
				}
				rewritten := string(text)
				if slices.Contains(c.files, name) {
					rewritten = swapImports(t, name, rewritten)
				}
				if err := os.WriteFile(filepath.Join(scratch, name), []byte(rewritten), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.Base(scratch))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s does not build against this library with its imports swapped:\n%s", c.pkg, out)
			}
			if c.test == "" {
				return
			}
			text, err := os.ReadFile(filepath.Join("testdata", c.test))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(scratch, c.test), text, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd = exec.Command("go", "test", "-count=1", "./"+filepath.Base(scratch))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s, rewritten, fails %s:\n%s", c.pkg, c.test, out)
			}
		})
	}
}

// swapImports replaces the elector imports of one file; it fails t if the
// file has none, which means the caller changed and the list needs a look.
func swapImports(t *testing.T, name, text string) string {
	t.Helper()
	swapped := 0
	for _, s := range swaps {
		if strings.Contains(text, s.from) {
			text = strings.ReplaceAll(text, s.from, s.to)
			swapped++
		}
	}
	if swapped == 0 {
		t.Fatalf("%s imports no elector: the caller changed, update the list", name)
	}
	return text
}

// goList returns the directory of pkg in this module's build.
func goList(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	return strings.TrimSpace(string(out))
}
