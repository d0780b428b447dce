package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// maxBuckets bounds the lines of the timeline.
const maxBuckets = 1000

// decisions is the order of the summary's columns.
var decisions = []policy.Decision{policy.Allowed, policy.Blocked, policy.Scoped, policy.Capped, policy.Revoked, policy.Held, policy.Error}

func newAuditSummaryCmd(e *env, g *globals) *cobra.Command {
	var (
		f      *filters
		by     time.Duration
		shadow bool
	)
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "the incident on one screen: calls per minute by decision, money moved, events",
		Long: `Sums up the audit log over a time range: for each period of --by (aligned
to the clock, in UTC) the calls per decision and the money moved (settled,
plus unknown: sent, outcome never learnt, still counted) per agent and
vendor; then the totals, the money still in flight, the first capped call,
and Keybrake's events in the range (policy reloads, the kill switch,
revocations), whatever the filters. With --shadow, what the shadow policy
(keybrake serve --shadow FILE) would have decided otherwise, per agent.`,
		Example: `  keybrake audit summary --since 15m --by 1m
  keybrake audit summary --agent refund-bot --since 1h --by 5m`,
		Args: noArgs(nil),
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			q, err := f.query(now)
			if err != nil {
				return misuse(cmd, "%v", err)
			}
			if q.Since.IsZero() {
				return misuse(cmd, "--since is required: a summary covers a range")
			}
			if by < time.Second {
				return misuse(cmd, "--by %v: want a second or more", by)
			}
			end := q.Until
			if end.IsZero() {
				end = now
			}
			first := q.Since.Truncate(by)
			n := int(end.Sub(first) / by)
			if end.Sub(first)%by != 0 || n == 0 {
				n++
			}
			if n > maxBuckets {
				return misuse(cmd, "%d periods of %v: at most %d; raise --by", n, by, maxBuckets)
			}

			sc, err := g.screen(cmd, e)
			if err != nil {
				return err
			}
			s := newSummary(q, first, by, n)
			// Events have no agent: read the range whole and filter the calls here.
			whole := audit.Query{Since: q.Since, Until: q.Until}
			var where string
			err = withSource(g.db, nil, func(src source) error {
				where = src.where
				return src.Query(context.Background(), whole, s.add)
			})
			if err != nil {
				return err
			}
			s.print(e.stdout, where, end, sc)
			if shadow {
				printShadow(e.stdout, s.shadow.Agents(), "in the range", true) // shadow.go
			}
			return nil
		},
	}
	f = filterFlags(cmd.Flags(), "15m")
	cmd.Flags().DurationVar(&by, "by", time.Minute, "the `length` of each period: 10s, 1m, 1h")
	cmd.Flags().BoolVar(&shadow, "shadow", false, "also show, per agent, the calls the shadow policy (serve --shadow) would have decided otherwise: by decision and rule, and the first")
	return cmd
}

// who is an agent on a vendor.
type who struct{ agent, vendor string }

// sums are amounts per currency.
type sums map[money.Currency]int64

// add adds a, refusing a sum that would overflow rather than wrap.
func (s sums) add(a money.Amount) error {
	if a.Currency == "" || a.Micros == 0 {
		return nil
	}
	sum, err := money.Amount{Micros: s[a.Currency], Currency: a.Currency}.Add(a)
	if err != nil {
		return fmt.Errorf("summing %s: %w", a.Currency, err)
	}
	s[a.Currency] = sum.Micros
	return nil
}

func (s sums) String() string {
	var parts []string
	for _, c := range sortedKeys(s) {
		parts = append(parts, money.Amount{Micros: s[c], Currency: c}.String())
	}
	return strings.Join(parts, " + ")
}

type bucket struct {
	counts map[policy.Decision]int
	moved  map[who]sums // settled + unknown
}

type summary struct {
	q        audit.Query
	first    time.Time
	by       time.Duration
	buckets  []bucket
	totals   map[policy.Decision]int
	settled  map[who]sums
	unknown  map[who]sums
	inFlight map[who]sums
	capped   *audit.Record
	events   []*audit.Record
	shadow   admin.ShadowTally
}

func newSummary(q audit.Query, first time.Time, by time.Duration, n int) *summary {
	s := &summary{q: q, first: first, by: by, buckets: make([]bucket, n), totals: map[policy.Decision]int{},
		settled: map[who]sums{}, unknown: map[who]sums{}, inFlight: map[who]sums{}}
	for i := range s.buckets {
		s.buckets[i] = bucket{counts: map[policy.Decision]int{}, moved: map[who]sums{}}
	}
	return s
}

func addTo(m map[who]sums, k who, a money.Amount) error {
	if a.Currency == "" || a.Micros == 0 {
		return nil
	}
	if m[k] == nil {
		m[k] = sums{}
	}
	return m[k].add(a)
}

