package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/vendors/builtin"
)

// vendorNames lists the built-in vendors for help text.
func vendorNames() string {
	var names []string
	for _, v := range builtin.Vendors() {
		names = append(names, v.Name())
	}
	return strings.Join(names, ", ")
}

// filters are the flags that select records, shared by audit and audit
// summary.
type filters struct {
	since, until                  string
	agent, vendor, decision, cust string
}

func filterFlags(fs *pflag.FlagSet, defSince string) *filters {
	f := &filters{}
	fs.StringVar(&f.since, "since", defSince, "from this `time`: a duration before now (90s, 5m, 1h30m) or RFC 3339")
	fs.StringVar(&f.until, "until", "", "before this `time`, as --since")
	fs.StringVar(&f.agent, "agent", "", "only this `agent`")
	fs.StringVar(&f.vendor, "vendor", "", "only this `vendor` ("+vendorNames()+")")
	fs.StringVar(&f.decision, "decision", "", "only this `decision`: allowed, blocked, scoped, capped, revoked, error")
	fs.StringVar(&f.cust, "customer", "", "only calls that touch this `customer`")
	return f
}

// query reads the filters; an error is misuse.
func (f *filters) query(now time.Time) (audit.Query, error) {
	q := audit.Query{Agent: f.agent, Vendor: f.vendor, Customer: f.cust, Decision: policy.Decision(f.decision)}
	var err error
	if f.since != "" {
		if q.Since, err = parseWhen("since", f.since, now); err != nil {
			return q, err
		}
	}
	if f.until != "" {
		if q.Until, err = parseWhen("until", f.until, now); err != nil {
			return q, err
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, fmt.Errorf("--since %s is not before --until %s", q.Since.UTC().Format(time.RFC3339), q.Until.UTC().Format(time.RFC3339))
	}
	if q.Decision != "" && !q.Decision.Valid() {
		return q, fmt.Errorf("--decision %q: want allowed, blocked, scoped, capped, revoked or error", f.decision)
	}
	return q, nil
}

func newAuditCmd(e *env, g *globals) *cobra.Command {
	var (
		f          *filters
		limit      int
		format     string
		followFlag bool
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "print the audit log: what the agents did, what was refused and why",
		Long: `Prints the audit log of the agent's database, oldest first: every call,
allowed or refused, and Keybrake's events (policy reloads, kill switch).
While the agent runs, its Brake answers on FILE.sock; otherwise the file is
read directly. Durations mean "before now": --since 90s is the last 90
seconds. jsonl is the audit log's own form, one record a line; csv has a
header and the main fields; table is for a terminal (times in UTC).
With --follow, new records are printed as they appear until interrupted.

Also: 'keybrake audit summary' (the incident on one screen) and
'keybrake audit verify' (is the log intact?).`,
		Example: `  keybrake audit --agent refund-bot --since 90s
  keybrake audit --decision capped --format jsonl
  keybrake audit --follow`,
		Args: noArgs(func(arg string) string { return fmt.Sprintf("(filters are flags: --agent %s)", arg) }),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(time.Now())
			if err != nil {
				return misuse(cmd, "%v", err)
			}
			if limit < 0 {
				return misuse(cmd, "--limit %d: want a count, 0 for all", limit)
			}
			q.Limit = limit
			p, ok := newPrinter(format, e.stdout, terminalWidth(e), followFlag)
			if !ok {
				return misuse(cmd, "--format %q: want %s", format, strings.Join(formats, ", "))
			}

			if followFlag {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				note := func(s string) { fmt.Fprintf(e.stderr, "keybrake: %s\n", s) }
				err := follow(ctx, g.db, q, note, p.print)
				if ferr := p.flush(); err == nil {
					err = ferr
				}
				return err
			}
			err = withSource(g.db, nil, func(src source) error {
				return src.Query(context.Background(), q, p.print)
			})
			if ferr := p.flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	fs := cmd.Flags()
	f = filterFlags(fs, "")
	fs.IntVar(&limit, "limit", 0, "at most this many records (0: all)")
	fs.StringVar(&format, "format", "table", "table, jsonl or csv")
	fs.BoolVar(&followFlag, "follow", false, "keep printing new records as they appear")
	cmd.AddCommand(newAuditSummaryCmd(e, g), newAuditVerifyCmd(e, g))
	return cmd
}
