// Package docs checks that the Go blocks of README.md and docs/*.md compile
// against the library as it is, and runs the shell commands they give that
// need no cluster and no long build. It lives in the testbed module because
// the blocks import every satellite (crelection, prommetrics) and
// controller-runtime; the root module's docs_test.go checks the links and
// what the other commands name.
package docs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/k8sleaderelection/k8sleaderelection/cmd/kubectl-election/cli"
	"github.com/k8sleaderelection/k8sleaderelection/internal/mddoc"
)

// repo is the repository's top directory, seen from this package.
const repo = "../.."

func readDocs(t *testing.T) []*mddoc.Doc {
	t.Helper()
	files, err := mddoc.Files(repo)
	if err != nil {
		t.Fatal(err)
	}
	var docs []*mddoc.Doc
	for _, f := range files {
		d, err := mddoc.Read(repo, f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	return docs
}

// TestDocsGoBlocksCompile writes each Go block, as a whole file or in its
// go-wrap comment's file, into a package of its own in a scratch directory
// of this module, and vets them all: a block that does not compile against
// the current API fails with the Markdown file and line it is on.
func TestDocsGoBlocksCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every Go block of the docs")
	}
	scratch, err := os.MkdirTemp(".", "blocks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(scratch) })
	n := 0
	for _, d := range readDocs(t) {
		for _, b := range d.Blocks {
			if b.Lang != "go" {
				continue
			}
			abs, err := filepath.Abs(filepath.Join(repo, b.File))
			if err != nil {
				t.Fatal(err)
			}
			src, err := b.GoSource(abs)
			if err != nil {
				t.Error(err)
				continue
			}
			n++
			dir := filepath.Join(scratch, fmt.Sprintf("b%02d", n))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "block.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no Go block found in README.md and docs/")
	}
	out, err := exec.Command("go", "vet", "./"+filepath.Base(scratch)+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("the docs' Go blocks do not compile (or vet) against the library (positions are the Markdown's):\n%s", out)
	}
	t.Logf("%d Go blocks compiled", n)
}

// TestDocsCommandsRun runs the shell commands of the docs that need no
// cluster: cmd/fence-policy and kubectl election fence-policy print the
// policy, and every other kubectl election command is given --help, which
// still refuses a command or flag it does not know. Commands that need a
// cluster or a long build (make, go get, kubectl apply) are checked by the
// root module's TestDocsCommandsNameWhatExists.
func TestDocsCommandsRun(t *testing.T) {
	ran := 0
	for _, d := range readDocs(t) {
		for _, b := range d.Blocks {
			if b.Lang != "sh" && b.Lang != "bash" {
				continue
			}
			cmds, err := b.Commands()
			if err != nil {
				t.Error(err)
				continue
			}
			for _, c := range cmds {
				args := c.Pipeline[0]
				where := fmt.Sprintf("%s:%d: %s", c.File, c.Line, c.Text)
				switch {
				case len(args) >= 3 && args[0] == "go" && args[1] == "run":
					if testing.Short() {
						continue
					}
					cmd := exec.Command("go", args[1:]...)
					cmd.Dir = repo
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					if err != nil {
						t.Errorf("%s: %v\n%s", where, err, stderr.Bytes())
						continue
					}
					checkOutput(t, where, args, string(out))
				case len(args) >= 3 && args[0] == "kubectl" && args[1] == "election":
					sub := args[2:]
					if sub[0] != "fence-policy" {
						sub = append(sub, "--help")
					}
					var stdout, stderr bytes.Buffer
					code := cli.Main(sub, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
					if code != 0 {
						t.Errorf("%s: kubectl election %s exits %d:\n%s", where, strings.Join(sub, " "), code, stderr.Bytes())
						continue
					}
					checkOutput(t, where, args, stdout.String())
				default:
					continue
				}
				ran++
				t.Logf("%s: ran", where)
			}
		}
	}
	if ran == 0 && !testing.Short() {
		t.Fatal("no command of README.md and docs/ ran: the command reader is broken, or the docs lost their examples")
	}
}

// checkOutput checks what a command printed: a fence policy prints the
// policy and its binding, anything else something.
func checkOutput(t *testing.T, where string, args []string, out string) {
	t.Helper()
	if strings.Contains(strings.Join(args, " "), "fence-policy") {
		for _, kind := range []string{"kind: ValidatingAdmissionPolicy\n", "kind: ValidatingAdmissionPolicyBinding\n"} {
			if !strings.Contains(out, kind) {
				t.Errorf("%s: printed no %q:\n%s", where, strings.TrimSpace(kind), out)
			}
		}
		return
	}
	if strings.TrimSpace(out) == "" {
		t.Errorf("%s: printed nothing", where)
	}
}
