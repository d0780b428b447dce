package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/internal/atomicfile"
	"github.com/keybrake/keybrake/policy"
)

func newRevokeCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke AGENT",
		Short: "revoke an agent in the policy file: its next call answers 401",
		Long: `Revokes AGENT in the policy file. The file is edited in place (comments and
formatting kept), checked, and replaced atomically; a running Brake picks it
up within milliseconds. For a stop that needs no valid policy at all, use
'keybrake halt AGENT'. 'keybrake restore AGENT' undoes it.

With --db postgres://... (or $KEYBRAKE_DATABASE_URL), the revocation is
written to the fleet's shared store instead, and the policy file is left
alone: every process and keybrake serve replica on the store refuses the
agent's next call within a second, whichever policy file it reads.`,
		Example: `  keybrake revoke refund-bot --policy /etc/keybrake/keybrake.yaml
  keybrake revoke refund-bot --db postgres://keybrake@db.internal/keybrake`,
		Args: exactArgs(1, "one AGENT"),
		RunE: func(_ *cobra.Command, args []string) error {
			if isDatabaseURL(g.db) {
				return fleetRevoke(e, g.db, args[0], true) // fleetstops.go
			}
			return setRevoked(e, g.policy, args[0], true)
		},
	}
}

// setRevoked sets revoked: on agent in the policy file at path.
func setRevoked(e *env, path, agent string, revoked bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w\n  (set --policy or $KEYBRAKE_POLICY to the agent's policy file)", err)
	}
	out, err := policy.SetRevoked(path, data, agent, revoked)
	if err != nil {
		return err
	}
	if bytes.Equal(out, data) {
		fmt.Fprintf(e.stdout, "%s: agent %s is already %s; nothing changed\n", path, agent, state(revoked))
		return nil
	}
	if err := atomicfile.Write(path, out, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	p, _ := policy.Parse(path, out)
	fmt.Fprintf(e.stdout, "%s: agent %s %s (policy %s)\n", path, agent, state(revoked), p.Hash)
	return nil
}

func state(revoked bool) string {
	if revoked {
		return "revoked"
	}
	return "restored"
}
