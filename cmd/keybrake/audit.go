package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
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
	run, principal                string
}

func filterFlags(fs *pflag.FlagSet, defSince string) *filters {
	f := &filters{}
	fs.StringVar(&f.since, "since", defSince, "from this `time`: a duration before now (90s, 5m, 1h30m, 1d, 2w), today, yesterday or RFC 3339")
	fs.StringVar(&f.until, "until", "", "before this `time`, as --since")
	fs.StringVar(&f.agent, "agent", "", "only this `agent`")
	fs.StringVar(&f.vendor, "vendor", "", "only this `vendor` ("+vendorNames()+")")
	fs.StringVar(&f.decision, "decision", "", "only this `decision`: allowed, blocked, scoped, capped, revoked, held, error")
	fs.StringVar(&f.cust, "customer", "", "only calls that touch this `customer`")
	fs.StringVar(&f.run, "run", "", "only calls made for this `run` (keybrake.WithRun, the Keybrake-Run header)")
	fs.StringVar(&f.principal, "principal", "", "only calls made on behalf of this `principal` (WithPrincipal, Keybrake-On-Behalf-Of)")
	return f
}

// query reads the filters; an error is misuse.
func (f *filters) query(now time.Time) (audit.Query, error) {
	q := audit.Query{Agent: f.agent, Vendor: f.vendor, Customer: f.cust, Decision: policy.Decision(f.decision),
		Run: f.run, Principal: f.principal}
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
		return q, fmt.Errorf("--decision %q: want allowed, blocked, scoped, capped, revoked, held or error", f.decision)
	}
	return q, nil
}

func newAuditCmd(e *env, g *globals) *cobra.Command {
	var (
		f          *filters
		limit      int
		format     string
		followFlag bool
		tail       int
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
With --follow, the last 20 records (-n) or those since --since are printed,
then new ones as they appear, in the order written, until interrupted.

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
			if tail < 0 {
				return misuse(cmd, "-n %d: want a count of records", tail)
			}
			if limit < 0 {
				return misuse(cmd, "--limit %d: want a count, 0 for all", limit)
			}
			q.Limit = limit
			sc, err := g.screen(cmd, e)
			if err != nil {
				return err
			}
			if format == "" {
				format = "jsonl"
				if sc.tty {
					format = "table"
				}
			}
			p, ok := newPrinter(format, e.stdout, sc, followFlag)
			if !ok {
				return misuse(cmd, "--format %q: want %s", format, strings.Join(formats, ", "))
			}

			if followFlag {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				if f.since == "" {
					// Not the whole log: the last `tail` records, then what comes.
					err := withSource(g.db, nil, func(src source) error {
						var err error
						q.After, err = tailStart(ctx, src, q, tail, time.Now())
						return err
					})
					if err != nil {
						return err
					}
				}
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
	fs.StringVar(&format, "format", "", "table, jsonl or csv (default: table on a terminal, jsonl when piped)")
	fs.BoolVar(&followFlag, "follow", false, "keep printing new records as they appear")
	fs.IntVarP(&tail, "lines", "n", 20, "with --follow and no --since: start with the last `N` records (0: only new ones)")
	cmd.AddCommand(newAuditSummaryCmd(e, g), newAuditVerifyCmd(e, g))
	return cmd
}

// tailWindows are the windows, before now, tailStart looks in for the last
// records: each read costs what the window holds, and the first that holds
// enough ends the search, so finding the last records of a long log never
// reads the whole of it.
var tailWindows = []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 0}

// tailStart is where a follow of q starts so that it begins with the last
// n records q selects: the After that makes its first read return them
// (and anything written since). 0 means from the start: the log holds
// fewer.
func tailStart(ctx context.Context, src source, q audit.Query, n int, now time.Time) (uint64, error) {
	if n == 0 {
		// Only new records: start after the newest, found among the
		// last one or two.
		before, err := tailStart(ctx, src, q, 1, now)
		if err != nil {
			return 0, err
		}
		return newest(ctx, src, q, before)
	}
	for _, w := range tailWindows {
		wq := q
		wq.Limit = 0
		if w > 0 {
			wq.Since = now.Add(-w)
		}
		var ids []uint64
		err := src.Query(ctx, wq, func(r *audit.Record) error {
			ids = append(ids, r.ID)
			return nil
		})
		if err != nil {
			return 0, err
		}
		if len(ids) < n && w > 0 {
			continue
		}
		if len(ids) <= n {
			return 0, nil
		}
		slices.Sort(ids)
		return ids[len(ids)-n-1], nil
	}
	return 0, nil
}

// newest is the ID of the newest record q selects after after.
func newest(ctx context.Context, src source, q audit.Query, after uint64) (uint64, error) {
	q.After, q.Limit = after, 0
	err := src.Query(ctx, q, func(r *audit.Record) error {
		after = max(after, r.ID)
		return nil
	})
	return after, err
}
