package k8sleaderelection_test

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/k8sleaderelection/k8sleaderelection/internal/mddoc"
)

// The README and docs/ are checked here for what needs no build: every
// relative link and anchor resolves, every Go block is a whole file or says
// how it is wrapped, and every shell command names a Makefile target, a
// flag, a module or a plugin command that exists. testbed/docs compiles the
// Go blocks and runs the commands that are cheap enough.

// readDocs reads README.md and docs/*.md.
func readDocs(t *testing.T) []*mddoc.Doc {
	t.Helper()
	files, err := mddoc.Files(".")
	if err != nil {
		t.Fatal(err)
	}
	var docs []*mddoc.Doc
	for _, f := range files {
		d, err := mddoc.Read(".", f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	return docs
}

func TestDocsLinksResolve(t *testing.T) {
	anchors := map[string]map[string]bool{}
	anchorsOf := func(file string) (map[string]bool, error) {
		if a, ok := anchors[file]; ok {
			return a, nil
		}
		d, err := mddoc.Read(".", file)
		if err != nil {
			return nil, err
		}
		anchors[file] = d.Anchors()
		return anchors[file], nil
	}
	docs := readDocs(t)
	checked := 0
	for _, d := range docs {
		for _, l := range d.Links() {
			u, err := url.Parse(l.Target)
			if err != nil {
				t.Errorf("%s:%d: link %q does not parse: %v", l.File, l.Line, l.Target, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				continue // not relative: nothing in the repository to check
			}
			checked++
			target := l.File
			if u.Path != "" {
				if strings.HasPrefix(u.Path, "/") {
					t.Errorf("%s:%d: link %q is absolute; it would break outside GitHub's rendering", l.File, l.Line, l.Target)
					continue
				}
				target = path.Clean(path.Join(path.Dir(l.File), u.Path))
				if strings.HasPrefix(target, "../") {
					t.Errorf("%s:%d: link %q leaves the repository", l.File, l.Line, l.Target)
					continue
				}
				if _, err := os.Stat(filepath.FromSlash(target)); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", l.File, l.Line, l.Target, target)
					continue
				}
			}
			if u.Fragment == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s:%d: link %q has an anchor into %s, which is not Markdown", l.File, l.Line, l.Target, target)
				continue
			}
			a, err := anchorsOf(target)
			if err != nil {
				t.Errorf("%s:%d: link %q: %v", l.File, l.Line, l.Target, err)
				continue
			}
			if !a[u.Fragment] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s (it has %v)", l.File, l.Line, l.Target, target, u.Fragment, sortedKeys(a))
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found in README.md and docs/: the link reader is broken")
	}
}

func TestDocsGoBlocksAreFilesOrWrapped(t *testing.T) {
	n := 0
	for _, d := range readDocs(t) {
		for _, b := range d.Blocks {
			if b.Lang != "go" {
				continue
			}
			n++
			if _, err := b.GoSource(b.File); err != nil {
				t.Error(err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no Go block found in README.md and docs/: the block reader is broken")
	}
}

// TestReadmeQuickStartIsWhatCIRuns checks the README's promise that its
// quick start is two commands, the demo and the whole suite, and that the
// second is what CI runs.
func TestReadmeQuickStartIsWhatCIRuns(t *testing.T) {
	readme, err := mddoc.Read(".", "README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(readme.Blocks, func(b mddoc.Block) bool { return b.Lang == "sh" })
	if i < 0 {
		t.Fatal("README.md has no sh block: the quick start is missing")
	}
	cmds, err := readme.Blocks[i].Commands()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmds {
		got = append(got, c.Text)
	}
	if want := []string{"make demo", "make test"}; !slices.Equal(got, want) {
		t.Fatalf("README.md's quick start runs %q, want %q", got, want)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ci)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "make test" {
		t.Fatalf(".ci/run ends with %q, not the README's %q", last, "make test")
	}
}

func TestDocsCommandsNameWhatExists(t *testing.T) {
	targets := makeTargets(t)
	modules := moduleDirs(t)
	n := 0
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
				n++
				for _, p := range c.Pipeline {
					if err := checkCommand(p, targets, modules); err != nil {
						t.Errorf("%s:%d: %s: %v", c.File, c.Line, c.Text, err)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no shell command found in README.md and docs/: the block reader is broken")
	}
}

// makePrograms are the programs a Makefile target runs with $(ARGS).
var makePrograms = map[string]string{"demo": "testbed/demo", "bench": "testbed/bench"}

// checkCommand checks that args names things that exist. Commands that
// need a cluster or a long build are not run anywhere; those testbed/docs
// runs are checked there.
func checkCommand(args []string, targets map[string]bool, modules map[string]string) error {
	switch {
	case args[0] == "make":
		return checkMake(args[1:], targets)
	case len(args) >= 3 && args[0] == "go" && args[1] == "get":
		if _, ok := modules[args[2]]; !ok {
			return fmt.Errorf("%s is none of this repository's modules (%v)", args[2], sortedKeys(modules))
		}
		return nil
	case len(args) >= 3 && args[0] == "go" && args[1] == "run":
		dir, err := packageDir(args[2], modules)
		if err != nil {
			return err
		}
		return checkFlags(dir, args[3:])
	case len(args) >= 2 && args[0] == "kubectl" && args[1] == "election":
		if len(args) < 3 {
			return fmt.Errorf("kubectl election without a command")
		}
		if !pluginCommands(args[2]) {
			return fmt.Errorf("kubectl election has no command %q (cmd/kubectl-election/cli)", args[2])
		}
		return nil
	case args[0] == "kubectl" && slices.Equal(args, []string{"kubectl", "apply", "-f", "-"}):
		return nil
	}
	return fmt.Errorf("a command docs_test.go does not know how to check: teach checkCommand, or run it in testbed/docs")
}

func checkMake(args []string, targets map[string]bool) error {
	var flags []string
	var named []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "ARGS="); ok {
			flags = strings.Fields(v)
			continue
		}
		named = append(named, a)
	}
	if len(named) != 1 {
		return fmt.Errorf("want one make target, got %q", named)
	}
	target := named[0]
	if !targets[target] {
		return fmt.Errorf("the Makefile has no target %q (it has %v)", target, sortedKeys(targets))
	}
	if flags == nil {
		return nil
	}
	dir, ok := makePrograms[target]
	if !ok {
		return fmt.Errorf("make %s takes no ARGS", target)
	}
	return checkFlags(dir, flags)
}

// checkFlags checks that every -flag in args is one the program in dir
// defines with package flag, and that each scenario named to -only is one
// the program asks about.
func checkFlags(dir string, args []string) error {
	src := readGoSources(dir)
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !regexp.MustCompile(`\.\w+\(\s*(?:&[\w.]+,\s*)?"` + regexp.QuoteMeta(name) + `",`).MatchString(src) {
			return fmt.Errorf("%s defines no flag -%s", dir, name)
		}
		if name == "only" {
			if !hasValue && i+1 < len(args) {
				value = args[i+1]
			}
			for _, s := range strings.Split(value, ",") {
				if !strings.Contains(src, fmt.Sprintf("want(%q)", s)) {
					return fmt.Errorf("%s has no scenario %q for -only", dir, s)
				}
			}
		}
	}
	return nil
}

func readGoSources(dir string) string {
	files, _ := filepath.Glob(filepath.Join(filepath.FromSlash(dir), "*.go"))
	var all strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil {
			all.Write(b)
		}
	}
	if strings.HasPrefix(dir, "cmd/fence-policy") {
		// cmd/fence-policy's flags are internal/fencepolicy's, which
		// kubectl election shares.
		all.WriteString(readGoSources("internal/fencepolicy"))
	}
	return all.String()
}

// packageDir is the directory of the package pkg of one of modules.
func packageDir(pkg string, modules map[string]string) (string, error) {
	best := ""
	for m := range modules {
		if (pkg == m || strings.HasPrefix(pkg, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return "", fmt.Errorf("%s is in none of this repository's modules", pkg)
	}
	dir := path.Join(modules[best], strings.TrimPrefix(strings.TrimPrefix(pkg, best), "/"))
	if files, _ := filepath.Glob(filepath.Join(filepath.FromSlash(dir), "*.go")); len(files) == 0 {
		return "", fmt.Errorf("%s: no Go package in %s", pkg, dir)
	}
	return dir, nil
}

// makeTargets returns the targets the Makefile defines.
func makeTargets(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	targets := map[string]bool{}
	rule := regexp.MustCompile(`^([A-Za-z][\w-]*)\s*:([^=]|$)`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := rule.FindStringSubmatch(sc.Text()); m != nil {
			targets[m[1]] = true
		}
	}
	if len(targets) == 0 {
		t.Fatal("no target found in the Makefile")
	}
	return targets
}

// moduleDirs maps the path of each module in the repository to its
// directory.
func moduleDirs(t *testing.T) map[string]string {
	t.Helper()
	modules := map[string]string{}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != ".") {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b); m != nil {
			modules[string(m[1])] = filepath.ToSlash(filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return modules
}

// pluginCommands reports whether kubectl election has the command name.
func pluginCommands(name string) bool {
	src := readGoSources("cmd/kubectl-election/cli")
	return regexp.MustCompile(`Use:\s*"` + regexp.QuoteMeta(name) + `[ "]`).MatchString(src)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
