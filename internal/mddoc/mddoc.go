// Package mddoc reads the repository's Markdown documentation (README.md
// and docs/*.md) for the tests that keep it true: its fenced code blocks,
// the Go source each Go block compiles as, the shell commands of each shell
// block, its relative links and its headings' anchors. The root module's
// docs_test.go checks links and what commands name; testbed/docs compiles
// the Go blocks and runs the cheap commands.
//
// A Go block is compiled as it stands when it is a whole file (it has a
// package clause). Any other Go block is a fragment, and must come right
// after an HTML comment, invisible on the rendered page, that opens with
// "<!-- go-wrap" and holds the file it is compiled in, with a line
// "// block" where the fragment goes. The wrapper names what the fragment
// takes for granted (imports, variables in scope), so that a reader of the
// Markdown source sees exactly what was compiled.
package mddoc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Placeholder is the line of a go-wrap comment that the fragment replaces.
const Placeholder = "// block"

const wrapOpen = "<!-- go-wrap"

// Files returns README.md and docs/*.md, relative to root, the repository's
// top directory.
func Files(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files := []string{"README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		files = append(files, filepath.ToSlash(rel))
	}
	slices.Sort(files[1:])
	return files, nil
}

// Block is a fenced code block.
type Block struct {
	// File is the Markdown file, relative to the repository's top.
	File string
	// Line is the line number of the block's first line of content.
	Line int
	// Lang is the fence's info string ("go", "sh", or empty).
	Lang string
	// Text is the content, without the fences, and unindented.
	Text string
	// Wrap is the go-wrap comment right before the block, without its
	// opening and closing markers; empty if there is none.
	Wrap string
	// WrapLine is the line number of Wrap's first line.
	WrapLine int
}

// Doc is one Markdown file, read.
type Doc struct {
	File   string
	Lines  []string
	Blocks []Block
	// prose marks the lines outside fenced blocks and HTML comments, where
	// links and headings count.
	prose []bool
}

