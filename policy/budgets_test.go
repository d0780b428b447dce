package policy

import (
	"strings"
	"testing"
	"time"

	"fmt"
	"reflect"
)

// eq reports got when it is not want; must stops the test too.
func eq(t *testing.T, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s\n got %v\nwant %v", fmt.Sprint(msg...), got, want)
	}
}

func must(t *testing.T, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s\n got %v\nwant %v", fmt.Sprint(msg...), got, want)
	}
}

// budgetPolicy is the example: every new limit on one grant, and
// vendor-wide ones.
const budgetPolicy = `version: 1
timezone: Europe/Berlin
vendors:
  stripe:
    weekly_cap: 9000.00 USD
    rate:
      - {count: 100, per: 1m}
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      weekly_cap: 2000.00 USD
      monthly_cap: 6000.00 USD
      monthly_count: 3000
      rate:
        - {count: 20, per: 1m, halt: true}
        - {spend: 50.00 USD, per: 10m}
      per_run:
        cap: 20.00 USD
        count: 5
      alert_at: [50%, 80%]
      allow: [POST /v1/refunds, GET /v1/balance]
  lax-bot:
    stripe:
      daily_cap: 10.00 USD
      per_run: {cap: 5.00 USD, allow_no_run: true}
      allow: [POST /v1/refunds]
`

func TestBudgetLimits(t *testing.T) {
	p := mustParse(t, "budget.yaml", []byte(budgetPolicy))
	eq(t, "Europe/Berlin", p.Zone().String())
	g := p.Agents["refund-bot"].Grants["stripe"]
	eq(t, []int64{50, 80}, g.AlertAt)
	must(t, 2, len(g.Rates))
	eq(t, "agents.refund-bot.stripe.rate[0]", g.Rates[0].ID)

	refund := req("refund-bot", "stripe", "POST", "/v1/refunds")
	refund.Run = "ticket-4312"
	v, rule := p.Authorize(refund)
	must(t, Allowed, v.Decision, v.Reason)
	// Thursday 2026-12-03: its week ends on Sunday the 6th, its month on
	// the 31st.
	limits, v := p.Limits(refund, rule, amt(t, "10.00 USD"), 1, "2026-12-03")
	must(t, Allowed, v.Decision, v.Reason)
	type row struct {
		key, rule string
		max, add  int64
		kind      LimitKind
		period    string
		window    time.Duration
		halt      bool
	}
	var got []row
	for _, l := range limits {
		got = append(got, row{l.Key, l.Rule, l.Max, l.Add, l.Kind, l.Period, l.Window, l.Halt})
	}
	eq(t, []row{
		{"agent/refund-bot/stripe/2026-12-03/USD", "agents.refund-bot.stripe.daily_cap", 500_000_000, 10_000_000, DailyLimit, "2026-12-03", 0, false},
		{"agent/refund-bot/stripe/week/2026-12-06/USD", "agents.refund-bot.stripe.weekly_cap", 2000_000_000, 10_000_000, WeeklyLimit, "2026-12-06", 0, false},
		{"agent/refund-bot/stripe/month/2026-12-31/USD", "agents.refund-bot.stripe.monthly_cap", 6000_000_000, 10_000_000, MonthlyLimit, "2026-12-31", 0, false},
		{"agent/refund-bot/stripe/month/2026-12-31/units", "agents.refund-bot.stripe.monthly_count", 3000, 1, MonthlyLimit, "2026-12-31", 0, false},
		{"vendor/stripe/week/2026-12-06/USD", "vendors.stripe.weekly_cap", 9000_000_000, 10_000_000, WeeklyLimit, "2026-12-06", 0, false},
		{"agent/refund-bot/stripe/rate/1m0s/calls", "agents.refund-bot.stripe.rate[0]", 20, 1, RateLimit, "", time.Minute, true},
		{"agent/refund-bot/stripe/rate/10m0s/USD", "agents.refund-bot.stripe.rate[1]", 50_000_000, 10_000_000, RateLimit, "", 10 * time.Minute, false},
		{"vendor/stripe/rate/1m0s/calls", "vendors.stripe.rate[0]", 100, 1, RateLimit, "", time.Minute, false},
		{"run/refund-bot/stripe/r:ticket-4312/USD", "agents.refund-bot.stripe.per_run.cap", 20_000_000, 10_000_000, RunLimit, "ticket-4312", 0, false},
		{"run/refund-bot/stripe/r:ticket-4312/calls", "agents.refund-bot.stripe.per_run.count", 5, 1, RunLimit, "ticket-4312", 0, false},
	}, got)

	// A read moves nothing: it counts in the call windows and its run
	// only.
	read := req("refund-bot", "stripe", "GET", "/v1/balance")
	read.Run = "ticket-4312"
	_, rule = p.Authorize(read)
	limits, v = p.Limits(read, rule, amt(t, "0.00 USD"), 0, "2026-12-03")
	must(t, Allowed, v.Decision, v.Reason)
	var keys []string
	for _, l := range limits {
		keys = append(keys, l.Key)
	}
	eq(t, []string{"agent/refund-bot/stripe/rate/1m0s/calls", "vendor/stripe/rate/1m0s/calls", "run/refund-bot/stripe/r:ticket-4312/calls"}, keys)
}

