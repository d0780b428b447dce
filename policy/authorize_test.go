package policy

import (
	"net/url"
	"strings"
	"sync"
	"testing"
)

const authorizePolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      allow:
        - POST /v1/refunds
        - GET /v1/charges/{id}
        - method: POST
          path: /v1/payment_intents
          params: {capture_method: manual}
        - method: POST
          path: /v1/payment_intents
          params:
            capture_method: [automatic, automatic_async]
            confirm: "false"
        - method: POST
          path: /v1/customers/{id}
          params: {"metadata[tier]": gold}
  billing-bot:
    revoked: true
    stripe:
      allow: [POST /v1/charges]
  mute-bot:
    stripe:
      allow: []
`

func req(agent, vendor, method, path string, params ...string) Request {
	r := Request{Agent: agent, Vendor: vendor, Method: method, Path: path, Params: url.Values{}}
	for i := 0; i+1 < len(params); i += 2 {
		r.Params.Add(params[i], params[i+1])
	}
	return r
}

func TestAuthorize(t *testing.T) {
	p := mustParse(t, "keybrake.yaml", []byte(authorizePolicy))
	halted := mustParse(t, "keybrake.yaml", []byte("halt: true\n"+authorizePolicy))

	const (
		rb     = "refund-bot"
		stripe = "stripe"
	)
	tests := []struct {
		name string
		p    *Policy
		r    Request
		want Verdict
	}{
		{"halt refuses an allowed call", halted, req(rb, stripe, "POST", "/v1/refunds"),
			Verdict{Revoked, "halt", "keybrake_halted", "the policy halts every agent (halt: true)"}},
		{"halt comes before the agent lookup", halted, req("ghost", stripe, "POST", "/v1/refunds"),
			Verdict{Revoked, "halt", "keybrake_halted", "the policy halts every agent (halt: true)"}},
		{"unknown agent", p, req("ghost", stripe, "POST", "/v1/refunds"),
			Verdict{Blocked, "agents", "keybrake_unknown_agent", `agent "ghost" is not in the policy`}},
		{"agent names are exact", p, req("Refund-Bot", stripe, "POST", "/v1/refunds"),
			Verdict{Blocked, "agents", "keybrake_unknown_agent", `agent "Refund-Bot" is not in the policy`}},
		{"revoked agent", p, req("billing-bot", stripe, "POST", "/v1/charges"),
			Verdict{Revoked, "agents.billing-bot.revoked", "keybrake_revoked", "agent billing-bot is revoked (revoked: true in the policy)"}},
		{"revocation comes before the grant", p, req("billing-bot", "twilio", "POST", "/v1/charges"),
			Verdict{Revoked, "agents.billing-bot.revoked", "keybrake_revoked", "agent billing-bot is revoked (revoked: true in the policy)"}},
		{"vendor not granted", p, req(rb, "twilio", "POST", "/2010-04-01/Accounts/AC1/Messages.json"),
			Verdict{Blocked, "agents.refund-bot", "keybrake_vendor_not_granted", `agent refund-bot has no grant for "twilio"`}},
		{"allowed", p, req(rb, stripe, "POST", "/v1/refunds", "charge", "ch_1", "amount", "100"),
			Verdict{Decision: Allowed, Rule: "agents.refund-bot.stripe.allow[0]"}},
		{"allowed through a placeholder", p, req(rb, stripe, "GET", "/v1/charges/ch_1"),
			Verdict{Decision: Allowed, Rule: "agents.refund-bot.stripe.allow[1]"}},
		{"parameter condition holds, other parameters free", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "manual", "amount", "1099"),
			Verdict{Decision: Allowed, Rule: "agents.refund-bot.stripe.allow[2]"}},
		{"a later rule allows what an earlier one refused", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "automatic_async", "confirm", "false"),
			Verdict{Decision: Allowed, Rule: "agents.refund-bot.stripe.allow[3]"}},
		{"bracketed parameter name", p, req(rb, stripe, "POST", "/v1/customers/cus_1", "metadata[tier]", "gold"),
			Verdict{Decision: Allowed, Rule: "agents.refund-bot.stripe.allow[4]"}},
		{"wrong value: the first rule that matched the path explains", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "automatic"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[2]", "keybrake_param_not_allowed",
				`parameter capture_method must be "manual"; the call sent "automatic"`}},
		{"parameter absent", p, req(rb, stripe, "POST", "/v1/payment_intents", "amount", "1099"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[2]", "keybrake_param_not_allowed",
				`parameter capture_method must be "manual"; the call did not send it`}},
		{"parameter sent twice", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "manual", "capture_method", "manual"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[2]", "keybrake_param_not_allowed",
				`parameter capture_method must be "manual", sent once; the call sent it 2 times`}},
		{"a nested form of a constrained parameter", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "manual", "capture_method[0]", "automatic"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[2]", "keybrake_param_not_allowed",
				`parameter capture_method must be "manual", sent once; the call also sent "capture_method[0]"`}},
		{"a longer name is another parameter", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "manual", "capture_method_x", "automatic"),
			Verdict{Decision: Allowed, Rule: "agents.refund-bot.stripe.allow[2]"}},
		{"values compare exactly", p, req(rb, stripe, "POST", "/v1/payment_intents", "capture_method", "Manual"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[2]", "keybrake_param_not_allowed",
				`parameter capture_method must be "manual"; the call sent "Manual"`}},
		{"a key that differs after decoding is another key", p, req(rb, stripe, "POST", "/v1/customers/cus_1", "metadata[tier] ", "gold"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[4]", "keybrake_param_not_allowed",
				`parameter metadata[tier] must be "gold"; the call did not send it`}},
		{"long values are cut in the reason", p, req(rb, stripe, "POST", "/v1/customers/cus_1", "metadata[tier]", strings.Repeat("x", 100)),
			Verdict{Blocked, "agents.refund-bot.stripe.allow[4]", "keybrake_param_not_allowed",
				`parameter metadata[tier] must be "gold"; the call sent "` + strings.Repeat("x", 64) + `"...`}},
		{"no rule for the path", p, req(rb, stripe, "POST", "/v1/transfers", "amount", "100"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow", "keybrake_not_allowed", "no allow rule for POST /v1/transfers"}},
		{"no rule for the method", p, req(rb, stripe, "GET", "/v1/refunds"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow", "keybrake_not_allowed", "no allow rule for GET /v1/refunds"}},
		{"methods are upper case", p, req(rb, stripe, "post", "/v1/refunds"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow", "keybrake_not_allowed", "no allow rule for post /v1/refunds"}},
		{"trailing slash", p, req(rb, stripe, "POST", "/v1/refunds/"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow", "keybrake_not_allowed", "no allow rule for POST /v1/refunds/"}},
		{"placeholders do not span segments", p, req(rb, stripe, "GET", "/v1/charges/ch_1/refunds"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow", "keybrake_not_allowed", "no allow rule for GET /v1/charges/ch_1/refunds"}},
		{"a path that is not plain is quoted", p, req(rb, stripe, "POST", "/v1/re funds\n"),
			Verdict{Blocked, "agents.refund-bot.stripe.allow", "keybrake_not_allowed", `no allow rule for POST "/v1/re funds\n"`}},
		{"empty allow list allows nothing", p, req("mute-bot", stripe, "GET", "/v1/balance"),
			Verdict{Blocked, "agents.mute-bot.stripe.allow", "keybrake_not_allowed", "no allow rule for GET /v1/balance"}},
		{"no policy", nil, req(rb, stripe, "POST", "/v1/refunds"),
			Verdict{Error, "policy", "keybrake_no_policy", "no policy is loaded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rule := tt.p.Authorize(tt.r)
			if got != tt.want {
				t.Fatalf("Authorize =\n %+v\nwant\n %+v", got, tt.want)
			}
			if !got.Decision.Valid() {
				t.Fatalf("invalid decision %q", got.Decision)
			}
			if (rule != nil) != (got.Decision == Allowed) {
				t.Fatalf("rule %v returned with %s", rule, got.Decision)
			}
			if rule != nil && rule.ID != got.Rule {
				t.Fatalf("returned rule %s, verdict names %s", rule.ID, got.Rule)
			}
		})
	}
}

// TestAuthorizeReturnsThePolicysRule checks the rule is the policy's own,
// not a copy, so that Limits reads its per-call maximum.
func TestAuthorizeReturnsThePolicysRule(t *testing.T) {
	p := mustParse(t, "keybrake.yaml", []byte(authorizePolicy))
	_, rule := p.Authorize(req("refund-bot", "stripe", "GET", "/v1/charges/ch_1"))
	if want := p.Agents["refund-bot"].Grants["stripe"].Allow[1]; rule != want {
		t.Fatalf("rule %p, want %p", rule, want)
	}
}

func TestAuthorizeConcurrent(t *testing.T) {
	p := mustParse(t, "keybrake.yaml", []byte(authorizePolicy))
	one := amt(t, "1.00 USD")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				v, rule := p.Authorize(req("refund-bot", "stripe", "POST", "/v1/refunds"))
				if v.Decision != Allowed {
					t.Errorf("Authorize = %+v", v)
					return
				}
				if _, lv := p.Limits(req("refund-bot", "stripe", "POST", "/v1/refunds"), rule, one, 1, "2026-11-25"); lv.Decision != Allowed {
					t.Errorf("Limits = %+v", lv)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestAuthorizeUncapped checks that a call the vendor says can move money
// Keybrake does not count passes only a rule that says uncapped: true.
func TestAuthorizeUncapped(t *testing.T) {
	p := mustParse(t, "keybrake.yaml", []byte(`version: 1
