package policy_test

import (
	"fmt"
	"net/url"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

func Example() {
	p, err := policy.Parse("keybrake.yaml", []byte(`
version: 1
fx:
  EUR: 1.0850 USD
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      per_call_max: 50.00 USD
      allow:
        - POST /v1/refunds
        - method: POST
          path: /v1/payment_intents
          params: {capture_method: manual}
`))
	if err != nil {
		fmt.Println(err)
		return
	}

	// A refund of 20.00 EUR: allowed, and counted as 21.70 USD against the
	// day's cap.
	refund := policy.Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
		Params: url.Values{"charge": {"ch_1"}, "amount": {"2000"}, "currency": {"eur"}}}
	v, rule := p.Authorize(refund)
	fmt.Println(v.Decision, v.Rule)
	amount, _ := money.FromMinor(2000, "EUR")
	limits, v := p.Limits(refund, rule, amount, 1, "2026-11-25")
	fmt.Println(v.Decision)
	for _, l := range limits {
		fmt.Printf("%s: add %d of %d (%s)\n", l.Key, l.Add, l.Max, l.Rule)
	}

	// 60.00 USD is over the per-call maximum.
	_, v = p.Limits(refund, rule, money.Amount{Micros: 60_000_000, Currency: "USD"}, 1, "2026-11-25")
	fmt.Printf("%s %d %s: %s\n", v.Decision, v.Decision.Status(), v.Code, v.Reason)

	// A payment intent captured immediately is not what the rule allows.
	intent := policy.Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/payment_intents",
		Params: url.Values{"amount": {"1099"}, "currency": {"usd"}, "capture_method": {"automatic"}}}
	v, _ = p.Authorize(intent)
	fmt.Printf("%s %d %s %s: %s\n", v.Decision, v.Decision.Status(), v.Rule, v.Code, v.Reason)

	// Nor is a transfer.
	v, _ = p.Authorize(policy.Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/transfers"})
	fmt.Printf("%s %s: %s\n", v.Decision, v.Code, v.Reason)

	// Output:
	// allowed agents.refund-bot.stripe.allow[0]
	// allowed
	// agent/refund-bot/stripe/2026-11-25/USD: add 21700000 of 500000000 (agents.refund-bot.stripe.daily_cap)
	// capped 402 keybrake_per_call_max: 60.00 USD exceeds the per-call maximum of 50.00 USD
	// blocked 403 agents.refund-bot.stripe.allow[1] keybrake_param_not_allowed: parameter capture_method must be "manual"; the call sent "automatic"
	// blocked keybrake_not_allowed: no allow rule for POST /v1/transfers
}

func ExampleParse_error() {
	_, err := policy.Parse("keybrake.yaml", []byte(`version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500 dollars
`))
	fmt.Println(err)
	// Output:
	// keybrake.yaml:5: daily_cap: amount "500 dollars": "dollars" is not an upper-case ISO 4217 currency code
}
