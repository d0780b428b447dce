package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/policy"
)

// emptyDir fails t if dir holds anything: a command run there wrote a
// file it should have written beside the policy.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s appeared in the working directory", e.Name())
	}
}

// TestHaltFlagAfterAgent is the halt that went wrong: with the flag after
// the agent, from another directory, Go's flag package took "--policy" and
// the path for agents and wrote ./keybrake.yaml.halt instead.
func TestHaltFlagAfterAgent(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	wd := t.TempDir()
	out, errs, code := keybrakeIn(t, wd, nil, "halt", "refund-bot", "--policy", p)
	if code != 0 || errs != "" || !strings.Contains(out, p+".halt: halted refund-bot;") {
		t.Fatalf("halt: %d %q %q", code, out, errs)
	}
	if b, err := os.ReadFile(p + ".halt"); err != nil || string(b) != "refund-bot\n" {
		t.Errorf("halt file beside the policy: %q %v, want refund-bot alone", b, err)
	}
	emptyDir(t, wd)
}

// TestRevokeFlagAfterAgent is the revoke that printed the usage and
// revoked nothing.
func TestRevokeFlagAfterAgent(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	wd := t.TempDir()
	out, errs, code := keybrakeIn(t, wd, nil, "revoke", "refund-bot", "--policy", p)
	if code != 0 || errs != "" || !strings.Contains(out, "agent refund-bot revoked") {
		t.Fatalf("revoke: %d %q %q", code, out, errs)
	}
	pol, err := policy.Load(p)
	if err != nil {
		t.Fatalf("the policy no longer parses: %v", err)
	}
	if a := pol.Agents["refund-bot"]; a == nil || !a.Revoked {
		t.Errorf("refund-bot after revoke: %+v", a)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "  refund-bot:\n    revoked: true\n") {
		t.Errorf("file after revoke:\n%s", b)
	}
	emptyDir(t, wd)
}

func TestVersionFlag(t *testing.T) {
	out, errs, code := keybrake(t, nil, "--version")
	if code != 0 || errs != "" || !regexp.MustCompile(`^keybrake \S+ \(revision [0-9a-f]+(, modified)?\)\n$|^keybrake \S+ \(revision unknown\)\n$`).MatchString(out) {
		t.Errorf("--version: %d %q %q", code, out, errs)
	}
}

func TestVersion(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"go install @v1.2.0", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, true, "keybrake v1.2.0 (revision unknown)"},
		{"go build in a clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "486468f7eecc", "vcs.modified", "false")}, true, "keybrake devel (revision 486468f7eecc)"},
		{"go build with edits", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202100949-486468f7eecc+dirty"},
			Settings: settings("vcs.revision", "486468f7eecc", "vcs.modified", "true")}, true,
			"keybrake v0.0.0-20261202100949-486468f7eecc+dirty (revision 486468f7eecc, modified)"},
		{"-buildvcs=false", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "keybrake devel (revision unknown)"},
		{"no build info", nil, false, "keybrake devel (revision unknown)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := version(tt.bi, tt.ok); got != tt.want {
				t.Errorf("version = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUsageErrors: a command line keybrake cannot act on is one line that
// says how to fix it, exit 2, and nothing done.
func TestUsageErrors(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	tests := []struct {
		name string
		args []string
		says []string
	}{
		{"unknown flag", []string{"halt", "refund-bot", "--frobnicate", "--policy", p},
			[]string{"unknown flag: --frobnicate (halt takes --color, --db, --file, --policy)", "see 'keybrake halt --help'"}},
		{"misspelt flag", []string{"halt", "refund-bot", "--polcy", p}, []string{"unknown flag: --polcy (did you mean --policy?)", "see 'keybrake halt --help'"}},
		{"flag without its value", []string{"halt", "refund-bot", "--policy"}, []string{"flag needs an argument: --policy: give it as --policy file", "see 'keybrake halt --help'"}},
		{"bad value", []string{"audit", "summary", "--by", "soon"}, []string{`invalid argument "soon" for "--by" flag`, "(--by: the length of each period", "see 'keybrake audit summary --help'"}},
		{"two agents to revoke", []string{"revoke", "refund-bot", "other-bot", "--policy", p}, []string{"revoke takes one AGENT, got 2 (refund-bot other-bot)", "see 'keybrake revoke --help'"}},
		{"an agent to status", []string{"status", "refund-bot", "--policy", p}, []string{`unexpected argument "refund-bot"`, "see 'keybrake status --help'"}},
		{"misspelt command", []string{"revok", "refund-bot"}, []string{`unknown command "revok" (did you mean revoke?)`, "see 'keybrake --help'"}},
		{"misspelt subcommand", []string{"policy", "chek", p}, []string{`unknown command "chek" for policy (did you mean check?)`, "see 'keybrake policy --help'"}},
		{"no subcommand", []string{"policy"}, []string{"policy takes a command: check", "see 'keybrake policy --help'"}},
		{"unknown shell", []string{"completion", "tcsh"}, []string{`unknown command "tcsh" for completion`, "see 'keybrake completion --help'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wd := t.TempDir()
			out, errs, code := keybrakeIn(t, wd, nil, tt.args...)
			if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "keybrake: ") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q: want exit 2 and one line", tt.args, code, out, errs)
			}
			for _, s := range tt.says {
				if !strings.Contains(errs, s) {
					t.Errorf("%q: %q lacks %q", tt.args, errs, s)
				}
			}
			emptyDir(t, wd)
		})
	}
	if _, err := os.Stat(p + ".halt"); !os.IsNotExist(err) {
		t.Errorf("a halt that did not parse made the kill switch: %v", err)
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "# bash completion V2 for keybrake",
		"zsh":  "#compdef keybrake",
		"fish": "complete -c keybrake",
	} {
		t.Run(shell, func(t *testing.T) {
			out, errs, code := keybrake(t, nil, "completion", shell)
			if code != 0 || errs != "" || !strings.Contains(out, want) {
				t.Errorf("completion %s: %d %q, %d bytes lacking %q", shell, code, errs, len(out), want)
			}
		})
	}
}

// TestRunInProcess runs a command through run, as main does, with the
// environment given rather than the process's.
func TestRunInProcess(t *testing.T) {
	p := writePolicy(t, cliPolicy)
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string {
		if k == "KEYBRAKE_POLICY" {
			return p
		}
		return ""
	}}
	if code := run(e, []string{"halt", "refund-bot"}); code != 0 || stderr.Len() != 0 {
		t.Fatalf("halt: %d %q", code, stderr.String())
	}
	if b, _ := os.ReadFile(p + ".halt"); string(b) != "refund-bot\n" {
		t.Errorf("$KEYBRAKE_POLICY's halt file: %q", b)
	}
	stdout.Reset()
	if code := run(e, []string{"policy", "check", filepath.Join(t.TempDir(), "none.yaml")}); code != 1 ||
		!strings.HasPrefix(stderr.String(), "keybrake: ") || !strings.Contains(stderr.String(), "no such file") {
		t.Errorf("policy check of a missing file: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(e, nil); code != 2 || !strings.Contains(stdout.String(), "Exit status:") {
		t.Errorf("no command: %d %q", code, stdout.String())
	}
}
