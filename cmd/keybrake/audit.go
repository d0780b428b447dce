package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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

func init() {
	register("audit", "print the audit log: what the agents did, what was refused and why", auditCmd)
}

// filters are the flags that select records, shared by audit and audit
// summary.
type filters struct {
	db                            *string
	since, until                  *string
	agent, vendor, decision, cust *string
}

func filterFlags(e *env, fs *flag.FlagSet, defSince string) *filters {
	f := &filters{db: dbFlag(e, fs)}
	f.since = fs.String("since", defSince, "from this time: a duration before now (90s, 5m, 1h30m) or RFC 3339")
	f.until = fs.String("until", "", "before this time, as --since")
	f.agent = fs.String("agent", "", "only this agent")
	f.vendor = fs.String("vendor", "", "only this vendor ("+vendorNames()+")")
	f.decision = fs.String("decision", "", "only this decision: allowed, blocked, scoped, capped, revoked, error")
	f.cust = fs.String("customer", "", "only calls that touch this customer")
	return f
}

// query reads the filters; an error is misuse.
func (f *filters) query(now time.Time) (audit.Query, error) {
	q := audit.Query{Agent: *f.agent, Vendor: *f.vendor, Customer: *f.cust, Decision: policy.Decision(*f.decision)}
	var err error
	if *f.since != "" {
		if q.Since, err = parseWhen("since", *f.since, now); err != nil {
			return q, err
		}
	}
	if *f.until != "" {
		if q.Until, err = parseWhen("until", *f.until, now); err != nil {
			return q, err
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, fmt.Errorf("--since %s is not before --until %s", q.Since.UTC().Format(time.RFC3339), q.Until.UTC().Format(time.RFC3339))
	}
	if q.Decision != "" && !q.Decision.Valid() {
		return q, fmt.Errorf("--decision %q: want allowed, blocked, scoped, capped, revoked or error", *f.decision)
	}
	return q, nil
}

func auditCmd(e *env, args []string) int {
	fs := flags(e, "audit", "[--db FILE] [--since 90s|RFC3339] [--until ...] [filters] [--format table|jsonl|csv] [--follow]", `
Prints the audit log of the agent's database, oldest first: every call,
allowed or refused, and Keybrake's events (policy reloads, kill switch).
While the agent runs, its Brake answers on FILE.sock; otherwise the file is
read directly. Durations mean "before now": --since 90s is the last 90
seconds. jsonl is the audit log's own form, one record a line; csv has a
header and the main fields; table is for a terminal (times in UTC).
With --follow, new records are printed as they appear until interrupted.

Also: 'keybrake audit summary' (the incident on one screen) and
'keybrake audit verify' (is the log intact?).`)
	f := filterFlags(e, fs, "")
	limit := fs.Int("limit", 0, "at most this many records (0: all)")
	format := fs.String("format", "table", "table, jsonl or csv")
	followFlag := fs.Bool("follow", false, "keep printing new records as they appear")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return misuse(e, fs, "unexpected argument %q (filters are flags: --agent %s)", fs.Arg(0), fs.Arg(0))
	}
	q, err := f.query(time.Now())
	if err != nil {
		return misuse(e, fs, "%v", err)
	}
	if *limit < 0 {
		return misuse(e, fs, "--limit %d: want a count, 0 for all", *limit)
	}
	q.Limit = *limit
	p, ok := newPrinter(*format, e.stdout, terminalWidth(e), *followFlag)
	if !ok {
		return misuse(e, fs, "--format %q: want %s", *format, strings.Join(formats, ", "))
	}

	if *followFlag {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		note := func(s string) { fmt.Fprintf(e.stderr, "keybrake: %s\n", s) }
		err := follow(ctx, *f.db, q, note, p.print)
		if ferr := p.flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return fail(e, "%v", err)
		}
		return 0
	}
	err = withSource(*f.db, nil, func(src source) error {
		return src.Query(context.Background(), q, p.print)
	})
	if ferr := p.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fail(e, "%v", err)
	}
	return 0
}

// misuse prints a problem with the command line and the usage; exit 2.
func misuse(e *env, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "keybrake: "+format+"\n\n", args...)
	fs.Usage()
	return 2
}