func TestBudgetRuns(t *testing.T) {
	p := mustParse(t, "budget.yaml", []byte(budgetPolicy))
	decide := func(agent, run string) ([]Limit, Verdict) {
		r := req(agent, "stripe", "POST", "/v1/refunds")
		r.Run = run
		v, rule := p.Authorize(r)
		must(t, Allowed, v.Decision, v.Reason)
		return p.Limits(r, rule, amt(t, "1.00 USD"), 1, "2026-12-03")
	}
	_, v := decide("refund-bot", "")
	eq(t, Verdict{Decision: Blocked, Rule: "agents.refund-bot.stripe.per_run", Code: "keybrake_no_run",
		Reason: "agent refund-bot has a per_run budget on stripe and the call names no run; tag it with its run (keybrake.WithRun, the Keybrake-Run header) or set allow_no_run"}, v)
	for _, bad := range []string{"has space", "a/b", strings.Repeat("x", 129), "tab\there", "é"} {
		_, v := decide("refund-bot", bad)
		eq(t, "keybrake_bad_run", v.Code, "run ", bad)
	}
	// A run named like a date is still a run's counter, never a day's.
	limits, v := decide("refund-bot", "2026-12-03")
	must(t, Allowed, v.Decision)
	eq(t, "run/refund-bot/stripe/r:2026-12-03/USD", limits[len(limits)-2].Key)

	limits, v = decide("lax-bot", "")
	must(t, Allowed, v.Decision, v.Reason)
	for _, l := range limits {
		if l.Kind == RunLimit {
			t.Errorf("allow_no_run: a call without a run counts against %s", l.Key)
		}
	}
	limits, _ = decide("lax-bot", "r1")
	eq(t, "run/lax-bot/stripe/r:r1/USD", limits[len(limits)-1].Key)
}

// TestCalendar: days, weeks and months in Europe/Berlin, across both of
// 2026's clock changes (29 March: 23 hours; 25 October: 25 hours).
func TestCalendar(t *testing.T) {
	p := mustParse(t, "budget.yaml", []byte(budgetPolicy))
	berlin := p.Zone()
	utc := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	// A day rolls at local midnight, not at UTC's.
	eq(t, "2026-12-03", p.Day(utc("2026-12-03T22:59:59Z")))
	eq(t, "2026-12-04", p.Day(utc("2026-12-03T23:00:00Z")))
	eq(t, "2026-07-01", p.Day(utc("2026-06-30T22:00:00Z")), "summer time: UTC+2")
	// UTC unless the policy names a zone.
	eq(t, "2026-12-03", (&Policy{}).Day(utc("2026-12-03T23:30:00Z")))

	day := func(last string) time.Duration {
		return PeriodEnd(last, berlin).Sub(PeriodEnd(civil(last).AddDate(0, 0, -1).Format(time.DateOnly), berlin))
	}
	eq(t, 23*time.Hour, day("2026-03-29"))
	eq(t, 25*time.Hour, day("2026-10-25"))
	eq(t, 24*time.Hour, day("2026-10-26"))
	eq(t, true, utc("2026-03-29T22:00:00Z").Equal(PeriodEnd("2026-03-29", berlin)), "the spring-forward Sunday ends at 00:00 CEST")

	// Weeks run Monday to Sunday; the change days are inside them.
	for _, c := range []struct{ day, monday, sunday string }{
		{"2026-03-29", "2026-03-23", "2026-03-29"}, // a Sunday, 23 hours
		{"2026-03-30", "2026-03-30", "2026-04-05"},
		{"2026-10-25", "2026-10-19", "2026-10-25"}, // a Sunday, 25 hours
		{"2026-12-31", "2026-12-28", "2027-01-03"}, // across the year
	} {
		m, s := weekOf(c.day)
		eq(t, [2]string{c.monday, c.sunday}, [2]string{m, s}, c.day)
	}
	// The instant the spring-forward Sunday ends is Monday's, a new week.
	eq(t, "2026-03-30", p.Day(utc("2026-03-29T22:00:00Z")))
	eq(t, "2026-03-29", p.Day(utc("2026-03-29T21:59:59Z")))
	for _, c := range []struct{ day, first, last string }{
		{"2026-02-14", "2026-02-01", "2026-02-28"},
		{"2028-02-29", "2028-02-01", "2028-02-29"},
		{"2026-10-25", "2026-10-01", "2026-10-31"},
	} {
		f, l := monthOf(c.day)
		eq(t, [2]string{c.first, c.last}, [2]string{f, l}, c.day)
	}
	// A month ends at local midnight: 31 October 2026 23:00 UTC is
	// November in Berlin (CET, UTC+1, after the change).
	eq(t, true, utc("2026-10-31T23:00:00Z").Equal(PeriodEnd("2026-10-31", berlin)), "October ends at 00:00 CET")
}

