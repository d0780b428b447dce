package fakestripe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/fakes/fakestripe"
)

func seeded() *fakestripe.Server {
	fs := fakestripe.New()
	fs.AddCustomer("cus_1")
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 5000, Currency: "usd", Customer: "cus_1", Captured: true})
	fs.AddCharge(fakestripe.Charge{ID: "ch_2", Amount: 3000, Currency: "usd"})
	fs.AddPaymentIntent(fakestripe.PaymentIntent{ID: "pi_1", Amount: 4000, Currency: "usd", CaptureMethod: "manual", Status: "requires_capture"})
	fs.AddTransfer(fakestripe.Transfer{ID: "tr_1", Amount: 2000, Currency: "usd", Destination: "acct_1"})
	fs.AddInvoice(fakestripe.Invoice{ID: "in_1", Customer: "cus_1", Currency: "usd", AmountDue: 1500})
	fs.AddApplicationFee(fakestripe.ApplicationFee{ID: "fee_1", Amount: 500, Currency: "usd", FromAccount: "acct_1"})
	return fs
}

func serve(fs *fakestripe.Server, method string, u *url.URL, body, idem string) *httptest.ResponseRecorder {
	req := (&http.Request{
		Method: method, URL: u, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(body)), Host: "api.stripe.com",
	}).WithContext(context.Background())
	req.Header.Set("Authorization", "Bearer sk_test_fuzz")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	rec := httptest.NewRecorder()
	fs.ServeHTTP(rec, req)
	return rec
}

// FuzzServeHTTP sends arbitrary requests and checks what must hold for any
// of them: an answer in Stripe's shape with a Request-Id, no more refunded
// than was captured, and a replay under the same key that changes nothing.
func FuzzServeHTTP(f *testing.F) {
	f.Add("POST", "/v1/refunds", "charge=ch_1&amount=100", "k1")
	f.Add("POST", "/v1/refunds", "payment_intent=pi_1", "")
	f.Add("POST", "/v1/payment_intents/pi_1/capture", "amount_to_capture=4001", "k2")
	f.Add("GET", "/v1/charges/ch_1?expand[0]=customer", "", "")
	f.Add("POST", "/v1/transfers/tr_1/reversals", "amount=1&amount=2500", "k3")
	f.Fuzz(func(t *testing.T, method, path, body, idem string) {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		fs := seeded()
		rec := serve(fs, method, u, body, idem)
		checkAnswer(t, rec)
		before := fs.Moved()["usd"]

		again := serve(fs, method, u, body, idem)
		checkAnswer(t, again)
		if method == "POST" && idem != "" && len(idem) <= 255 && rec.Code == http.StatusOK {
			if again.Code != rec.Code || !bytes.Equal(again.Body.Bytes(), rec.Body.Bytes()) || again.Header().Get("Idempotent-Replayed") != "true" {
				t.Fatalf("not replayed: %d %s then %d %s", rec.Code, rec.Body, again.Code, again.Body)
			}
			if after := fs.Moved()["usd"]; after != before {
				t.Fatalf("replay moved money: %d then %d", before, after)
			}
		}
		for _, id := range []string{"ch_1", "ch_2"} {
			c, _ := fs.Charge("", id)
			if c.Captured && c.AmountRefunded > c.AmountCaptured || !c.Captured && c.AmountRefunded != 0 && c.AmountRefunded != c.Amount {
				t.Fatalf("charge %+v refunded beyond what it holds", c)
			}
		}
		if tr, _ := fs.Transfer("", "tr_1"); tr.AmountReversed > tr.Amount {
			t.Fatalf("transfer %+v", tr)
		}
	})
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if !strings.HasPrefix(rec.Header().Get("Request-Id"), "req_") {
		t.Fatalf("no Request-Id: %v", rec.Header())
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d, body not JSON: %v\n%s", rec.Code, err, rec.Body)
	}
	switch rec.Code {
	case http.StatusOK:
		if _, ok := m["object"].(string); !ok {
			t.Fatalf("200 without an object: %s", rec.Body)
		}
	case 400, 401, 402, 403, 404, 413:
		e, ok := m["error"].(map[string]any)
		if !ok || e["type"] == "" || e["message"] == "" {
			t.Fatalf("%d not in Stripe's error shape: %s", rec.Code, rec.Body)
		}
	default:
		t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
	}
}

func BenchmarkRefund(b *testing.B) {
	fs := fakestripe.New()
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 99999999, Currency: "usd", Captured: true})
	u, _ := url.ParseRequestURI("/v1/refunds")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rec := serve(fs, "POST", u, "charge=ch_1&amount=1", ""); rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}