// Read reads file (relative to root) and finds its blocks.
func Read(root, file string) (*Doc, error) {
	f, err := os.Open(filepath.Join(root, file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Doc{File: file}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		d.Lines = append(d.Lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	d.prose = make([]bool, len(d.Lines))
	var wrap []string
	wrapLine, wrapEnd := 0, -1
	for i := 0; i < len(d.Lines); i++ {
		line := d.Lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "<!--"):
			start := i
			for !strings.Contains(d.Lines[i], "-->") {
				i++
				if i == len(d.Lines) {
					return nil, fmt.Errorf("%s:%d: HTML comment never closed", file, start+1)
				}
			}
			if strings.HasPrefix(trimmed, wrapOpen) {
				if !strings.HasSuffix(strings.TrimSpace(d.Lines[i]), "-->") || i == start {
					return nil, fmt.Errorf("%s:%d: a go-wrap comment must open and close on lines of their own", file, start+1)
				}
				wrap, wrapLine, wrapEnd = d.Lines[start+1:i], start+2, i
			}
		case strings.HasPrefix(trimmed, "```"):
			indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
			b := Block{File: file, Line: i + 2, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			if wrapEnd >= 0 && onlyBlankBetween(d.Lines, wrapEnd, i) {
				b.Wrap, b.WrapLine = strings.Join(wrap, "\n"), wrapLine
			}
			start := i
			var text []string
			for i++; ; i++ {
				if i == len(d.Lines) {
					return nil, fmt.Errorf("%s:%d: code block never closed", file, start+1)
				}
				if strings.HasPrefix(strings.TrimSpace(d.Lines[i]), "```") {
					break
				}
				text = append(text, strings.TrimPrefix(d.Lines[i], indent))
			}
			b.Text = strings.Join(text, "\n")
			d.Blocks = append(d.Blocks, b)
			wrapEnd = -1
		default:
			d.prose[i] = true
		}
	}
	return d, nil
}

func onlyBlankBetween(lines []string, from, to int) bool {
	for _, l := range lines[from+1 : to] {
		if strings.TrimSpace(l) != "" {
			return false
		}
	}
	return true
}

// GoSource is the file a Go block compiles as, with //line directives that
// make a compiler's messages name the Markdown file and its lines. path is
// how the messages should name the file.
func (b Block) GoSource(path string) (string, error) {
	if b.Wrap == "" {
		if !hasPackageClause(b.Text) {
			return "", fmt.Errorf("%s:%d: a Go block must be a whole file (with a package clause) or follow a %q comment", b.File, b.Line, wrapOpen+" ... -->")
		}
		return fmt.Sprintf("//line %s:%d\n%s\n", path, b.Line, b.Text), nil
	}
	lines := strings.Split(b.Wrap, "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == Placeholder })
	if at < 0 {
		return "", fmt.Errorf("%s:%d: the go-wrap comment has no %q line for the block to go in", b.File, b.WrapLine, Placeholder)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "//line %s:%d\n%s\n", path, b.WrapLine, strings.Join(lines[:at], "\n"))
	fmt.Fprintf(&s, "//line %s:%d\n%s\n", path, b.Line, b.Text)
	fmt.Fprintf(&s, "//line %s:%d\n%s\n", path, b.WrapLine+at+1, strings.Join(lines[at+1:], "\n"))
	return s.String(), nil
}

func hasPackageClause(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.HasPrefix(l, "package ")
	}
	return false
}

// Link is a Markdown link or image, [text](Target).
type Link struct {
	File   string
	Line   int
	Target string
}

var (
	linkRE     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpanRE = regexp.MustCompile("`[^`]*`")
	assignRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// Links returns the links in d's prose (outside code blocks, code spans and
// HTML comments).
func (d *Doc) Links() []Link {
	var links []Link
	for i, line := range d.Lines {
		if !d.prose[i] {
			continue
		}
		for _, m := range linkRE.FindAllStringSubmatch(codeSpanRE.ReplaceAllString(line, "``"), -1) {
			links = append(links, Link{File: d.File, Line: i + 1, Target: m[1]})
		}
	}
	return links
}

// Anchors returns the anchors GitHub gives d's headings.
func (d *Doc) Anchors() map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for i, line := range d.Lines {
		if !d.prose[i] || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := Slug(title)
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// Slug is the anchor GitHub makes of a heading: lower case, spaces turned
// into hyphens, and every other character but letters, digits, hyphens and
// underscores dropped.
func Slug(title string) string {
	var s strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			s.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			s.WriteRune(r)
		}
	}
	return s.String()
}

// Command is one command line of a shell block: a pipeline of commands,
// each a list of words, after any VAR=value assignments.
type Command struct {
	File string
	Line int
	// Text is the line as written, comment dropped.
	Text string
	// Env holds the assignments before the first command.
	Env []string
	// Pipeline holds each command of the line's pipeline.
	Pipeline [][]string
}

// Commands returns the commands of a shell block (Lang "sh" or "bash").
// It knows the little of the shell that the docs use: words, quotes, a
// trailing comment, assignments before a command, and pipes.
func (b Block) Commands() ([]Command, error) {
	var cmds []Command
	for n, line := range strings.Split(b.Text, "\n") {
		words, err := shellWords(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", b.File, b.Line+n, err)
		}
		if len(words) == 0 {
			continue
		}
		c := Command{File: b.File, Line: b.Line + n, Text: strings.TrimSpace(stripComment(line))}
		for len(words) > 0 && assignRE.MatchString(words[0]) {
			c.Env, words = append(c.Env, words[0]), words[1:]
		}
		var cur []string
		for _, w := range words {
			if w == "|" {
				c.Pipeline, cur = append(c.Pipeline, cur), nil
				continue
			}
			cur = append(cur, w)
		}
		c.Pipeline = append(c.Pipeline, cur)
		for _, p := range c.Pipeline {
			if len(p) == 0 {
				return nil, fmt.Errorf("%s:%d: empty command in pipeline %q", b.File, c.Line, c.Text)
			}
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// stripComment drops a comment that starts with " #" outside quotes.
func stripComment(line string) string {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}

func shellWords(line string) ([]string, error) {
	line = stripComment(line)
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case r == '|':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
			words = append(words, "|")
		case r == ';' || r == '&' || r == '<' || r == '>' || r == '`' || r == '(' || r == ')':
			return nil, fmt.Errorf("%q: the docs' shell commands are simple commands and pipes; %q is not checked", line, r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q: unclosed quote", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
