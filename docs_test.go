package keybrake_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/vendors/builtin"
)

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file string
	line int // of the opening fence
	lang string
	text string
}

// docBlocks are the fenced blocks of README.md and docs/*.md.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"README.md"}, files...)
	var out []docBlock
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cur *docBlock
		var body strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			fence := strings.HasPrefix(strings.TrimSpace(line), "```")
			switch {
			case cur == nil && fence:
				cur = &docBlock{file: f, line: n, lang: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "```"))}
				body.Reset()
			case cur != nil && fence:
				cur.text = body.String()
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				body.WriteString(line)
				body.WriteByte('\n')
			}
		}
		if cur != nil {
			t.Fatalf("%s:%d: code block never closed", f, cur.line)
		}
	}
	return out
}

var policyVersion = regexp.MustCompile(`(?m)^version: 1\s*$`)

// TestDocsYAML parses every yaml block of the docs: a block with
// "version: 1" is a Keybrake policy and must pass policy.ParseFor with the
// built-in vendors, as keybrake policy check reads it; any other yaml block
// (a fragment, a keys file) must at least be YAML.
func TestDocsYAML(t *testing.T) {
	policies := 0
	for _, b := range docBlocks(t) {
		if b.lang != "yaml" {
			continue
		}
		name := fmt.Sprintf("%s:%d", b.file, b.line)
		if policyVersion.MatchString(b.text) {
			policies++
			if _, err := policy.ParseFor(name, []byte(b.text), builtin.Vendors()); err != nil {
				t.Errorf("%s: policy does not parse: %v", name, err)
			}
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(b.text), &v); err != nil {
			t.Errorf("%s: not YAML: %v", name, err)
		}
	}
	if policies < 3 {
		t.Errorf("found %d policy blocks in README.md and docs/; the extraction is broken", policies)
	}
}

// TestDocsGo builds every go block of the docs. Each must be a whole file
// (it starts with package), so what a reader copies is what compiles. All
// blocks are built in one temporary module, one package directory each,
// with one go build, the module's go.sum and a replace onto this tree.
func TestDocsGo(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	names := map[string]string{} // package dir -> file:line
	for _, b := range docBlocks(t) {
		if b.lang != "go" {
			continue
		}
		where := fmt.Sprintf("%s:%d", b.file, b.line)
		if !strings.HasPrefix(strings.TrimSpace(b.text), "package ") {
			t.Errorf("%s: a go block must be a whole file starting with package", where)
			continue
		}
		pkg := fmt.Sprintf("b%03d_%s_%d", len(names), strings.NewReplacer("/", "_", ".", "_").Replace(b.file), b.line)
		names[pkg] = where
		if err := os.MkdirAll(filepath.Join(dir, pkg), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pkg, "main.go"), []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(names) < 3 {
		t.Fatalf("found %d go blocks in README.md and docs/; the extraction is broken", len(names))
	}
	rootMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go [0-9.]+$`).Find(rootMod)
	gomod := fmt.Sprintf("module keybrakedocs\n\n%s\n\nrequire github.com/keybrake/keybrake v0.0.0\n\nreplace github.com/keybrake/keybrake => %s\n", goLine, root)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := string(out)
		for pkg, where := range names {
			msg = strings.ReplaceAll(msg, pkg+"/main.go", where+" (block)")
		}
		t.Fatalf("go blocks do not build: %v\n%s", err, msg)
	}
}
