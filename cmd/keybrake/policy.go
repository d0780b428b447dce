package main

import "github.com/spf13/cobra"

// newPolicyCmd groups the commands on a policy file.
func newPolicyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "policy",
		Short:             "commands on a policy file: check",
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.AddCommand(newPolicyCheckCmd(e))
	needsCommand(cmd)
	return cmd
}
