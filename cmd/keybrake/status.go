package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

func newStatusCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "is any agent stopped, and how much moved today against each cap",
		Long: `Prints today's totals (in the policy's time zone, UTC by default) per agent
and vendor against their daily caps and counts, this week's and month's
against weekly and monthly ones, what each rolling window (rate:) holds
now and when it frees, the agents their rate limits tripped, the reservations still open (in flight, or sent with their
outcome never learnt: both still counted), who is revoked or halted, and
the policy in force. From a running agent's Brake (FILE.sock) these are the
Brake's own; otherwise they come from the database file, the policy file
and its kill switch (the policy file + ".halt").`,
		Args: noArgs(nil),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := g.screen(cmd, e)
			if err != nil {
				return err
			}
			return status(e, g, sc)
		},
	}
}

func status(e *env, g *globals, sc screen) error {
	var (
		st    *admin.Status
		where string
		live  bool
	)
	offline := offlineState(g.policy)
	err := withSource(g.db, func() admin.State { return offline.State }, func(src source) error {
		where, live = src.where, src.live
		var err error
		st, err = src.Status(context.Background())
		return err
	})
	if err != nil {
		return err
	}
	kill := ""
	if !live {
		kill = fmt.Sprintf("kill switch %s: %s", offline.haltFile, offline.kill)
	}
	printStatus(e.stdout, st, where, kill, sc)
	if !live && offline.PolicyErr != nil {
		return fmt.Errorf("no caps shown: %w\n  (set --policy or $KEYBRAKE_POLICY to the agent's policy file)", offline.PolicyErr)
	}
	return nil
}

// offline is what a Brake would have in force, read from the files.
type offline struct {
	admin.State
	haltFile string
	kill     string // the kill switch, described
}

// offlineState reads the policy file and its kill switch as a Brake does:
// the kill switch's mere presence stops every agent it names, or every
// agent when it names none or cannot be read.
func offlineState(path string) offline {
	o := offline{haltFile: path + ".halt"}
	o.PolicyFile = path
	pol, err := policy.Load(path)
	if err != nil {
		o.PolicyErr = err
	} else {
		o.Policy = pol
	}
	// The Brake's own reading of the file (reload.go), so that status
	// prints the same offline and live.
	o.Stops, o.kill = brake.KillSwitchStops(o.haltFile)
	return o
}

