package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/approval"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// approvals, approve and deny: the operator's side of a held call
// (approve_above and approve in the policy). A running agent's Brake
// decides on its admin socket, so its lock on the database file is no
// obstacle and it audits and pages as Brake.Approve does; with no agent
// running the file is opened read-write; a postgres:// store is written
// directly, and every process on it sees the decision at its next call.

func newApprovalsCmd(e *env, g *globals) *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "list the held calls waiting for a person's approval",
		Long: `Lists the approvals still open: requested by a held call and not yet
approved, or approved and not yet used. Each line says exactly what it
would let through once: agent, vendor, method, path, parameters (as the
audit log keeps them), amount and run.`,
		Example: `  keybrake approvals
  keybrake approve apr_5f0c1e2d3a4b5c6d --by alice`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return withSource(g.db, nil, func(src source) error {
				l, ok := src.Source.(approvalLister)
				if !ok {
					return fmt.Errorf("%s cannot list approvals", src.where)
				}
				list, err := l.Approvals(context.Background(), time.Now().Add(-since))
				if err != nil {
					return err
				}
				printApprovals(e.stdout, list, time.Now())
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&since, "since", approval.Lookback, "read the held calls of this long `ago` to find them")
	return cmd
}

// approvalLister is a source that lists the open approvals: admin.Local,
// the admin socket's Client, a shared store's Local.
type approvalLister interface {
	Approvals(ctx context.Context, since time.Time) ([]*approval.Approval, error)
}

func printApprovals(w io.Writer, list []*approval.Approval, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no approvals open")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tASKED\tUNTIL\tRULE\tWHAT")
	for _, a := range list {
		until := a.Request.Time.Add(approval.DefaultTTL)
		state := string(a.State(now))
		if d := a.Decision; d != nil {
			until = d.Until
			state += " by " + d.By
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, state, a.Request.Time.Local().Format(time.DateTime),
			until.Local().Format(time.DateTime), a.Request.Rule, a.Describe())
	}
	tw.Flush()
}

func newApproveCmd(e *env, g *globals) *cobra.Command {
	var by string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "let a held call through, once",
		Long: `Approves the held call ID (apr_..., in the agent's refusal and in
'keybrake approvals'): the agent's next call that is exactly that request
is admitted once, still checked against every cap and limit. The same
request again needs a new approval; any other request (amount +1, another
destination) is another approval. It prints exactly what it approved.
An approval not used within --ttl expires. Audited.`,
		Example: `  keybrake approve apr_5f0c1e2d3a4b5c6d --by alice --ttl 15m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return decide(e, g, args[0], true, by, ttl)
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "who approves, as the audit log keeps it (default: the user and host)")
	cmd.Flags().DurationVar(&ttl, "ttl", approval.DefaultTTL, "how long the approval stands unused")
	return cmd
}

func newDenyCmd(e *env, g *globals) *cobra.Command {
	var by string
	cmd := &cobra.Command{
		Use:   "deny ID",
		Short: "refuse a held call",
		Long: `Denies the held call ID: calls of exactly that request are refused
(blocked, keybrake_approval_denied) for the next hour rather than held
again, so an agent that retries is told no. Audited.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return decide(e, g, args[0], false, by, 0)
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "who denies, as the audit log keeps it (default: the user and host)")
	return cmd
}

// decide approves or denies id where the database lives.
func decide(e *env, g *globals, id string, approve bool, by string, ttl time.Duration) error {
	if by == "" {
		by = whoami()
	}
	if !approval.ValidID(id) {
		return fmt.Errorf("%q is not an approval id: apr_ and 16 hex digits, as the refusal and 'keybrake approvals' show", id)
	}
	ctx := context.Background()
	var a *approval.Approval
	var err error
	switch {
	case isDatabaseURL(g.db):
		var st store.Store
		if st, err = openShared(ctx, g.db); err != nil {
			return err
		}
		defer st.Close()
		a, err = decideIn(ctx, st, id, approve, by, ttl)
	default:
		a, err = admin.Dial(g.db+".sock").DecideApproval(ctx, id, approve, by, ttl)
		if errors.Is(err, admin.ErrNoServer) {
			a, err = decideInFile(ctx, g.db, id, approve, by, ttl)
		}
	}
	if err != nil {
		return err
	}
	verb := "denied"
	if approve {
		verb = "approved, once"
	}
	fmt.Fprintf(e.stdout, "%s %s until %s:\n  %s\n  rule %s\n", a.ID, verb, a.Decision.Until.Local().Format(time.DateTime),
		a.Describe(), a.Request.Rule)
	return nil
}

// decideInFile decides in a database file no agent holds.
func decideInFile(ctx context.Context, db, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error) {
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("no database at %s, and no agent answers on %s.sock", db, db)
	}
	st, err := bolt.Open(db, &bolt.Options{LockTimeout: lockWait})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%s is locked by another process (the running agent?) and nothing answers on %s.sock: "+
			"turn its admin socket on, or approve with Brake.Approve or on its incident page", db, db)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return decideIn(ctx, st, id, approve, by, ttl)
}

// decideIn decides id in st and audits it, as Brake.Approve does.
func decideIn(ctx context.Context, st store.Store, id string, approve bool, by string, ttl time.Duration) (*approval.Approval, error) {
	a, err := approval.NewBook(st, nil).Decide(ctx, id, approve, by, ttl)
	if err != nil {
		return nil, err
	}
	rec := approval.Decided(a, time.Now(), "")
	if _, err := st.Append(ctx, &rec); err != nil {
		return a, fmt.Errorf("%s is decided (%s), but its audit record could not be written: %w", id, rec.Event, err)
	}
	return a, nil
}

// whoami names the operator: user@host.
func whoami() string {
	host, _ := os.Hostname()
	who := userName() // fleetstops.go
	if who == "" {
		who = "unknown"
	}
	return strings.TrimSuffix(who+"@"+host, "@")
}
