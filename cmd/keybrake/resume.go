package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	brake "github.com/keybrake/keybrake"
)

func newResumeCmd(e *env, g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "resume [AGENT...]",
		Short: "remove the kill switch, or let the agents named go",
		Long: `Removes the kill switch file; agents are decided by the policy again.
With no AGENT it removes the file whole, whichever agents it names.

With AGENT, it removes only the lines that halt those agents: an agent
halted by 'keybrake halt AGENT', or tripped by its own rate limit (a rate
with halt: true writes "AGENT # tripped by RULE at TIME" there). The
file goes when no agent is left in it. A file that names no agent halts
every agent; resume it whole.

With --db postgres://... (or $KEYBRAKE_DATABASE_URL), it lifts the fleet's
halts in the shared store instead: of every agent and of the agents named
(trips included), or with AGENT only those agents' halts. Agents revoked
fleet-wide stay revoked ('keybrake restore AGENT --db').`,
		Example: `  keybrake resume                  # every agent
  keybrake resume refund-bot       # only refund-bot, after its rate limit tripped`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, agents []string) error {
			if isDatabaseURL(g.db) {
				return fleetResume(e, g.db, agents) // fleetstops.go
			}
			if len(agents) > 0 {
				return resumeAgents(e, haltPath(g, file), agents)
			}
			return resume(e, haltPath(g, file))
		},
	}
	haltFileFlag(cmd.Flags(), &file)
	return cmd
}

func resume(e *env, path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(e.stdout, "%s: no kill switch; nothing changed\n", path)
			return nil
		}
		return err
	}
	fmt.Fprintf(e.stdout, "%s: removed; agents are decided by the policy again\n", path)
	return nil
}

func resumeAgents(e *env, path string, agents []string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(e.stdout, "%s: no kill switch; nothing changed\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	if len(agentsIn(data)) == 0 {
		return fmt.Errorf("%s halts every agent, not by name; 'keybrake resume' with no agent removes it", path)
	}
	n, err := brake.ResumeAgents(path, agents)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(e.stdout, "%s: does not halt %s; nothing changed\n", path, strings.Join(agents, ", "))
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: %s may call again; decided by the policy\n", path, strings.Join(agents, ", "))
	return nil
}
