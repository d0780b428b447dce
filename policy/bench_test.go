package policy

import (
	"context"
	"net/http"
	"testing"

	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/stripe"
)

func BenchmarkParse(b *testing.B) {
	data := readFile(b, "testdata/good/full.yaml")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := Parse("full.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize decides a call that only the last of five rules
// allows, through a placeholder and a parameter condition.
func BenchmarkAuthorize(b *testing.B) {
	p := mustParse(b, "keybrake.yaml", []byte(authorizePolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/customers/cus_1", "metadata[tier]", "gold", "email", "a@example.com")
	if v, _ := p.Authorize(r); v.Decision != Allowed {
		b.Fatal(v)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := p.Authorize(r); v.Decision != Allowed {
				b.Error(v)
				return
			}
		}
	})
}

func BenchmarkAuthorizeRefused(b *testing.B) {
	p := mustParse(b, "keybrake.yaml", []byte(authorizePolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/transfers", "amount", "100")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := p.Authorize(r); v.Decision != Blocked {
				b.Error(v)
				return
			}
		}
	})
}

// BenchmarkLimits counts a converted amount against an agent and a vendor
// cap, and both unit counts.
func BenchmarkLimits(b *testing.B) {
	p := mustParse(b, "shared.yaml", []byte(sharedPolicy))
	r := req("refund-bot", "stripe", "POST", "/v1/refunds")
	_, rule := p.Authorize(r)
	a := amt(b, "10.00 EUR")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if l, v := p.Limits(r, rule, a, 1, "2026-11-25"); v.Decision != Allowed || len(l) != 4 {
				b.Error(v)
				return
			}
		}
	})
}

// refundPolicy is a refund agent as the README writes one: caps, a
// shared cap, and a customer scope, so Decide checks scope and counts five
// limits.
const refundPolicy = `version: 1
vendors:
  stripe:
    daily_cap: 2000.00 USD
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      per_call_max: 50.00 USD
      daily_count: 100
      customers:
        ids: [cus_1, cus_2]
        daily_cap: 100.00 USD
      allow:
        - GET /v1/charges/{id}
        - method: POST
          path: /v1/payment_intents
          params: {capture_method: manual}
        - POST /v1/refunds
`

// BenchmarkDecideStripeRefund is the policy's part of a Stripe refund as
// stripe-go v76 sends it, in the transport's order (Authorize, the
// grant's Needs, Decide), on the call stripe.Vendor classified and
// resolved outside the loop. With vendors/stripe's
// BenchmarkClassifyStripeGoRefund it is the CPU of one decision.
func BenchmarkDecideStripeRefund(b *testing.B) {
	p := mustParse(b, "keybrake.yaml", []byte(refundPolicy))
	v := stripe.Vendor{}
	vc, err := v.Classify(&vendors.Request{
		Method: "POST", Host: stripe.APIHost, Path: "/v1/refunds",
		Header: http.Header{
			"Authorization":              {"Bearer sk_test_51abcDEFghiJKLmnoPQRstu"},
			"Content-Type":               {"application/x-www-form-urlencoded"},
			"Idempotency-Key":            {"refund-6735-1"},
			"Stripe-Version":             {"2023-10-16"},
			"User-Agent":                 {"Stripe/v1 GoBindings/76.25.0"},
			"X-Stripe-Client-User-Agent": {`{"application":null,"bindings_version":"76.25.0","lang":"go","lang_version":"go1.26.8","publisher":"stripe","uname":"Linux"}`},
		},
		Body: []byte("amount=1000&charge=ch_3MmlLrLkdIwHu7ix0snN0B15&metadata[order_id]=6735"),
	})
	if err != nil {
		b.Fatal(err)
	}
	get := func(context.Context, string) (int, []byte, error) {
		return 200, []byte(`{"id":"ch_3MmlLrLkdIwHu7ix0snN0B15","object":"charge","amount":5000,"amount_captured":5000,"amount_refunded":0,"captured":true,"currency":"usd","customer":"cus_1"}`), nil
	}
	if _, err := v.Resolve(context.Background(), vc, vendors.Need{Customer: true}, get, nil); err != nil {
		b.Fatal(err)
	}
	decide := func() (Verdict, Charge) {
		r := Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds", Params: vc.Params,
			Uncapped: vc.Uncapped, Customer: vc.Customer, Account: vc.Account, RefundOf: vc.RefundOf}
		v, rule := p.Authorize(r)
		if v.Decision != Allowed {
			return v, Charge{}
		}
		_ = rule.Grant().Needs()
		return p.Decide(Call{Request: r, Subject: Subject{Customer: vc.Customer, NoCustomer: vc.NoCustomer, Account: vc.Account},
			MovesMoney: vc.MovesMoney, Amount: vc.Amount, Count: vc.Count}, rule, "2026-11-25")
	}
	if v, ch := decide(); v.Decision != Allowed || len(ch.Limits) != 5 {
		b.Fatal(v, ch)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := decide(); v.Decision != Allowed {
				b.Error(v)
				return
			}
		}
	})
}
