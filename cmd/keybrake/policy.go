package main

import "github.com/spf13/cobra"

// newPolicyCmd groups the commands on a policy file.
func newPolicyCmd(e *env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "policy",
		Short:             "commands on policy files: check, diff, replay",
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.AddCommand(newPolicyCheckCmd(e), newPolicyDiffCmd(e), newPolicyReplayCmd(e, g))
	needsCommand(cmd)
	return cmd
}
