package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

func newResumeCmd(e *env, g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "remove the kill switch",
		Long: `Removes the kill switch file; agents are decided by the policy again.
It removes the file whole, whichever agents it names.

With --db postgres://... (or $KEYBRAKE_DATABASE_URL), it lifts the fleet's
halts in the shared store instead: of every agent and of the agents named.
Agents revoked fleet-wide stay revoked ('keybrake restore AGENT --db').`,
		Args: noArgs(func(string) string {
			return "(resume removes the kill switch for every agent it names; to let one agent go, edit the file)"
		}),
		RunE: func(*cobra.Command, []string) error {
			if isDatabaseURL(g.db) {
				return fleetResume(e, g.db) // fleetstops.go
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