func (s *summary) add(r *audit.Record) error {
	if r.Event != "" {
		s.events = append(s.events, r)
		return nil
	}
	if !s.q.Match(r) {
		return nil
	}
	i := int(r.Time.Sub(s.first) / s.by)
	if i < 0 || i >= len(s.buckets) {
		return nil // a record timed after the range's end, written since
	}
	s.shadow.Add(r)
	b := &s.buckets[i]
	b.counts[r.Decision]++
	s.totals[r.Decision]++
	if r.Decision == policy.Capped && s.capped == nil {
		s.capped = r
	}
	k := who{r.Agent, r.Vendor}
	switch r.Outcome {
	case audit.Settled:
		return firstErr(addTo(b.moved, k, r.Settled), addTo(s.settled, k, r.Settled))
	case audit.Unknown:
		return firstErr(addTo(b.moved, k, r.Reserved), addTo(s.unknown, k, r.Reserved))
	case audit.Reserved:
		return addTo(s.inFlight, k, r.Reserved)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *summary) print(w io.Writer, where string, end time.Time, sc screen) {
	layout := "15:04"
	if s.by < time.Minute {
		layout = "15:04:05"
	}
	if s.first.UTC().Format("2006-01-02") != end.UTC().Format("2006-01-02") {
		layout = "2006-01-02 " + layout
	}
	fmt.Fprintf(w, "keybrake audit summary: %s to %s UTC, by %s%s\n", s.q.Since.UTC().Format("2006-01-02 15:04:05"),
		end.UTC().Format("2006-01-02 15:04:05"), shortDuration(s.by), describeFilters(s.q))
	fmt.Fprintf(w, "from %s\n\n", where)

	cols := []column{{name: "PERIOD (UTC)"}}
	for _, d := range decisions {
		cols = append(cols, column{name: strings.ToUpper(string(d)), right: true, max: 9})
	}
	cols = append(cols, column{name: "MOVED (settled + unknown)"})
	cols[0].max = len(layout)
	t := newTable(w, sc, false, cols)
	for i, b := range s.buckets {
		row := []string{s.first.Add(time.Duration(i) * s.by).UTC().Format(layout)}
		for _, d := range decisions {
			row = append(row, strconv.Itoa(b.counts[d]))
		}
		row = append(row, movedText(b.moved))
		t.row(row)
	}
	row := []string{"total"}
	for _, d := range decisions {
		row = append(row, strconv.Itoa(s.totals[d]))
	}
	t.row(append(row, ""))
	t.flush()

	fmt.Fprintln(w)
	moved := map[who]bool{}
	for k := range s.settled {
		moved[k] = true
	}
	for k := range s.unknown {
		moved[k] = true
	}
	if len(moved) == 0 {
		fmt.Fprintln(w, "money moved: none")
	} else {
		fmt.Fprintln(w, "money moved (settled + unknown):")
		for _, k := range sortedWho(moved) {
			all := sums{}
			for _, part := range []sums{s.settled[k], s.unknown[k]} {
				for c, v := range part {
					if err := all.add(money.Amount{Micros: v, Currency: c}); err != nil {
						fmt.Fprintf(w, "  %s %s: %v\n", k.agent, k.vendor, err)
					}
				}
			}
			line := fmt.Sprintf("  %s %s: %s", printable(k.agent), printable(k.vendor), all)
			if len(s.unknown[k]) > 0 {
				line += fmt.Sprintf("  (settled %s; unknown %s: sent, outcome never learnt, still counted)", orZero(s.settled[k]), s.unknown[k])
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(s.inFlight) > 0 {
		inFlight := map[who]bool{}
		for k := range s.inFlight {
			inFlight[k] = true
		}
		for _, k := range sortedWho(inFlight) {
			fmt.Fprintf(w, "in flight (reserved, no response yet): %s %s %s\n", printable(k.agent), printable(k.vendor), s.inFlight[k])
		}
	}
	if r := s.capped; r != nil {
		fmt.Fprintf(w, "first capped call: %s #%d %s %s %s, rule %s, code %s: %s\n", r.Time.UTC().Format("2006-01-02 15:04:05"), r.ID,
			printable(r.Agent), printable(r.Vendor), printable(r.Method+" "+r.Path), printable(r.Rule), printable(r.Code), printable(r.Reason))
	} else {
		fmt.Fprintln(w, "first capped call: none")
	}
	if len(s.events) == 0 {
		fmt.Fprintln(w, "events: none")
		return
	}
	fmt.Fprintln(w, "events:")
	for i, r := range s.events {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more: keybrake audit --vendor keybrake --since %s\n", len(s.events)-20, s.q.Since.UTC().Format(time.RFC3339))
			break
		}
		fmt.Fprintf(w, "  %s #%d %s: %s\n", r.Time.UTC().Format("2006-01-02 15:04:05"), r.ID, r.Event, printable(r.Reason))
	}
}

func orZero(s sums) string {
	if len(s) == 0 {
		return "0"
	}
	return s.String()
}

func movedText(m map[who]sums) string {
	keys := map[who]bool{}
	for k := range m {
		keys[k] = true
	}
	var parts []string
	for _, k := range sortedWho(keys) {
		parts = append(parts, k.agent+" "+k.vendor+" "+m[k].String())
	}
	return strings.Join(parts, "; ")
}

func sortedWho(m map[who]bool) []who {
	out := make([]who, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].agent != out[j].agent {
			return out[i].agent < out[j].agent
		}
		return out[i].vendor < out[j].vendor
	})
	return out
}

func describeFilters(q audit.Query) string {
	var parts []string
	for _, f := range []struct{ name, v string }{{"agent", q.Agent}, {"vendor", q.Vendor}, {"decision", string(q.Decision)}, {"customer", q.Customer}} {
		if f.v != "" {
			parts = append(parts, f.name+" "+f.v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// shortDuration is d as the operator wrote it: 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
