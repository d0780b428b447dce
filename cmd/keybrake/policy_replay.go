package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/replay"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// replayRows is how many changed calls the text report lists per agent;
// --format jsonl lists every one.
const replayRows = 20

func newPolicyReplayCmd(e *env, g *globals) *cobra.Command {
	var since, until, agent, format string
	cmd := &cobra.Command{
		Use:   "replay NEW",
		Short: "what NEW would have decided of the calls the audit log recorded",
		Long: `Decides the recorded calls of the window again under the policy file NEW, in
the order they were decided, with every counter (daily, weekly, monthly,
rolling, per run, per customer, per charge) counted from what NEW would
have admitted, and prints per agent: the calls whose decision changes
(from -> to, by rule), the money NEW would have stopped and the money it
would have let through (an estimate: the vendor never saw those calls),
the first call NEW would cap, and the calls it could not replay with
certainty, with why (an input the audit log does not keep, such as a
customer's metadata or an email's recipients). Refusals the policy did
not make (revoked by a kill switch, a halt or a trip; errors of the store
or a lookup) are counted as not replayed, never as changed. The records
before --since that NEW's counters need (the start of the day, week or
month, the longest rolling window) are read too, and not reported.

--format jsonl prints one JSON object per changed call instead.`,
		Example: `  keybrake policy replay keybrake.yaml.new --since 24h
  keybrake policy replay keybrake.yaml.new --since 7d --agent refund-bot --db /var/lib/keybrake/keybrake.db
  keybrake policy replay keybrake.yaml.new --format jsonl | jq .`,
		Args: exactArgs(1, "the NEW policy file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			from, err := parseWhen("since", since, now)
			if err != nil {
				return misuse(cmd, "%v", err)
			}
			var to time.Time
			if until != "" {
				if to, err = parseWhen("until", until, now); err != nil {
					return misuse(cmd, "%v", err)
				}
				if !from.Before(to) {
					return misuse(cmd, "--since %s is not before --until %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
				}
			}
			if format != "text" && format != "jsonl" {
				return misuse(cmd, "--format %q: want text or jsonl", format)
			}
			p, err := policy.Load(args[0])
			if err != nil {
				return err
			}
			// Every agent's records, also with --agent: the limits a
			// vendor's agents share count them all.
			q := audit.Query{Since: replay.Warmup(p, from), Until: to}
			var recs []*audit.Record
			err = withSource(g.db, nil, func(src source) error {
				return src.Query(context.Background(), q, func(r *audit.Record) error {
					recs = append(recs, r)
					return nil
				})
			})
			if err != nil {
				return err
			}
			// The order the store took its decisions in.
			sort.SliceStable(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
			rep := replay.Replay(p, recs, from)
			if agent != "" {
				rep.Agents = slices.DeleteFunc(rep.Agents, func(a *replay.Agent) bool { return a.Name != agent })
			}
			if format == "jsonl" {
				return printReplayJSON(e.stdout, rep)
			}
			printReplay(e.stdout, p, rep, to)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&since, "since", "24h", "replay the calls from this `time`: a duration before now (90s, 5m, 1h30m, 1d, 2w), today, yesterday or RFC 3339")
	fs.StringVar(&until, "until", "", "and before this `time`, as --since")
	fs.StringVar(&agent, "agent", "", "report only this `agent`")
	fs.StringVar(&format, "format", "text", "text (a table per agent) or jsonl (one JSON object per changed call)")
	return cmd
}

// printReplay writes the report as a table per agent.
func printReplay(w io.Writer, p *policy.Policy, rep *replay.Report, until time.Time) {
	window := "since " + rep.Since.UTC().Format(time.RFC3339)
	if !until.IsZero() {
		window += " until " + until.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "Replaying %s (policy %s) on the calls %s.\n", p.File, p.Hash, window)
	if len(rep.InForce) > 0 {
		fmt.Fprintf(w, "They were decided under policy %s.\n", strings.Join(rep.InForce, ", then "))
	}
	if len(rep.Agents) == 0 {
		fmt.Fprintln(w, "\nNo calls to replay.")
		return
	}
	for _, a := range rep.Agents {
		fmt.Fprintf(w, "\n%s: %d calls replayed, %d changed\n", a.Name, a.Replayed, len(a.Changed))
		if len(a.Changed) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  CALL\tTIME\tOPERATION\tAMOUNT\tFROM\tTO")
			for _, c := range a.Changed[:min(len(a.Changed), replayRows)] {
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Time.UTC().Format(time.RFC3339), orDash(c.Operation),
					amountOrDash(c.Amount), verdictText(c.From), verdictText(c.To))
			}
			tw.Flush()
			if n := len(a.Changed) - replayRows; n > 0 {
				fmt.Fprintf(w, "  ... and %d more (--format jsonl lists every one)\n", n)
			}
		}
		if len(a.Stopped) > 0 {
			fmt.Fprintf(w, "  money NEW would have stopped:      %s\n", amountsText(a.Stopped))
		}
		if len(a.LetThrough) > 0 || a.Estimated > 0 {
			fmt.Fprintf(w, "  money NEW would have let through:  %s (an estimate: %d calls the vendor never saw)\n", orNothing(amountsText(a.LetThrough)), a.Estimated)
		}
		if c := a.FirstCapped; c != nil {
			fmt.Fprintf(w, "  first call NEW would cap:          %d at %s by %s\n    %s\n", c.ID, c.Time.UTC().Format(time.RFC3339Nano), c.To.Rule, c.To.Reason)
		}
		if len(a.Reruled) > 0 {
			fmt.Fprintf(w, "  refused as recorded, by another rule: %d calls (first: %d, %s -> %s)\n",
				len(a.Reruled), a.Reruled[0].ID, a.Reruled[0].From.Rule, a.Reruled[0].To.Rule)
		}
		if len(a.Uncertain) > 0 {
			fmt.Fprintf(w, "  could not replay with certainty:   %d calls\n", len(a.Uncertain))
			printCounts(w, uncertainReasons(a.Uncertain))
		}
		if n := total(a.NotReplayed); n > 0 {
			fmt.Fprintf(w, "  not replayed (not the policy's decision): %d calls\n", n)
			printCounts(w, a.NotReplayed)
		}
	}
}

func verdictText(v policy.Verdict) string {
	if v.Rule == "" {
		return string(v.Decision)
	}
	return string(v.Decision) + " " + v.Rule
}

func amountOrDash(a money.Amount) string {
	if a.Currency == "" {
		return "-"
	}
	return a.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func amountsText(as []money.Amount) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, " + ")
}