agents:
  sub-bot:
    stripe:
      daily_cap: 100.00 USD
      allow:
        - POST /v1/subscriptions
        - method: POST
          path: /v1/subscriptions/{id}
          params: {proration_behavior: none}
          uncapped: true
        - POST /v1/invoices
        - method: POST
          path: /v1/invoices
          uncapped: true
`))
	uncapped := func(r Request) Request { r.Uncapped = "Stripe charges a subscription's invoices itself"; return r }
	const sb, stripe = "sub-bot", "stripe"
	tests := []struct {
		name string
		r    Request
		want Verdict
	}{
		{"a rule without uncapped refuses", uncapped(req(sb, stripe, "POST", "/v1/subscriptions", "customer", "cus_1")),
			Verdict{Blocked, "agents.sub-bot.stripe.allow[0]", "keybrake_uncapped_money",
				"POST /v1/subscriptions can move money Keybrake does not count (Stripe charges a subscription's invoices itself); a rule allows it only with uncapped: true"}},
		{"the same rule allows a call the vendor counts", req(sb, stripe, "POST", "/v1/subscriptions", "customer", "cus_1"),
			Verdict{Decision: Allowed, Rule: "agents.sub-bot.stripe.allow[0]"}},
		{"uncapped: true allows", uncapped(req(sb, stripe, "POST", "/v1/subscriptions/sub_1", "proration_behavior", "none")),
			Verdict{Decision: Allowed, Rule: "agents.sub-bot.stripe.allow[1]"}},
		{"uncapped: true keeps its parameter conditions", uncapped(req(sb, stripe, "POST", "/v1/subscriptions/sub_1", "proration_behavior", "always_invoice")),
			Verdict{Blocked, "agents.sub-bot.stripe.allow[1]", "keybrake_param_not_allowed",
				`parameter proration_behavior must be "none"; the call sent "always_invoice"`}},
		{"a later rule with uncapped: true allows", uncapped(req(sb, stripe, "POST", "/v1/invoices", "customer", "cus_1")),
			Verdict{Decision: Allowed, Rule: "agents.sub-bot.stripe.allow[3]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := p.Authorize(tt.r); got != tt.want {
				t.Errorf("Authorize =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}
