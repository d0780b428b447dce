package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/keybrake/keybrake/internal/atomicfile"
	"github.com/keybrake/keybrake/policy"
)

func init() {
	register("revoke", "revoke an agent in the policy file: its next call answers 401", func(e *env, args []string) int {
		return setRevoked(e, args, true)
	})
	register("restore", "undo revoke: the agent's calls are decided by its rules again", func(e *env, args []string) int {
		return setRevoked(e, args, false)
	})
	register("halt", "create the kill switch: every agent (or those named) stops at once", halt)
	register("resume", "remove the kill switch", resume)
}

func setRevoked(e *env, args []string, revoked bool) int {
	name, verb := "revoke", "revokes"
	if !revoked {
		name, verb = "restore", "restores"
	}
	fs := flags(e, name, "[--policy FILE] AGENT", fmt.Sprintf(`
%s AGENT in the policy file. The file is edited in place (comments and
formatting kept), checked, and replaced atomically; a running Brake picks it
up within milliseconds. For a stop that needs no valid policy at all, use
'keybrake halt AGENT'.`, strings.ToUpper(verb[:1])+verb[1:]))
	path := policyFlag(e, fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	agent := fs.Arg(0)
	data, err := os.ReadFile(*path)
	if err != nil {
		return fail(e, "%v\n  (set --policy or $KEYBRAKE_POLICY to the agent's policy file)", err)
	}
	out, err := policy.SetRevoked(*path, data, agent, revoked)
	if err != nil {
		return fail(e, "%v", err)
	}
	if bytes.Equal(out, data) {
		fmt.Fprintf(e.stdout, "%s: agent %s is already %s; nothing changed\n", *path, agent, state(revoked))
		return 0
	}
	if err := atomicfile.Write(*path, out, 0o600); err != nil {
		return fail(e, "writing %s: %v", *path, err)
	}
	p, _ := policy.Parse(*path, out)
	fmt.Fprintf(e.stdout, "%s: agent %s %s (policy %s)\n", *path, agent, state(revoked), p.Hash)
	return 0
}

func state(revoked bool) string {
	if revoked {
		return "revoked"
	}
	return "restored"
}

func haltFlags(e *env, name, args, about string) *flagSetWithHalt {
	fs := flags(e, name, args, about)
	h := &flagSetWithHalt{FlagSet: fs}
	h.policy = policyFlag(e, fs)
	h.file = fs.String("file", "", "the kill switch file (default: the policy file + \".halt\")")
	return h
}

func halt(e *env, args []string) int {
	h := haltFlags(e, "halt", "[--policy FILE] [--file HALTFILE] [AGENT...]", `
Creates the kill switch file beside the policy. While it exists, a running
Brake revokes every agent it names, or every agent when it names none,
whether or not the policy parses. Agents named here are added to those
already named; with no agent, the file is emptied and halts everyone.`)
	if code, ok := parse(h.FlagSet, args); !ok {
		return code
	}
	path := h.haltPath()
	var names []string
	if h.NArg() > 0 {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(e, "%v", err)
		}
		if err == nil && len(agentsIn(old)) == 0 {
			fmt.Fprintf(e.stdout, "%s: every agent is already halted\n", path)
			return 0
		}
		names = append(agentsIn(old), h.Args()...)
	}
	content := strings.Join(dedupe(names), "\n")
	if content != "" {
		content += "\n"
	}
	if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
		return fail(e, "writing %s: %v", path, err)
	}
	if len(names) == 0 {
		fmt.Fprintf(e.stdout, "%s: every agent halted; 'keybrake resume' undoes it\n", path)
	} else {
		fmt.Fprintf(e.stdout, "%s: halted %s; 'keybrake resume' undoes it\n", path, strings.Join(dedupe(names), ", "))
	}
	return 0
}

func resume(e *env, args []string) int {
	h := haltFlags(e, "resume", "[--policy FILE] [--file HALTFILE]", `
Removes the kill switch file; agents are decided by the policy again.`)
	if code, ok := parse(h.FlagSet, args); !ok {
		return code
	}
	if h.NArg() != 0 {
		h.Usage()
		return 2
	}
	path := h.haltPath()
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(e.stdout, "%s: no kill switch; nothing changed\n", path)
			return 0
		}
		return fail(e, "%v", err)
	}
	fmt.Fprintf(e.stdout, "%s: removed; agents are decided by the policy again\n", path)
	return 0
}

type flagSetWithHalt struct {
	*flag.FlagSet
	policy *string
	file   *string
}

func (h *flagSetWithHalt) haltPath() string {
	if *h.file != "" {
		return *h.file
	}
	return *h.policy + ".halt"
}

func agentsIn(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
