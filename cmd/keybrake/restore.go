package main

import "github.com/spf13/cobra"

func newRestoreCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore AGENT",
		Short: "undo revoke: the agent's calls are decided by its rules again",
		Long: `Restores AGENT in the policy file, undoing 'keybrake revoke'. The file is
edited in place (comments and formatting kept), checked, and replaced
atomically; a running Brake picks it up within milliseconds. An agent the
kill switch names stays halted: 'keybrake resume' removes it.`,
		Example: `  keybrake restore refund-bot --policy /etc/keybrake/keybrake.yaml`,
		Args:    exactArgs(1, "one AGENT"),
		RunE: func(_ *cobra.Command, args []string) error {
			return setRevoked(e, g.policy, args[0], false)
		},
	}
}
