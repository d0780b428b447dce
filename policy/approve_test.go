package policy

import (
	"net/url"
	"strings"
	"testing"
)

const approvePolicy = `version: 1
fx:
  EUR: 1.10 USD
agents:
  payout-bot:
    stripe:
      daily_cap: 5000.00 USD
      approve_above: 200.00 USD
      approve:
        - POST /v1/transfers
        - {method: POST, path: /v1/refunds, params: {reason: [fraudulent]}}
      allow: [POST /v1/transfers, POST /v1/refunds, GET /v1/balance]
`

func TestApprovals(t *testing.T) {
	p := mustParse(t, "approve.yaml", []byte(approvePolicy))
	decide := func(method, path string, params url.Values, amount string) (Verdict, Charge) {
		t.Helper()
		r := Request{Agent: "payout-bot", Vendor: "stripe", Method: method, Path: path, Params: params}
		v, rule := p.Authorize(r)
		must(t, Allowed, v.Decision, "authorize ", method, " ", path)
		c := Call{Request: r, MovesMoney: amount != ""}
		if amount != "" {
			c.Amount = amt(t, amount)
		}
		return p.Decide(c, rule, "2026-12-04")
	}
	cases := []struct {
		name, method, path string
		params             url.Values
		amount             string
		want               Decision
		rule               string
	}{
		{"a refund at the threshold", "POST", "/v1/refunds", nil, "200.00 USD", Allowed, "agents.payout-bot.stripe.allow[1]"},
		{"a refund one cent above", "POST", "/v1/refunds", nil, "200.01 USD", Held, "agents.payout-bot.stripe.approve_above"},
		{"converted above", "POST", "/v1/refunds", nil, "190.00 EUR", Held, "agents.payout-bot.stripe.approve_above"},
		{"converted below", "POST", "/v1/refunds", nil, "100.00 EUR", Allowed, "agents.payout-bot.stripe.allow[1]"},
		{"every transfer, however small", "POST", "/v1/transfers", nil, "1.00 USD", Held, "agents.payout-bot.stripe.approve[0]"},
		{"a refund the rule's params match", "POST", "/v1/refunds", url.Values{"reason": {"fraudulent"}}, "1.00 USD", Held, "agents.payout-bot.stripe.approve[1]"},
		{"a refund they do not", "POST", "/v1/refunds", url.Values{"reason": {"duplicate"}}, "1.00 USD", Allowed, "agents.payout-bot.stripe.allow[1]"},
		{"a read", "GET", "/v1/balance", nil, "", Allowed, "agents.payout-bot.stripe.allow[2]"},
	}
	for _, tc := range cases {
		v, ch := decide(tc.method, tc.path, tc.params, tc.amount)
		eq(t, tc.want, v.Decision, tc.name)
		eq(t, tc.rule, v.Rule, tc.name)
		if v.Decision != Held {
			continue
		}
		eq(t, "keybrake_approval_required", v.Code, tc.name)
		eq(t, 403, v.Decision.Status(), tc.name)
		if !strings.Contains(v.Reason, "approve") {
			t.Errorf("%s: reason %q does not say a person must approve", tc.name, v.Reason)
		}
		// A held call carries what it counts once approved.
		if len(ch.Limits) == 0 || ch.Amount.IsZero() {
			t.Errorf("%s: held with charge %+v; want its limits and amount", tc.name, ch)
		}
	}
}

func TestApprovalsParse(t *testing.T) {
	for _, bad := range []string{"approve_above: lots", "approve: POST /v1/transfers", "approve: [POST]"} {
		_, err := Parse("bad.yaml", []byte("version: 1\nagents:\n  a:\n    stripe:\n      daily_cap: 1.00 USD\n      "+bad+"\n      allow: [POST /v1/refunds]\n"))
		if err == nil {
			t.Errorf("%s: parsed", bad)
		}
	}
}