func TestBudgetParseErrors(t *testing.T) {
	grant := func(keys string) string {
		return "version: 1\nagents:\n  a:\n    stripe:\n      daily_cap: 10.00 USD\n" + keys + "      allow: [POST /v1/refunds]\n"
	}
	for _, c := range []struct{ policy, want string }{
		{"version: 1\ntimezone: Mars/Olympus\nagents:\n  a:\n    stripe:\n      allow: [GET /v1/balance]\n", `"Mars/Olympus" is not a time zone`},
		{"version: 1\ntimezone: Local\nagents:\n  a:\n    stripe:\n      allow: [GET /v1/balance]\n", "name the zone"},
		{grant("      rate: [{count: 20, spend: 5.00 USD, per: 1m}]\n"), "want exactly one of count (calls) and spend (money)"},
		{grant("      rate: [{per: 1m}]\n"), "want exactly one of count"},
		{grant("      rate: [{count: 20}]\n"), "per: required key is missing"},
		{grant("      rate: [{count: 20, per: 500ms}]\n"), "want a whole number of seconds from 1s"},
		{grant("      rate: [{count: 20, per: 745h}]\n"), "want a whole number of seconds from 1s"},
		{grant("      rate: [{count: 20, per: 1m}, {count: 30, per: 60s}]\n"), "a second window of 1m0s on the same kind"},
		{grant("      rate: []\n"), "a list of windows"},
		{grant("      rate: [{count: 20, per: 1m, halt: yes}]\n"), "true or false"},
		{grant("      alert_at: [80%, 50%]\n"), "ascending"},
		{grant("      alert_at: [0%]\n"), "want a whole percentage"},
		{grant("      alert_at: [101%]\n"), "want a whole percentage"},
		{grant("      per_run: {allow_no_run: true}\n"), "want cap, count or both"},
		{grant("      per_run: {cap: 5.00 USD, runs: 3}\n"), "runs: unknown key"},
		{"version: 1\nvendors:\n  stripe:\n    per_run: {count: 3}\nagents:\n  a:\n    stripe:\n      allow: [GET /v1/balance]\n", "per_run: unknown key"},
	} {
		_, err := Parse("p.yaml", []byte(c.policy))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", c.policy, err, c.want)
		}
	}
}

// TestOverLimit: each kind of limit words its refusal with its code, what
// it counts over, and when it frees.
func TestOverLimit(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		l     Limit
		used  int64
		frees time.Time
		code  string
		words string
	}{
		{Limit{Max: 500_000_000, Add: 10_000_000, Unit: "USD", Kind: DailyLimit, Period: "2026-12-03"}, 495_000_000, time.Time{},
			"keybrake_daily_cap", "daily cap of 500.00 USD reached: 495.00 USD used on 2026-12-03, this call 10.00 USD"},
		{Limit{Max: 100, Add: 1, Unit: "units", Kind: DailyLimit, Period: "2026-12-03"}, 100, time.Time{},
			"keybrake_daily_count", "daily count of 100 reached: 100 used on 2026-12-03, this call 1"},
		{Limit{Max: 2000_000_000, Add: 10_000_000, Unit: "USD", Kind: WeeklyLimit, Period: "2026-12-06"}, 1995_000_000, time.Time{},
			"keybrake_weekly_cap", "weekly cap of 2000.00 USD reached: 1995.00 USD used in the week 2026-11-30 to 2026-12-06, this call 10.00 USD; it starts again at 2026-12-07T00:00:00+01:00"},
		{Limit{Max: 30, Add: 1, Unit: "units", Kind: MonthlyLimit, Period: "2026-12-31"}, 30, time.Time{},
			"keybrake_monthly_count", "monthly count of 30 reached: 30 used in 2026-12, this call 1; it starts again at 2027-01-01T00:00:00+01:00"},
		{Limit{Max: 20, Add: 1, Unit: "calls", Kind: RateLimit, Window: time.Minute}, 20, now.Add(1500 * time.Millisecond),
			"keybrake_rate_count", "rate of 20 calls per 1m reached: 20 calls in the last 1m, this call 1; the window admits it at 2026-12-03T10:00:01.5Z (in 1.5s)"},
		{Limit{Max: 50_000_000, Add: 60_000_000, Unit: "USD", Kind: RateLimit, Window: 10 * time.Minute}, 0, time.Time{},
			"keybrake_rate_spend", "rate of 50.00 USD per 10m reached: 0.00 USD in the last 10m, this call 60.00 USD; the call alone is over the limit"},
		{Limit{Max: 5, Add: 1, Unit: "calls", Kind: RunLimit, Period: "ticket-4312"}, 5, time.Time{},
			"keybrake_run_count", "run count of 5 reached for run ticket-4312: 5 used, this call 1"},
		{Limit{Max: 1, Add: 1, Unit: "units", Kind: ChargeLimit, Per: "the charge ch_1"}, 1, time.Time{},
			"keybrake_count_reached", "count of 1 for the charge ch_1 reached: 1 used, this call 1"},
	} {
		c.l.Rule = "r"
		v := c.l.OverLimit(c.used, c.frees, now, berlin)
		eq(t, Verdict{Decision: Capped, Rule: "r", Code: c.code, Reason: c.words}, v, c.code)
	}
}
