package policy

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/keybrake/keybrake/money"
)

// sharedPolicy has a vendor-wide cap and fx rates; every agent's Stripe
// money also counts against vendors.stripe.
const sharedPolicy = `version: 1
fx:
  EUR: 1.0850 USD
  JPY: 0.006700 USD
  GBP: 1.1700 EUR        # GBP converts to EUR only: never chained on to USD
vendors:
  stripe:
    daily_cap: 2000.00 USD
    daily_count: 10000
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      per_call_max: 50.00 USD
      daily_count: 100
      allow:
        - POST /v1/refunds
        - method: POST
          path: /v1/charges
          per_call_max: 5.00 USD
        - method: POST
          path: /v1/transfers
          per_call_max: 60.00 EUR
        - GET /v1/balance
        - method: POST
          path: /v1/payouts
          per_call_max: 100.00 USD   # looser than the grant's: the grant's still applies
  gbp-bot:
    stripe:
      daily_cap: 100.00 GBP
      allow: [POST /v1/refunds]
  nocap-bot:
    stripe:
      allow: [POST /v1/refunds]
  texter:
    twilio:
      daily_cap: 10.00 USD
      daily_count: 1000
      allow: ["POST /2010-04-01/Accounts/{sid}/Messages.json"]   # quoted: { opens a mapping in [...]
`

// soloPolicy has no vendor limits: zero- and three-decimal currencies.
const soloPolicy = `version: 1
agents:
  jpy-bot:
    stripe:
      daily_cap: 100000 JPY
      per_call_max: 5000 JPY
      allow: [POST /v1/charges]
  kwd-bot:
    stripe:
      daily_cap: 12.345 KWD
      per_call_max: 0.500 KWD
      allow: [POST /v1/refunds]
`

