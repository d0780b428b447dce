package main

import "github.com/spf13/cobra"

// newPolicyCmd groups the commands on a policy file.
func newPolicyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "policy",
		Short:             "commands on policy files: check, diff",
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.AddCommand(newPolicyCheckCmd(e), newPolicyDiffCmd(e))
	needsCommand(cmd)
	return cmd
}
