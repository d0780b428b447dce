package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keybrake/keybrake/internal/atomicfile"
)

func newHaltCmd(e *env, g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "halt [AGENT...]",
		Short: "create the kill switch: every agent (or those named) stops at once",
		Long: `Creates the kill switch file beside the policy. While it exists, a running
Brake revokes every agent it names, or every agent when it names none,
whether or not the policy parses. Agents named here are added to those
already named; with no agent, the file is emptied and halts everyone.
'keybrake resume' removes it.

With --db postgres://... (or $KEYBRAKE_DATABASE_URL), the halt is written to
the fleet's shared store instead of the file: every process and keybrake
serve replica on that store, on every machine, refuses the agents' next
calls within a second, naming this command, host and user as the source.
'keybrake resume --db' lifts it.`,
		Example: `  keybrake halt refund-bot --policy /etc/keybrake/keybrake.yaml
  keybrake halt                 # every agent
  keybrake halt refund-bot --db postgres://keybrake@db.internal/keybrake   # the whole fleet`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if isDatabaseURL(g.db) {
				return fleetHalt(e, g.db, args) // fleetstops.go
			}
			return halt(e, haltPath(g, file), args)
		},
	}
	haltFileFlag(cmd.Flags(), &file)
	return cmd
}

// haltFileFlag adds --file, the kill switch, to halt and resume.
func haltFileFlag(fs *pflag.FlagSet, file *string) {
	fs.StringVar(file, "file", "", "the kill switch `file` (default: the policy file + \".halt\")")
}

// haltPath is the kill switch file: --file, else the policy's.
func haltPath(g *globals, file string) string {
	if file != "" {
		return file
	}
	return g.policy + ".halt"
}

func halt(e *env, path string, agents []string) error {
	var names []string
	content := ""
	if len(agents) > 0 {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err == nil && len(agentsIn(old)) == 0 {
			fmt.Fprintf(e.stdout, "%s: every agent is already halted\n", path)
			return nil
		}
		names = append(agentsIn(old), agents...)
		// The lines already there stay as written: a trip's says which
		// rate limit halted its agent.
		content = string(old)
		if content != "" && !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		have := agentsIn(old)
		for _, a := range dedupe(agents) {
			if !slices.Contains(have, a) {
				content += a + "\n"
			}
		}
	}
	if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if len(names) == 0 {
		fmt.Fprintf(e.stdout, "%s: every agent halted; 'keybrake resume' undoes it\n", path)
	} else {
		fmt.Fprintf(e.stdout, "%s: halted %s; 'keybrake resume' undoes it\n", path, strings.Join(dedupe(names), ", "))
	}
	return nil
}

// agentsIn reads a kill switch file: an agent a line, # comments.
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
