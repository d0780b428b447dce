package main

import "github.com/spf13/cobra"

func newRestoreCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore AGENT",
		Short: "undo revoke: the agent's calls are decided by its rules again",
		Long: `Restores AGENT in the policy file, undoing 'keybrake revoke'. The file is
edited in place (comments and formatting kept), checked, and replaced
atomically; a running Brake picks it up within milliseconds. An agent the
kill switch names stays halted: 'keybrake resume' removes it.

With --db postgres://... (or $KEYBRAKE_DATABASE_URL), it lifts the fleet's
revocation of AGENT in the shared store instead (a revoked: true in the
policy file stays).`,
		Example: `  keybrake restore refund-bot --policy /etc/keybrake/keybrake.yaml
  keybrake restore refund-bot --db postgres://keybrake@db.internal/keybrake`,
		Args: exactArgs(1, "one AGENT"),
		RunE: func(_ *cobra.Command, args []string) error {
			if isDatabaseURL(g.db) {
				return fleetRevoke(e, g.db, args[0], false) // fleetstops.go
			}
			return setRevoked(e, g.policy, args[0], false)
		},
	}
}