// printStatus prints s; kill describes the kill switch file when it was
// read here ("" from a Brake, which applies it itself).
func printStatus(w io.Writer, s *admin.Status, where, kill string, sc screen) {
	fmt.Fprintf(w, "keybrake status at %s (day %s)\n", s.Time.UTC().Format("2006-01-02 15:04:05 UTC"), s.Day)
	fmt.Fprintf(w, "from %s\n", where)
	switch {
	case s.PolicyHash != "" && s.PolicyError != "":
		fmt.Fprintf(w, "policy %s in force (%s), but: %s\n", s.PolicyHash, s.PolicyFile, printable(s.PolicyError))
	case s.PolicyHash != "":
		fmt.Fprintf(w, "policy %s in force (%s)\n", s.PolicyHash, s.PolicyFile)
	default:
		fmt.Fprintf(w, "NO POLICY in force (%s): every call is refused: %s\n", s.PolicyFile, printable(s.PolicyError))
	}
	for _, warning := range s.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", printable(warning))
	}
	switch {
	case s.Halted && s.HaltedBy != "":
		fmt.Fprintf(w, "HALTED by %s: every call of every agent is refused\n", printable(s.HaltedBy))
	case s.Halted: // a Brake that does not say why
		fmt.Fprintln(w, "HALTED: every call of every agent is refused (halt: true in the policy, the kill switch file, or the agent runner's Halt)")
	default:
		fmt.Fprintln(w, "halted: no")
	}
	if len(s.Revoked) > 0 {
		fmt.Fprintln(w, "REVOKED (their calls answer 401):")
		wide := 0
		for _, a := range s.Revoked {
			wide = max(wide, utf8.RuneCountInString(printable(a)))
		}
		for _, a := range s.Revoked {
			by := "(the Brake does not say by what)"
			if s.RevokedBy[a] != "" {
				by = "by " + printable(s.RevokedBy[a])
			}
			fmt.Fprintf(w, "  %-*s  %s\n", wide, printable(a), by)
		}
	} else {
		fmt.Fprintln(w, "revoked: none")
	}
	if len(s.Tripped) > 0 {
		fmt.Fprintln(w, "TRIPPED by their own rate limits (halted until 'keybrake resume AGENT'):")
		for _, a := range slices.Sorted(maps.Keys(s.Tripped)) {
			t := s.Tripped[a]
			fmt.Fprintf(w, "  %s  by %s, kept in %s\n", printable(a), printable(t.Rule), printable(t.By))
		}
	}
	if kill != "" {
		fmt.Fprintln(w, kill)
	}

	fmt.Fprintln(w)
	if len(s.Limits) == 0 {
		fmt.Fprintln(w, "daily limits: none known (no policy)")
	} else {
		t := newTable(w, sc, false, []column{
			{name: "AGENT", max: 24}, {name: "VENDOR", max: 10}, {name: "LIMIT", max: 11},
			{name: "USED", max: 20, right: true}, {name: "MAX", max: 20, right: true}, {name: "%", max: 5, right: true},
			{name: "", max: 22}, {name: "FREES", max: 20}, {name: "OF WHICH"},
		})
		for _, l := range s.Limits {
			agent := l.Agent
			if agent == "" {
				agent = "(all agents)"
			}
			pct, bar := gauge(l.Used(), l.Max)
			t.row([]string{agent, l.Vendor, limitName(l), quantity(l.Used(), l.Unit), quantity(l.Max, l.Unit), pct, bar,
				frees(l, s.Time), ofWhich(l)})
		}
		t.flush()
	}

	printSpend(w, s, sc)
	printShadow(w, s.Shadow, "today (UTC)", false) // shadow.go
	printCustomers(w, s.Customers, sc)

	fmt.Fprintln(w)
	o := s.Open
	fmt.Fprintf(w, "open reservations: %d reserved (in flight), %d unknown (sent, outcome never learnt)", o.Reserved, o.Unknown)
	if !o.Oldest.IsZero() {
		fmt.Fprintf(w, ", the oldest from %s", o.Oldest.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if len(o.Amounts) > 0 {
		var parts []string
		for _, c := range sortedKeys(o.Amounts) {
			parts = append(parts, o.Amounts[c]+" "+c)
		}
		fmt.Fprintf(w, ", holding %s", strings.Join(parts, " + "))
	}
	fmt.Fprintln(w)
}

// printSpend prints each agent's spend of the day as a sparkline of its
// 24 UTC hours, scaled to the row's busiest hour: "." is an hour with
// nothing, blank one still to come.
func printSpend(w io.Writer, s *admin.Status, sc screen) {
	if len(s.Spend) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "spend today by UTC hour (settled, and still held), each row scaled to its busiest hour:")
	t := newTable(w, sc, false, []column{
		{name: "AGENT", max: 24}, {name: "VENDOR", max: 10}, {name: "TODAY", max: 20, right: true},
		{name: "00    06    12    18    ", max: 24}, {name: "BUSIEST HOUR"},
	})
	upTo := 23
	if s.Time.UTC().Format("2006-01-02") == s.Day {
		upTo = s.Time.UTC().Hour()
	}
	for _, a := range s.Spend {
		total, peak := "over", 0
		if n, ok := a.Total(); ok {
			total = quantity(n, string(a.Currency))
		}
		for h, n := range a.Hours {
			if n > a.Hours[peak] {
				peak = h
			}
		}
		t.row([]string{a.Agent, a.Vendor, total, sparkline(a.Hours, upTo),
			fmt.Sprintf("%02d:00 %s", peak, quantity(a.Hours[peak], string(a.Currency)))})
	}
	t.flush()
}

// sparkline draws hours up to upTo, each as one of eight heights of the
// busiest; an hour with nothing is ".", one after upTo blank.
func sparkline(hours [24]int64, upTo int) string {
	const bars = "▁▂▃▄▅▆▇█"
	busiest := slices.Max(hours[:])
	var b strings.Builder
	for h, n := range hours {
		switch {
		case h > upTo && n == 0:
			b.WriteByte(' ')
		case n <= 0 || busiest <= 0:
			b.WriteByte('.')
		default:
			level := min(int(math.Ceil(float64(n)/float64(busiest)*8))-1, 7)
			b.WriteString(string([]rune(bars)[max(level, 0)]))
		}
	}
	return b.String()
}