func uncertainReasons(calls []replay.Call) map[string]int {
	m := map[string]int{}
	for _, c := range calls {
		m[c.Why]++
	}
	return m
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// printCounts writes reasons by count, most first.
func printCounts(w io.Writer, m map[string]int) {
	reasons := slices.Collect(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	sort.Slice(reasons, func(i, j int) bool {
		if m[reasons[i]] != m[reasons[j]] {
			return m[reasons[i]] > m[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	for _, r := range reasons {
		fmt.Fprintf(w, "    %5d  %s\n", m[r], r)
	}
}

// replayLine is one changed call in --format jsonl.
type replayLine struct {
	ID        uint64      `json:"id"`
	Time      time.Time   `json:"time"`
	Agent     string      `json:"agent"`
	Vendor    string      `json:"vendor"`
	Method    string      `json:"method"`
	Path      string      `json:"path"`
	Operation string      `json:"operation,omitempty"`
	Amount    string      `json:"amount,omitempty"`
	Currency  string      `json:"currency,omitempty"`
	From      replayWhich `json:"from"`
	To        replayWhich `json:"to"`
	// Estimated: only the new policy admits the call; what it would have
	// moved is its amount as decided.
	Estimated bool `json:"estimated,omitempty"`
	// Uncertain says which input the record lacks, for a call whose new
	// decision is not certain.
	Uncertain string `json:"uncertain,omitempty"`
}

type replayWhich struct {
	Decision policy.Decision `json:"decision"`
	Rule     string          `json:"rule,omitempty"`
	Code     string          `json:"code,omitempty"`
	Reason   string          `json:"reason,omitempty"`
}

// printReplayJSON writes every changed call, and every uncertain one
// whose decision would change, one JSON object a line, in order.
func printReplayJSON(w io.Writer, rep *replay.Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, a := range rep.Agents {
		var lines []replayLine
		for _, c := range a.Changed {
			lines = append(lines, lineOf(c))
		}
		for _, c := range a.Uncertain {
			if c.From.Decision != c.To.Decision {
				lines = append(lines, lineOf(c))
			}
		}
		sort.SliceStable(lines, func(i, j int) bool { return lines[i].ID < lines[j].ID })
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
	}
	return nil
}

func lineOf(c replay.Call) replayLine {
	l := replayLine{ID: c.ID, Time: c.Time.UTC(), Agent: c.Agent, Vendor: c.Vendor, Method: c.Method, Path: c.Path,
		Operation: c.Operation, Uncertain: c.Why,
		From:      replayWhich{Decision: c.From.Decision, Rule: c.From.Rule, Code: c.From.Code},
		To:        replayWhich{Decision: c.To.Decision, Rule: c.To.Rule, Code: c.To.Code, Reason: c.To.Reason},
		Estimated: c.From.Decision != policy.Allowed && c.To.Decision == policy.Allowed}
	if c.Amount.Currency != "" {
		l.Amount, l.Currency = c.Amount.Decimal(), string(c.Amount.Currency)
	}
	return l
}
