package mddoc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = "# Title\n" +
	"\n" +
	"See [the promises](docs/promises.md#local-time-only) and `[not](a-link.md)`.\n" +
	"\n" +
	"## `/healthz` fails: when, and why\n" +
	"\n" +
	"## Title\n" +
	"\n" +
	"<!-- go-wrap\n" +
	"package docs\n" +
	"\n" +
	"func _() {\n" +
	"\t// block\n" +
	"}\n" +
	"-->\n" +
	"```go\n" +
	"x := 1\n" +
	"_ = x\n" +
	"```\n" +
	"\n" +
	"```sh\n" +
	"make bench ARGS=\"-only cost -window 20s\"   # the cost # of it\n" +
	"\n" +
	"KUBECONFIG=$HOME/.kube/config make e2e\n" +
	"go run ./cmd/fence-policy -lease x | kubectl apply -f -\n" +
	"```\n" +
	"\n" +
	"```go\n" +
	"[broken](inside-code.md)\n" +
	"```\n"

func readSample(t *testing.T) *Doc {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Read(dir, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLinksOnlyInProse(t *testing.T) {
	d := readSample(t)
	links := d.Links()
	if len(links) != 1 || links[0].Target != "docs/promises.md#local-time-only" || links[0].Line != 3 {
		t.Fatalf("links = %+v, want the one prose link on line 3 (none from code spans or blocks)", links)
	}
}

func TestAnchorsAsGitHubMakesThem(t *testing.T) {
	got := d(readSample(t).Anchors())
	want := []string{"healthz-fails-when-and-why", "title", "title-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("anchors = %q, want %q", got, want)
	}
}

func d(m map[string]bool) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestFragmentCompilesInItsWrapperAtTheMarkdownsLines(t *testing.T) {
	b := readSample(t).Blocks[0]
	if b.Lang != "go" || b.Line != 17 || b.WrapLine != 10 {
		t.Fatalf("block = %+v, want a go block at line 17 wrapped from line 10", b)
	}
	src, err := b.GoSource("README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "//line README.md:10\npackage docs\n\nfunc _() {\n" +
		"//line README.md:17\nx := 1\n_ = x\n" +
		"//line README.md:14\n}\n"
	if src != want {
		t.Fatalf("source =\n%s\nwant\n%s", src, want)
	}
}

func TestUnwrappedFragmentIsRefused(t *testing.T) {
	b := readSample(t).Blocks[2]
	_, err := b.GoSource("README.md")
	if err == nil || !strings.Contains(err.Error(), "README.md:29") || !strings.Contains(err.Error(), "go-wrap") {
		t.Fatalf("err = %v, want one naming README.md:29 and the go-wrap comment", err)
	}
}

func TestCommandsWordsEnvAndPipes(t *testing.T) {
	cmds, err := readSample(t).Blocks[1].Commands()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 3 {
		t.Fatalf("got %d commands, want 3 (blank lines and comments are none): %+v", len(cmds), cmds)
	}
	if got := cmds[0].Pipeline[0]; !slices.Equal(got, []string{"make", "bench", "ARGS=-only cost -window 20s"}) || cmds[0].Line != 22 {
		t.Fatalf("first command = %q at line %d, want the quoted ARGS kept as one word, comment dropped, at line 22", got, cmds[0].Line)
	}
	if !slices.Equal(cmds[1].Env, []string{"KUBECONFIG=$HOME/.kube/config"}) || !slices.Equal(cmds[1].Pipeline[0], []string{"make", "e2e"}) {
		t.Fatalf("second command = %+v, want the assignment apart from make e2e", cmds[1])
	}
	if len(cmds[2].Pipeline) != 2 || cmds[2].Pipeline[1][0] != "kubectl" {
		t.Fatalf("third command = %+v, want a pipeline of two", cmds[2])
	}
}

func TestCommandsRefuseWhatTheyCannotCheck(t *testing.T) {
	b := Block{File: "x.md", Line: 5, Lang: "sh", Text: "cd cmd && go install ."}
	if _, err := b.Commands(); err == nil || !strings.Contains(err.Error(), "x.md:5") {
		t.Fatalf("err = %v, want a refusal naming x.md:5", err)
	}
}
