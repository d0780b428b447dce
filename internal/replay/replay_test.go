package replay

import (
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

const basePolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 30.00 USD
      allow: [POST /v1/refunds]
`

func parse(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func usd(major int64) money.Amount { return money.Amount{Micros: major * 1_000_000, Currency: "USD"} }

// refund is a recorded refund of amount, allowed and settled in full
// unless the caller changes it.
func refund(id uint64, at time.Time, amount money.Amount) *audit.Record {
	return &audit.Record{ID: id, Time: at, Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
		Operation: "refunds.create", Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]",
		Amount: amount, Reserved: amount, Settled: amount, Outcome: audit.Settled, MovesMoney: true, Count: 1}
}

func capped(r *audit.Record) *audit.Record {
	r.Decision, r.Rule, r.Code, r.Outcome = policy.Capped, "agents.refund-bot.stripe.daily_cap", "keybrake_daily_cap", audit.None
	r.Reserved, r.Settled = money.Amount{}, money.Amount{}
	return r
}

func agentOf(t *testing.T, rep *Report) *Agent {
	t.Helper()
	if len(rep.Agents) != 1 {
		t.Fatalf("%d agents in the report, want 1", len(rep.Agents))
	}
	return rep.Agents[0]
}

func decisions(calls []Call) string {
	var parts []string
	for _, c := range calls {
		parts = append(parts, string(c.From.Decision)+">"+string(c.To.Decision))
	}
	return strings.Join(parts, " ")
}

// TestSettlementsCountAsRecorded: a call both policies admit counts what
// its record says still counts: its settlement, nothing once released,
// all of its reservation while unknown.
func TestSettlementsCountAsRecorded(t *testing.T) {
	for _, tt := range []struct {
		name    string
		first   func(*audit.Record)
		allowed bool // the 15.00 refund after the first one of 20.00
	}{
		{"settled in full", func(*audit.Record) {}, false},
		{"released", func(r *audit.Record) { r.Outcome, r.Settled = audit.Released, money.Amount{} }, true},
		{"settled below the reservation", func(r *audit.Record) { r.Settled = usd(5) }, true},
		{"unknown", func(r *audit.Record) { r.Outcome, r.Settled = audit.Unknown, money.Amount{} }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first := refund(1, t0, usd(20))
			tt.first(first)
			second := refund(2, t0.Add(time.Second), usd(15))
			if !tt.allowed {
				capped(second)
			}
			a := agentOf(t, Replay(parse(t, basePolicy), []*audit.Record{first, second}, time.Time{}))
			if len(a.Changed) != 0 || len(a.Reruled) != 0 || len(a.Uncertain) != 0 || a.Replayed != 2 {
				t.Fatalf("changed %q, reruled %v, uncertain %v, %d replayed", decisions(a.Changed), a.Reruled, a.Uncertain, a.Replayed)
			}
		})
	}
}

// TestDaysAreTheNewPolicysDays: two refunds on two UTC days fall on one
// day in New York, where the second no longer fits.
func TestDaysAreTheNewPolicysDays(t *testing.T) {
	late := time.Date(2026, 11, 25, 23, 30, 0, 0, time.UTC) // 18:30 in New York
	recs := []*audit.Record{refund(1, late, usd(20)), refund(2, late.Add(time.Hour), usd(20))}
	a := agentOf(t, Replay(parse(t, basePolicy), recs, time.Time{}))
	if len(a.Changed) != 0 {
		t.Fatalf("under UTC days: changed %q", decisions(a.Changed))
	}
	ny := strings.Replace(basePolicy, "agents:", "timezone: America/New_York\nagents:", 1)
	a = agentOf(t, Replay(parse(t, ny), recs, time.Time{}))
	if decisions(a.Changed) != "allowed>capped" || a.FirstCapped == nil || a.FirstCapped.ID != 2 {
		t.Fatalf("changed %q, first capped %+v", decisions(a.Changed), a.FirstCapped)
	}
	if len(a.Stopped) != 1 || a.Stopped[0] != usd(20) {
		t.Fatalf("stopped %v, want 20.00 USD", a.Stopped)
	}
}

// TestOnlyWhatNewAdmitsCounts: a call the recorded policy refused and the
// new one admits counts its amount (an estimate) against the next; one
// the new policy refuses counts nothing.
func TestOnlyWhatNewAdmitsCounts(t *testing.T) {
	recs := []*audit.Record{refund(1, t0, usd(20)), capped(refund(2, t0.Add(time.Second), usd(20))),
		capped(refund(3, t0.Add(2*time.Second), usd(20)))}
	looser := strings.Replace(basePolicy, "30.00 USD", "50.00 USD", 1)
	a := agentOf(t, Replay(parse(t, looser), recs, time.Time{}))
	if decisions(a.Changed) != "capped>allowed" || a.Estimated != 1 || len(a.LetThrough) != 1 || a.LetThrough[0] != usd(20) {
		t.Fatalf("changed %q, %d estimated, let through %v", decisions(a.Changed), a.Estimated, a.LetThrough)
	}
	if len(a.Reruled) != 0 {
		t.Fatalf("reruled %+v", a.Reruled)
	}
}

// TestRollingWindowsAndTrips: a window admits its count in any interval,
// counting the calls recorded after the one it decides; a window that
// halts refuses every later call of the agent, as tripped.
func TestRollingWindowsAndTrips(t *testing.T) {
	rate := strings.Replace(basePolicy, "      allow:", "      rate:\n        - {count: 2, per: 1m, halt: true}\n      allow:", 1)
	recs := []*audit.Record{refund(1, t0, usd(1)), refund(2, t0.Add(10*time.Second), usd(1)),
		refund(3, t0.Add(20*time.Second), usd(1)), refund(4, t0.Add(2*time.Minute), usd(1))}
	a := agentOf(t, Replay(parse(t, rate), recs, time.Time{}))
	if decisions(a.Changed) != "allowed>capped allowed>revoked" {
		t.Fatalf("changed %q", decisions(a.Changed))
	}
	if c := a.Changed[0]; c.To.Code != "keybrake_rate_count" || !strings.Contains(c.To.Reason, "2026-11-25T12:01:00Z") {
		t.Fatalf("capped by %s: %s (the window frees at the first call's minute)", c.To.Code, c.To.Reason)
	}
	if c := a.Changed[1]; c.To.Code != "keybrake_tripped" || c.To.Rule != "agents.refund-bot.stripe.rate[0]" {
		t.Fatalf("after the trip: %+v", c.To)
	}

	// Without halt, the fourth call is in a new window.
	a = agentOf(t, Replay(parse(t, strings.Replace(rate, ", halt: true", "", 1)), recs, time.Time{}))
	if decisions(a.Changed) != "allowed>capped" {
		t.Fatalf("changed %q", decisions(a.Changed))
	}
}

// TestNotReplayed: refusals the policy did not make are counted by
// reason, never as changed, whatever the new policy says; a decision
// replay does not know is one of them.
func TestNotReplayed(t *testing.T) {
	refusal := func(id uint64, d policy.Decision, rule, code string) *audit.Record {
		r := refund(id, t0, usd(1))
		r.Decision, r.Rule, r.Code, r.Outcome, r.Settled, r.Reserved = d, rule, code, audit.None, money.Amount{}, money.Amount{}
		return r
	}
	recs := []*audit.Record{
		{ID: 1, Time: t0, Event: "policy_reload", PolicyHash: "abc"},
		refusal(2, policy.Revoked, "agents.refund-bot.stripe.rate[0]", "keybrake_tripped"),
		refusal(3, policy.Revoked, "halt", "keybrake_halted"),
		refusal(4, policy.Revoked, "keys", "keybrake_key_unknown"),
		refusal(5, policy.Error, "store", "keybrake_store_error"),
		refusal(6, policy.Blocked, "request", "keybrake_bad_param"),
		refusal(7, "paused", "agents.refund-bot.stripe.pause", "keybrake_paused"), // a decision of a later Keybrake
		refusal(8, policy.Blocked, "agents.refund-bot.stripe.allow[0]", "keybrake_idempotency_key_reused"),
		refusal(9, policy.Blocked, "agents.refund-bot.stripe.approve[0]", "keybrake_approval_denied"),
	}
	rep := Replay(parse(t, basePolicy), recs, time.Time{})
	a := agentOf(t, rep)
	if a.Replayed != 0 || len(a.Changed) != 0 {
		t.Fatalf("%d replayed, changed %q", a.Replayed, decisions(a.Changed))
	}
	if len(a.NotReplayed) != 8 {
		t.Fatalf("not replayed %v, want 8 reasons", a.NotReplayed)
	}
	for reason := range a.NotReplayed {
		if !strings.Contains(reason, "keybrake_") {
			t.Errorf("reason %q does not name its code", reason)
		}
	}
	if len(rep.InForce) != 1 || rep.InForce[0] != "abc" {
		t.Fatalf("in force %v", rep.InForce)
	}
}

// TestUncertain: a call whose new decision rests on what the record does
// not keep is reported with why, not as changed.
func TestUncertain(t *testing.T) {
	scoped := func(scope string) string {
		return strings.Replace(basePolicy, "      allow:", scope+"      allow:", 1)
	}
	for _, tt := range []struct {
		name, policy, why string
		call              func(*audit.Record)
	}{
		{"customer metadata", scoped("      customers:\n        metadata: {cohort: beta}\n"), "metadata of customer cus_1",
			func(r *audit.Record) { r.Customer = "cus_1" }},
		{"created by the agent", scoped("      customers:\n        created_by_agent: true\n"), "created customer cus_1",
			func(r *audit.Record) { r.Customer = "cus_1" }},
		{"customer never looked up", scoped("      customers:\n        ids: [cus_1]\n"), "not looked up",
			func(r *audit.Record) { r.CustomerUnknown = true }},
		{"a redacted parameter", strings.Replace(basePolicy, "allow: [POST /v1/refunds]",
			"allow:\n        - {method: POST, path: /v1/refunds, params: {\"metadata[token]\": x}}", 1), "redacted",
			func(*audit.Record) {}},
		{"a parameter kept as a summary", strings.Replace(basePolicy, "allow: [POST /v1/refunds]",
			"allow:\n        - {method: POST, path: /v1/refunds, params: {Body: hello}}", 1), "redacted",
			func(r *audit.Record) { r.Params = map[string]string{"Body.chars": "5"} }},
		{"recorded before replay", basePolicy, "recorded before",
			func(r *audit.Record) { r.MovesMoney, r.Count = false, 0 }},
		{"amount never resolved", basePolicy, "amount",
			func(r *audit.Record) {
				r.Amount = money.Amount{}
				capped(r)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := refund(1, t0, usd(10))
			tt.call(r)
			a := agentOf(t, Replay(parse(t, tt.policy), []*audit.Record{r}, time.Time{}))
			if len(a.Uncertain) != 1 || !strings.Contains(a.Uncertain[0].Why, tt.why) || len(a.Changed) != 0 {
				t.Fatalf("uncertain %+v, changed %q; want one saying %q", a.Uncertain, decisions(a.Changed), tt.why)
			}
		})
	}
}

// TestRecipientsWithheld: an email whose recipients the record does not
// keep replays with certainty unless the new scope reads them.
func TestRecipientsWithheld(t *testing.T) {
	mail := `version: 1
vendors:
  resend:
    prices:
      email: 0.0004 USD
agents:
  mail-bot:
    resend:
      daily_cap: 1.00 USD
      allow: [POST /emails]
`
	r := &audit.Record{ID: 1, Time: t0, Agent: "mail-bot", Vendor: "resend", Method: "POST", Path: "/emails",
		Decision: policy.Allowed, Rule: "agents.mail-bot.resend.allow[0]", Outcome: audit.Settled, MovesMoney: true, Count: -1,
		Amount: money.Amount{Micros: 400, Currency: "USD"}, Settled: money.Amount{Micros: 400, Currency: "USD"},
		Priced: &policy.PriceQuery{Item: "email", Quantity: 1, Recipients: 1}, Senders: []string{"alerts@example.com"},
		RecipientsWithheld: true, MostRecipients: 1}
	for _, tt := range []struct {
		scope     string
		uncertain bool
	}{
		{"", false},
		{"      from: [alerts@example.com]\n", false},
		{"      recipients: [\"@example.com\"]\n", true},
	} {
		p := parse(t, strings.Replace(mail, "      allow:", tt.scope+"      allow:", 1))
		a := agentOf(t, Replay(p, []*audit.Record{r}, time.Time{}))
		if got := len(a.Uncertain) == 1; got != tt.uncertain || len(a.Changed) != 0 {
			t.Errorf("scope %q: uncertain %+v, changed %q", tt.scope, a.Uncertain, decisions(a.Changed))
		}
	}
}

// TestWarmupAndSince: the calls before since fill the counters and are
// not reported; Warmup reaches back to the day's start, or the week's
// Monday or the month's first day when the policy counts them, less the
// longest window.
func TestWarmupAndSince(t *testing.T) {
	recs := []*audit.Record{refund(1, t0, usd(20)), capped(refund(2, t0.Add(time.Hour), usd(20)))}
	recs[0].PolicyHash, recs[1].PolicyHash = "old", "new"
	rep := Replay(parse(t, basePolicy), recs, t0.Add(time.Minute))
	a := agentOf(t, rep)
	if a.Replayed != 1 || len(a.Changed) != 0 {
		t.Fatalf("%d replayed, changed %q", a.Replayed, decisions(a.Changed))
	}
	if strings.Join(rep.InForce, " ") != "old new" {
		t.Fatalf("in force %v, want the policy at since, then the next", rep.InForce)
	}
	// 2026-12-02 is a Wednesday: its Monday is in November.
	wednesday := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		budgets string
		want    time.Time
	}{
		{"", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{"      rate:\n        - {count: 2, per: 1h}\n", time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)},
		{"      monthly_cap: 100.00 USD\n", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"      weekly_cap: 100.00 USD\n      rate:\n        - {count: 2, per: 1h}\n", time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC)},
	} {
		p := parse(t, strings.Replace(basePolicy, "      allow:", tt.budgets+"      allow:", 1))
		if got := Warmup(p, wednesday); !got.Equal(tt.want) {
			t.Errorf("budgets %q: Warmup = %v, want %v", tt.budgets, got, tt.want)
		}
	}
}

// TestAbsentParameterIsNotSent: a parameter the record does not hold, and
// holds no trace of, was not sent: a condition on it refuses the call
// again, with certainty.
func TestAbsentParameterIsNotSent(t *testing.T) {
	p := parse(t, strings.Replace(basePolicy, "allow: [POST /v1/refunds]",
		"allow:\n        - {method: POST, path: /v1/refunds, params: {reason: duplicate}}", 1))
	r := refund(1, t0, usd(10))
	r.Decision, r.Rule, r.Code, r.Outcome, r.Settled, r.Reserved = policy.Blocked, "agents.refund-bot.stripe.allow[0]",
		"keybrake_param_not_allowed", audit.None, money.Amount{}, money.Amount{}
	r.Params = map[string]string{"charge": "ch_1", "amount": "1000"}
	a := agentOf(t, Replay(p, []*audit.Record{r}, time.Time{}))
	if len(a.Changed) != 0 || len(a.Reruled) != 0 || len(a.Uncertain) != 0 {
		t.Fatalf("changed %q, reruled %+v, uncertain %+v", decisions(a.Changed), a.Reruled, a.Uncertain)
	}
	r.Params["reason"] = "duplicate"
	r.Decision, r.Code = policy.Allowed, ""
	if a := agentOf(t, Replay(p, []*audit.Record{r}, time.Time{})); len(a.Changed) != 0 || len(a.Uncertain) != 0 {
		t.Fatalf("with the parameter: changed %q, uncertain %+v", decisions(a.Changed), a.Uncertain)
	}
}