// printCustomers prints each per-customer limit's most used customers.
func printCustomers(w io.Writer, cls []admin.CustomerLimits, sc screen) {
	for _, cl := range cls {
		fmt.Fprintln(w)
		kind := strings.TrimPrefix(cl.Rule, "agents."+cl.Agent+"."+cl.Vendor+".")
		if cl.Counted == 0 {
			fmt.Fprintf(w, "%s %s %s: no customer counted today\n", printable(cl.Agent), cl.Vendor, printable(kind))
			continue
		}
		shown := fmt.Sprintf("the %d most used", len(cl.Top))
		if len(cl.Top) == cl.Counted {
			shown = "all"
		}
		fmt.Fprintf(w, "%s %s %s: %d customers counted today, %s:\n", printable(cl.Agent), cl.Vendor, printable(kind), cl.Counted, shown)
		t := newTable(w, sc, false, []column{
			{name: "CUSTOMER", max: 28}, {name: "ACCOUNT", max: 24}, {name: "USED", max: 20, right: true},
			{name: "MAX", max: 20, right: true}, {name: "%", max: 5, right: true}, {name: "", max: 22}, {name: "OF WHICH"},
		})
		for _, l := range cl.Top {
			account := l.Account
			if account == "" {
				account = "(platform)"
			}
			pct, bar := gauge(l.Used(), l.Max)
			t.row([]string{l.Customer, account, quantity(l.Used(), l.Unit), quantity(l.Max, l.Unit), pct, bar,
				ofWhich(l)})
		}
		t.flush()
	}
}

// quantity is an amount in a limit's unit: "95.00 USD", "12 units".
func quantity(n int64, unit string) string {
	if unit == "units" || unit == "calls" {
		return fmt.Sprintf("%d %s", n, unit)
	}
	return money.Amount{Micros: n, Currency: money.Currency(unit)}.String()
}

// ofWhich is what a limit's use is made of.
func ofWhich(l admin.LimitStatus) string {
	return fmt.Sprintf("settled %s, pending %s, unknown %s", bare(l.Settled, l.Unit), bare(l.Pending, l.Unit), bare(l.Unknown, l.Unit))
}

// bare is quantity without its unit.
func bare(n int64, unit string) string {
	if unit == "units" || unit == "calls" {
		return fmt.Sprint(n)
	}
	return major(money.Amount{Micros: n, Currency: money.Currency(unit)})
}

// gauge is the share of max used, rounded down, and a bar of 20.
func gauge(used, max int64) (string, string) {
	if max <= 0 {
		if used > 0 {
			return "over", "[" + strings.Repeat("#", 20) + "]"
		}
		return "-", ""
	}
	share := func(of int64) int64 {
		q := new(big.Int).Mul(big.NewInt(used), big.NewInt(of))
		if q.Quo(q, big.NewInt(max)); !q.IsInt64() {
			return math.MaxInt64
		}
		return q.Int64()
	}
	pct := share(100)
	fill := min(share(20), 20)
	return fmt.Sprintf("%d%%", pct), "[" + strings.Repeat("#", int(fill)) + strings.Repeat(".", int(20-fill)) + "]"
}

// limitName is the limit's key in the policy: "daily_cap", "weekly_cap",
// "rate[0]" with its window.
func limitName(l admin.LimitStatus) string {
	name := l.Rule[strings.LastIndexByte(l.Rule, '.')+1:]
	if l.Window > 0 {
		name += " " + policy.Span(l.Window)
	}
	return name
}

// frees says when the limit next gives room: a window's oldest call
// leaving it, a period's end.
func frees(l admin.LimitStatus, now time.Time) string {
	switch {
	case l.Frees.IsZero(), strings.Contains(l.Rule, ".daily_"):
		return "" // a day's limits all free at the day's end, the header's day
	case l.Window > 0:
		return "in " + l.Frees.Sub(now).Round(time.Second).String()
	}
	return l.Frees.UTC().Format("01-02 15:04 UTC")
}