func micros(t testing.TB, s string) money.Amount {
	t.Helper()
	a, err := money.ParsePrice(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLimits(t *testing.T) {
	pols := map[string]*Policy{
		"shared": mustParse(t, "shared.yaml", []byte(sharedPolicy)),
		"solo":   mustParse(t, "solo.yaml", []byte(soloPolicy)),
	}
	const day = "2026-11-25"
	refund := req("refund-bot", "stripe", "POST", "/v1/refunds")
	charge := req("refund-bot", "stripe", "POST", "/v1/charges")
	transfer := req("refund-bot", "stripe", "POST", "/v1/transfers")
	usd := func(m int64) Limit {
		return Limit{Key: "agent/refund-bot/stripe/" + day + "/USD", Max: 500_000_000, Add: m, Unit: "USD", Rule: "agents.refund-bot.stripe.daily_cap", Period: day}
	}
	vendorUSD := func(m int64) Limit {
		return Limit{Key: "vendor/stripe/" + day + "/USD", Max: 2_000_000_000, Add: m, Unit: "USD", Rule: "vendors.stripe.daily_cap", Period: day}
	}
	units := func(n int64) []Limit {
		return []Limit{
			{Key: "agent/refund-bot/stripe/" + day + "/units", Max: 100, Add: n, Unit: "units", Rule: "agents.refund-bot.stripe.daily_count", Period: day},
			{Key: "vendor/stripe/" + day + "/units", Max: 10000, Add: n, Unit: "units", Rule: "vendors.stripe.daily_count", Period: day},
		}
	}
	allowed := func(i int) Verdict {
		return Verdict{Decision: Allowed, Rule: fmt.Sprintf("agents.refund-bot.stripe.allow[%d]", i)}
	}

	tests := []struct {
		name   string
		pol    string
		r      Request
		amount money.Amount
		count  int64
		day    string
		want   []Limit
		v      Verdict
	}{
		{"every limit, in order", "shared", refund, amt(t, "10.00 USD"), 1, day,
			append([]Limit{usd(10_000_000), vendorUSD(10_000_000)}, units(1)...), allowed(0)},
		{"the day is in every key", "shared", refund, amt(t, "10.00 USD"), 0, "2027-01-01",
			[]Limit{
				{Key: "agent/refund-bot/stripe/2027-01-01/USD", Max: 500_000_000, Add: 10_000_000, Unit: "USD", Rule: "agents.refund-bot.stripe.daily_cap", Period: "2027-01-01"},
				{Key: "vendor/stripe/2027-01-01/USD", Max: 2_000_000_000, Add: 10_000_000, Unit: "USD", Rule: "vendors.stripe.daily_cap", Period: "2027-01-01"},
			}, allowed(0)},
		{"moves nothing, counts nothing", "shared", req("refund-bot", "stripe", "GET", "/v1/balance"), money.Amount{}, 0, day, nil, allowed(3)},
		{"moves nothing, counts units", "shared", req("refund-bot", "stripe", "GET", "/v1/balance"), money.Amount{}, 3, day, units(3), allowed(3)},
		{"zero in a currency no limit converts", "shared", refund, money.Amount{Currency: "CHF"}, 0, day, nil, allowed(0)},

		// per-call maxima: equal is allowed, one micro more is capped
		{"grant per_call_max, equal", "shared", refund, amt(t, "50.00 USD"), 0, day,
			[]Limit{usd(50_000_000), vendorUSD(50_000_000)}, allowed(0)},
		{"grant per_call_max, one micro more", "shared", refund, money.Amount{Micros: 50_000_001, Currency: "USD"}, 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.per_call_max", "keybrake_per_call_max", "50.000001 USD exceeds the per-call maximum of 50.00 USD"}},
		{"rule per_call_max, equal", "shared", charge, amt(t, "5.00 USD"), 0, day,
			[]Limit{usd(5_000_000), vendorUSD(5_000_000)}, allowed(1)},
		{"rule per_call_max, one cent more", "shared", charge, amt(t, "5.01 USD"), 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.allow[1].per_call_max", "keybrake_per_call_max", "5.01 USD exceeds the per-call maximum of 5.00 USD"}},
		{"both exceeded: the stricter is named", "shared", charge, amt(t, "60.00 USD"), 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.allow[1].per_call_max", "keybrake_per_call_max", "60.00 USD exceeds the per-call maximum of 5.00 USD"}},

		// fx: direct rates only, rounded up
		{"converted into the limit's currency", "shared", refund, amt(t, "10.00 EUR"), 0, day,
			[]Limit{usd(10_850_000), vendorUSD(10_850_000)}, allowed(0)},
		{"conversion rounds up to the micro", "shared", refund, money.Amount{Micros: 1, Currency: "EUR"}, 0, day,
			[]Limit{usd(2), vendorUSD(2)}, allowed(0)},
		{"converted per_call_max, just under", "shared", refund, amt(t, "7462 JPY"), 0, day,
			[]Limit{usd(49_995_400), vendorUSD(49_995_400)}, allowed(0)},
		{"converted per_call_max, just over", "shared", refund, amt(t, "7463 JPY"), 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.per_call_max", "keybrake_per_call_max", "7463 JPY (50.0021 USD) exceeds the per-call maximum of 50.00 USD"}},
		{"each maximum in its own currency: rule in EUR passes, grant in USD caps", "shared", transfer, amt(t, "46.09 EUR"), 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.per_call_max", "keybrake_per_call_max", "46.09 EUR (50.00765 USD) exceeds the per-call maximum of 50.00 USD"}},
		{"each maximum in its own currency: both pass", "shared", transfer, amt(t, "46.08 EUR"), 0, day,
			[]Limit{usd(49_996_800), vendorUSD(49_996_800)}, allowed(2)},
		{"both exceeded: the stricter grant maximum is named over a looser rule", "shared", req("refund-bot", "stripe", "POST", "/v1/payouts"), amt(t, "150.00 USD"), 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.per_call_max", "keybrake_per_call_max", "150.00 USD exceeds the per-call maximum of 50.00 USD"}},
		{"a looser rule maximum does not lift the grant's", "shared", req("refund-bot", "stripe", "POST", "/v1/payouts"), amt(t, "50.01 USD"), 0, day, nil,
			Verdict{Capped, "agents.refund-bot.stripe.per_call_max", "keybrake_per_call_max", "50.01 USD exceeds the per-call maximum of 50.00 USD"}},
		{"converted for one maximum, not convertible for the other", "shared", transfer, amt(t, "1.00 GBP"), 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe.per_call_max", "keybrake_currency_not_capped",
				"a call in GBP cannot count against 50.00 USD: fx has no rate from GBP to USD"}},
		{"rates are not inverted", "shared", transfer, amt(t, "30.00 USD"), 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe.allow[2].per_call_max", "keybrake_currency_not_capped",
				"a call in USD cannot count against 60.00 EUR: fx has no rate from USD to EUR"}},
		{"no rate for the grant's per_call_max", "shared", refund, amt(t, "1.00 CHF"), 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe.per_call_max", "keybrake_currency_not_capped",
				"a call in CHF cannot count against 50.00 USD: fx has no rate from CHF to USD"}},
		{"no rate for the daily cap", "shared", req("texter", "twilio", "POST", "/2010-04-01/Accounts/AC1/Messages.json"), amt(t, "1.00 GBP"), 1, day, nil,
			Verdict{Blocked, "agents.texter.twilio.daily_cap", "keybrake_currency_not_capped",
				"a call in GBP cannot count against 10.00 USD: fx has no rate from GBP to USD"}},
		{"rates are not chained, vendor cap", "shared", req("gbp-bot", "stripe", "POST", "/v1/refunds"), amt(t, "1.00 GBP"), 0, day, nil,
			Verdict{Blocked, "vendors.stripe.daily_cap", "keybrake_currency_not_capped",
				"a call in GBP cannot count against 2000.00 USD: fx has no rate from GBP to USD"}},
		{"fractions of a cent, units", "shared", req("texter", "twilio", "POST", "/2010-04-01/Accounts/AC1/Messages.json"), micros(t, "0.0158 USD"), 2, day,
			[]Limit{
				{Key: "agent/texter/twilio/" + day + "/USD", Max: 10_000_000, Add: 15_800, Unit: "USD", Rule: "agents.texter.twilio.daily_cap", Period: day},
				{Key: "agent/texter/twilio/" + day + "/units", Max: 1000, Add: 2, Unit: "units", Rule: "agents.texter.twilio.daily_count", Period: day},
			}, Verdict{Decision: Allowed, Rule: "agents.texter.twilio.allow[0]"}},

		// money needs a cap
		{"money without a daily cap", "shared", req("nocap-bot", "stripe", "POST", "/v1/refunds"), amt(t, "0.01 USD"), 0, day, nil,
			Verdict{Blocked, "agents.nocap-bot.stripe", "keybrake_no_cap", "agent nocap-bot has no daily_cap on stripe; calls that move money need one"}},
		{"no money, no cap needed", "shared", req("nocap-bot", "stripe", "POST", "/v1/refunds"), money.Amount{}, 1, day,
			[]Limit{{Key: "vendor/stripe/" + day + "/units", Max: 10000, Add: 1, Unit: "units", Rule: "vendors.stripe.daily_count", Period: day}},
			Verdict{Decision: Allowed, Rule: "agents.nocap-bot.stripe.allow[0]"}},

		// zero- and three-decimal currencies
		{"JPY at the maximum", "solo", req("jpy-bot", "stripe", "POST", "/v1/charges"), amt(t, "5000 JPY"), 0, day,
			[]Limit{{Key: "agent/jpy-bot/stripe/" + day + "/JPY", Max: 100_000_000_000, Add: 5_000_000_000, Unit: "JPY", Rule: "agents.jpy-bot.stripe.daily_cap", Period: day}},
			Verdict{Decision: Allowed, Rule: "agents.jpy-bot.stripe.allow[0]"}},
		{"JPY one yen over", "solo", req("jpy-bot", "stripe", "POST", "/v1/charges"), amt(t, "5001 JPY"), 0, day, nil,
			Verdict{Capped, "agents.jpy-bot.stripe.per_call_max", "keybrake_per_call_max", "5001 JPY exceeds the per-call maximum of 5000 JPY"}},
		{"KWD at the maximum", "solo", req("kwd-bot", "stripe", "POST", "/v1/refunds"), amt(t, "0.500 KWD"), 0, day,
			[]Limit{{Key: "agent/kwd-bot/stripe/" + day + "/KWD", Max: 12_345_000, Add: 500_000, Unit: "KWD", Rule: "agents.kwd-bot.stripe.daily_cap", Period: day}},
			Verdict{Decision: Allowed, Rule: "agents.kwd-bot.stripe.allow[0]"}},
		{"KWD one fils over", "solo", req("kwd-bot", "stripe", "POST", "/v1/refunds"), amt(t, "0.501 KWD"), 0, day, nil,
			Verdict{Capped, "agents.kwd-bot.stripe.per_call_max", "keybrake_per_call_max", "0.501 KWD exceeds the per-call maximum of 0.500 KWD"}},

		{"units without a count limit", "solo", req("kwd-bot", "stripe", "POST", "/v1/refunds"), money.Amount{}, 5, day, nil,
			Verdict{Decision: Allowed, Rule: "agents.kwd-bot.stripe.allow[0]"}},

		// bad input
		{"negative amount", "shared", refund, money.Amount{Micros: -1, Currency: "USD"}, 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe", "keybrake_bad_amount", "the call's amount -0.000001 USD is negative"}},
		{"amount without a currency", "shared", refund, money.Amount{Micros: 1}, 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe", "keybrake_bad_amount", `the call's amount has no currency Keybrake knows ("")`}},
		{"amount in an unknown currency", "shared", refund, money.Amount{Micros: 1, Currency: "usd"}, 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe", "keybrake_bad_amount", `the call's amount has no currency Keybrake knows ("usd")`}},
		{"conversion overflow", "shared", refund, money.Amount{Micros: math.MaxInt64, Currency: "EUR"}, 0, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe.per_call_max", "keybrake_bad_amount", "the call's amount 9223372036854.775807 EUR is too large to convert to USD"}},
		{"negative count", "shared", refund, money.Amount{}, -1, day, nil,
			Verdict{Blocked, "agents.refund-bot.stripe", "keybrake_bad_count", "the call's unit count is negative"}},
		{"day out of range", "shared", refund, amt(t, "1.00 USD"), 0, "2026-13-01", nil,
			Verdict{Error, "agents", "keybrake_bad_day", `day "2026-13-01" is not a date like 2006-01-02`}},
		{"day with a slash would forge a key", "shared", refund, amt(t, "1.00 USD"), 0, "2026/11/25", nil,
			Verdict{Error, "agents", "keybrake_bad_day", `day "2026/11/25" is not a date like 2006-01-02`}},
		{"day with a time", "shared", refund, amt(t, "1.00 USD"), 0, "2026-11-25T00:00:00Z", nil,
			Verdict{Error, "agents", "keybrake_bad_day", `day "2026-11-25T00:00:00Z" is not a date like 2006-01-02`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pols[tt.pol]
			av, rule := p.Authorize(tt.r)
			if av.Decision != Allowed {
				t.Fatalf("Authorize = %+v", av)
			}
			got, v := p.Limits(tt.r, rule, tt.amount, tt.count, tt.day)
			if v != tt.v {
				t.Errorf("verdict =\n %+v\nwant\n %+v", v, tt.v)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("limits =\n %+v\nwant\n %+v", got, tt.want)
			}
			if v.Decision != Allowed && got != nil {
				t.Errorf("a refusal returned limits")
			}
		})
	}
}

// TestLimitsMisuse: Limits for a call Authorize did not allow on this
// policy is a bug in the caller, refused rather than counted.
func TestLimitsMisuse(t *testing.T) {
	p := mustParse(t, "shared.yaml", []byte(sharedPolicy))
	refund := req("refund-bot", "stripe", "POST", "/v1/refunds")
	_, rule := p.Authorize(refund)
	one := amt(t, "1.00 USD")
	mismatch := Verdict{Error, "agents", "keybrake_policy_mismatch", "limits were asked for a call this policy did not allow"}
	tests := []struct {
		name string
		p    *Policy
		r    Request
		rule *Rule
		want Verdict
	}{
		{"no rule", p, refund, nil, mismatch},
		{"unknown agent", p, req("ghost", "stripe", "POST", "/v1/refunds"), rule, mismatch},
		{"vendor not granted", p, req("refund-bot", "resend", "POST", "/emails"), rule, mismatch},
		{"no policy", nil, refund, rule, Verdict{Error, "policy", "keybrake_no_policy", "no policy is loaded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits, v := tt.p.Limits(tt.r, tt.rule, one, 1, "2026-11-25")
			if v != tt.want || limits != nil {
				t.Fatalf("Limits = %v, %+v; want nil, %+v", limits, v, tt.want)
			}
		})
	}
}

// TestLimitsConversionRoundsUp checks, against exact rational arithmetic,
// that a converted amount never understates a call and overstates it by
// less than one micro.
func TestLimitsConversionRoundsUp(t *testing.T) {
	p := mustParse(t, "shared.yaml", []byte(sharedPolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/refunds")
	_, rule := p.Authorize(r)
	rate := big.NewRat(1_085_000, 1_000_000) // EUR: 1.0850 USD
	for m := int64(1); m <= 46_082_949; m = m*3 + 7 {
		limits, v := p.Limits(r, rule, money.Amount{Micros: m, Currency: "EUR"}, 0, "2026-11-25")
		if v.Decision != Allowed || len(limits) == 0 {
			t.Fatalf("%d micros EUR: %+v", m, v)
		}
		exact := new(big.Rat).Mul(big.NewRat(m, 1), rate)
		add := big.NewRat(limits[0].Add, 1)
		over := new(big.Rat).Sub(add, exact)
		if over.Sign() < 0 || over.Cmp(big.NewRat(1, 1)) >= 0 {
			t.Fatalf("%d micros EUR counted as %d micros USD; exact is %s", m, limits[0].Add, exact.FloatString(3))
		}
	}
}

func TestConvert(t *testing.T) {
	p := mustParse(t, "shared.yaml", []byte(sharedPolicy))
	tests := []struct {
		name string
		p    *Policy
		a    money.Amount
		to   money.Currency
		want money.Amount
		err  error
	}{
		{"same currency", p, amt(t, "10.00 USD"), "USD", amt(t, "10.00 USD"), nil},
		{"same currency without a policy", nil, amt(t, "10.00 USD"), "USD", amt(t, "10.00 USD"), nil},
		{"direct rate", p, amt(t, "10.00 EUR"), "USD", amt(t, "10.85 USD"), nil},
		{"rounds up", p, money.Amount{Micros: 1, Currency: "EUR"}, "USD", money.Amount{Micros: 2, Currency: "USD"}, nil},
		{"zero converts to zero", p, money.Amount{Currency: "EUR"}, "USD", money.Amount{Currency: "USD"}, nil},
		{"not inverted", p, amt(t, "10.00 USD"), "EUR", money.Amount{}, ErrNoRate},
		{"not chained", p, amt(t, "10.00 GBP"), "USD", money.Amount{}, ErrNoRate},
		{"no policy", nil, amt(t, "10.00 EUR"), "USD", money.Amount{}, ErrNoRate},
		{"overflow", p, money.Amount{Micros: math.MaxInt64, Currency: "EUR"}, "USD", money.Amount{}, money.ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.Convert(tt.a, tt.to)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Convert error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("Convert = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLimitsNamesRulesWithoutParse checks that a policy built by hand, whose
// grants carry no rule names written by Parse, names its limits as a parsed
// one does.
func TestLimitsNamesRulesWithoutParse(t *testing.T) {
	p := mustParse(t, "shared.yaml", []byte(sharedPolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/refunds")
	r.Customer, r.RefundOf = "cus_1", "ch_1"
	_, rule := p.Authorize(r)
	want, v := p.Limits(r, rule, amt(t, "10.00 USD"), 1, "2026-11-25")
	if v.Decision != Allowed {
		t.Fatal(v)
	}
	g := *rule.Grant()
	g.rules = grantRules{}
	shared := *p.Vendors["stripe"]
	shared.dailyCapRule, shared.dailyCountRule = "", ""
	byHand := *p
	byHand.Agents = map[string]*Agent{"refund-bot": {Name: "refund-bot", Grants: map[string]*Grant{"stripe": &g}}}
	byHand.Vendors = map[string]*VendorLimits{"stripe": &shared}
	got, v := byHand.Limits(r, rule, amt(t, "10.00 USD"), 1, "2026-11-25")
	if v.Decision != Allowed || !reflect.DeepEqual(got, want) {
		t.Errorf("by hand: %v %v\nparsed: %v", got, v, want)
	}
}

func checkDay(t *testing.T, day string) {
	t.Helper()
	_, err := time.Parse("2006-01-02", day)
	if got, want := validDay(day), len(day) == 10 && err == nil; got != want {
		t.Errorf("validDay(%q) = %v, time.Parse says %v (%v)", day, got, want, err)
	}
}

func TestValidDayMatchesTimeParse(t *testing.T) {
	for _, d := range []string{"", "2026-11-25", "2026-02-29", "2024-02-29", "2000-02-29", "1900-02-29", "0000-02-29", "9999-12-31",
		"2026-13-01", "2026-00-10", "2026-01-00", "2026-01-32", "2026-04-31", "2026-1-05", "2026-01-5 ", "+026-01-05", "2026/01/05",
		"2026-01-0a", "20261-01-05", "2026-01-05\n", "٢٠٢٦-01-05", " 2026-01-5"} {
		checkDay(t, d)
	}
	day := time.Date(2023, 12, 25, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 800; i++ {
		checkDay(t, day.AddDate(0, 0, i).Format("2006-01-02"))
	}
}

func FuzzValidDay(f *testing.F) {
	f.Add("2026-11-25")
	f.Add("2024-02-29")
	f.Add("2026-02-29")
	f.Fuzz(checkDay)
}
