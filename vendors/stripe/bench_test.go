package stripe

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/vendors"
)

func BenchmarkClassify(b *testing.B) {
	r := req("POST", "/v1/refunds", "charge=ch_3MmlLrLkdIwHu7ix0snN0B15&amount=1000&reason=requested_by_customer&metadata[order_id]=6735&metadata[agent]=refund-bot",
		"Idempotency-Key", "1700000000_abcdef", "Stripe-Account", "acct_1032D82eZvKYlo2C")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Classify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// stripeGoRefund is the request stripe-go v76 sends for a refund of part
// of a charge, with metadata and an idempotency key, as the transport
// hands it to Classify. policy's BenchmarkDecideStripeRefund decides the
// same call: the two together are the CPU of one decision.
func stripeGoRefund(tb testing.TB) *vendors.Request {
	tb.Helper()
	rec := &classifying{}
	sc := client.New("sk_test_51abcDEFghiJKLmnoPQRstu", Backends(&http.Client{Transport: rec}))
	p := &stripego.RefundParams{Charge: stripego.String("ch_3MmlLrLkdIwHu7ix0snN0B15"), Amount: stripego.Int64(1000)}
	p.AddMetadata("order_id", "6735")
	p.SetIdempotencyKey("refund-6735-1")
	if _, err := sc.Refunds.New(p); err != nil || len(rec.reqs) != 1 {
		tb.Fatalf("stripe-go: %v, %d requests", err, len(rec.reqs))
	}
	if rec.errs[0] != nil {
		tb.Fatal(rec.errs[0])
	}
	return rec.reqs[0]
}

// BenchmarkClassifyStripeGoRefund classifies the refund exactly as
// stripe-go sends it: the Bearer key, stripe-go's user agent headers, its
// encoding of metadata[order_id].
func BenchmarkClassifyStripeGoRefund(b *testing.B) {
	r := stripeGoRefund(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Classify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkClassifyCheckout(b *testing.B) {
	// A wide request: many nested amounts to check.
	body := "mode=payment&success_url=https%3A%2F%2Fexample.com%2Fok"
	for _, i := range []string{"0", "1", "2", "3", "4", "5", "6", "7"} {
		body += "&line_items[" + i + "][price_data][currency]=usd&line_items[" + i + "][price_data][unit_amount]=1999" +
			"&line_items[" + i + "][price_data][product_data][name]=Item&line_items[" + i + "][quantity]=2"
	}
	r := req("POST", "/v1/checkout/sessions", body)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Classify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkResolveSettle(b *testing.B) {
	f := &fakeStripe{answers: map[string]answer{"/v1/charges/ch_1": charge("ch_1", 5000, 5000, 0, "usd", "cus_1")}}
	get := func(ctx context.Context, path string) (int, []byte, error) {
		a := f.answers[path]
		return a.status, []byte(a.body), nil
	}
	r := req("POST", "/v1/refunds", "charge=ch_1&amount=1000")
	settled := []byte(`{"id":"re_1","object":"refund","amount":1000,"currency":"usd","status":"succeeded","charge":"ch_1"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := Vendor{}.Classify(r)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, get, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := (Vendor{}).Settle(c, settled); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSettleRefund reads what a refund moved from the whole refund
// object Stripe answers with (API version 2023-10-16), on a call
// classified and resolved outside the loop: the part of a call's CPU
// spent on the answer.
func BenchmarkSettleRefund(b *testing.B) {
	f := &fakeStripe{answers: map[string]answer{"/v1/charges/ch_1": charge("ch_1", 5000, 5000, 0, "usd", "cus_1")}}
	get := func(ctx context.Context, path string) (int, []byte, error) {
		a := f.answers[path]
		return a.status, []byte(a.body), nil
	}
	c, err := Vendor{}.Classify(req("POST", "/v1/refunds", "charge=ch_1&amount=1000"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, get, nil); err != nil {
		b.Fatal(err)
	}
	answer := []byte(`{"id":"re_3MmlLrLkdIwHu7ix0snN0B15","object":"refund","amount":1000,` +
		`"balance_transaction":"txn_3MmlLrLkdIwHu7ix0uke3Ezy","charge":"ch_1","created":1679446050,"currency":"usd",` +
		`"destination_details":{"card":{"reference":"123456789012","reference_status":"available",` +
		`"reference_type":"acquirer_reference_number","type":"refund"},"type":"card"},"metadata":{"order_id":"6735"},` +
		`"payment_intent":"pi_3MmlLrLkdIwHu7ix0zZk7rmo","reason":null,"receipt_number":null,` +
		`"source_transfer_reversal":null,"status":"succeeded","transfer_reversal":null}`)
	s, err := (Vendor{}).Settle(c, answer)
	if err != nil || s.Moved.Micros != 10_000_000 || s.Object != "re_3MmlLrLkdIwHu7ix0snN0B15" {
		b.Fatal(s, err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Settle(c, answer); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// syncFacts is a Facts safe for the parallel benchmark.
type syncFacts struct{ m sync.Map }

func (f *syncFacts) Fact(_ context.Context, k string) (string, bool, error) {
	v, ok := f.m.Load(k)
	if !ok {
		return "", false, nil
	}
	return v.(string), true, nil
}

// keep writes what Resolve learned, as the transport does: the first value
// of a fact stays.
func (f *syncFacts) keep(learned []vendors.Fact) {
	for _, l := range learned {
		f.m.LoadOrStore(l.Key, l.Value)
	}
}

// BenchmarkResolveSubject finds the customer of a refund by ID: two
// lookups without facts, none once the refund's customer is kept. It
// reports lookups/op, which facts bring near zero.
func BenchmarkResolveSubject(b *testing.B) {
	answers := map[string][]byte{
		"/v1/refunds/re_1": []byte(`{"id":"re_1","object":"refund","amount":100,"charge":"ch_1","currency":"usd","status":"succeeded"}`),
		"/v1/charges/ch_1": []byte(`{"id":"ch_1","object":"charge","amount":5000,"currency":"usd","customer":"cus_1"}`),
	}
	r := req("POST", "/v1/refunds/re_1", "metadata[reason]=duplicate")
	for _, bc := range []struct {
		name  string
		facts bool
	}{{"lookups", false}, {"facts", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var lookups atomic.Int64
			get := func(ctx context.Context, path string) (int, []byte, error) {
				lookups.Add(1)
				return 200, answers[path], nil
			}
			var facts vendors.Facts // nil: nothing known
			store := &syncFacts{}
			if bc.facts {
				facts = store
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, err := Vendor{}.Classify(r)
					if err != nil {
						b.Fatal(err)
					}
					learned, err := Vendor{}.Resolve(context.Background(), c, vendors.Need{Customer: true}, get, facts)
					if err != nil || c.Customer != "cus_1" {
						b.Fatal(err, c.Customer)
					}
					if bc.facts {
						store.keep(learned)
					}
				}
			})
			b.ReportMetric(float64(lookups.Load())/float64(b.N), "lookups/op")
		})
	}
}
