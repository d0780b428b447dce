package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// noon is a fixed clock, so no run straddles a UTC midnight.
func noon() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }

func usd(cents int64) money.Amount {
	a, err := money.FromMinor(cents, "USD")
	if err != nil {
		panic(err)
	}
	return a
}

func TestRun(t *testing.T) {
	res, err := run(io.Discard, t.TempDir(), noon)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.paid) != 4 {
		t.Fatalf("%d payouts went through, want 4", len(res.paid))
	}
	if res.status != http.StatusPaymentRequired {
		t.Errorf("the 5th payout got %d, want 402", res.status)
	}
	d := res.denial
	if d.Decision != keybrake.Capped || d.Code != "keybrake_daily_cap" || d.Rule != "agents.payout-bot.payouts.daily_cap" {
		t.Errorf("denial = %s %s %s, want capped keybrake_daily_cap agents.payout-bot.payouts.daily_cap", d.Decision, d.Code, d.Rule)
	}
	if d.Agent != agent || d.Vendor != "payouts" || d.Method != "POST" || d.Path != "/v1/payouts" || d.CallID != 5 {
		t.Errorf("denial = %+v, want payout-bot's POST /v1/payouts on payouts, call 5", d)
	}

	if len(res.records) != 5 {
		t.Fatalf("%d audit records, want 5", len(res.records))
	}
	settled := usd(0)
	for i, r := range res.records {
		if r.Operation != "payouts.create" || r.Amount != usd(2500) {
			t.Errorf("record %d: %s of %v, want payouts.create of 25.00 USD", r.ID, r.Operation, r.Amount)
		}
		if i < 4 {
			if r.Decision != keybrake.Allowed || r.Outcome != audit.Settled || r.Settled != usd(2500) || r.Object != res.paid[i].ID {
				t.Errorf("record %d: %s %s %v %s, want allowed settled 25.00 USD %s", r.ID, r.Decision, r.Outcome, r.Settled, r.Object, res.paid[i].ID)
			}
			if r.RequestID == "" || !strings.HasPrefix(r.RequestID, "req_") {
				t.Errorf("record %d: request ID %q, want the API's (Info.RequestIDHeaders)", r.ID, r.RequestID)
			}
		} else if r.Decision != keybrake.Capped || r.Outcome != audit.None || !r.Settled.IsZero() || r.Status != 402 {
			t.Errorf("record %d: %s %s %v %d, want capped, nothing held, nothing settled, 402", r.ID, r.Decision, r.Outcome, r.Settled, r.Status)
		}
		if r.Outcome == audit.Settled {
			if settled, err = settled.Add(r.Settled); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := usd(res.ledger["usd"]); got != settled || settled != usd(10000) {
		t.Errorf("the API paid out %v, the audit log settled %v; want both 100.00 USD", got, settled)
	}
	if len(res.ledger) != 1 {
		t.Errorf("ledger %v, want usd only", res.ledger)
	}
}

// TestScope runs the vendor's own grant key, recipients, and a call that
// moves nothing through Keybrake.
func TestScope(t *testing.T) {
	b, err := open(t.TempDir(), noon)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	ctx := context.Background()

	_, err = b.client.create(ctx, 1000, "usd", "acct_mallory")
	d, ok := keybrake.AsDenial(err)
	if !ok || d.Decision != keybrake.Scoped || d.Rule != "agents.payout-bot.payouts.recipients" || d.Code != "keybrake_out_of_scope" {
		t.Fatalf("payout to acct_mallory: %v, %+v; want scoped by agents.payout-bot.payouts.recipients", err, d)
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Errorf("payout to acct_mallory: %v, want a 403 *apiError", err)
	}

	_, err = b.client.create(ctx, 6000, "usd", "acct_bob")
	if d, ok := keybrake.AsDenial(err); !ok || d.Decision != keybrake.Capped || d.Code != "keybrake_per_call_max" {
		t.Errorf("payout of 60.00 USD: %v, want capped by per_call_max", err)
	}

	p, err := b.client.create(ctx, 1000, "usd", "acct_bob")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.client.get(ctx, p.ID)
	if err != nil || got.ID != p.ID || got.Amount != 1000 {
		t.Fatalf("get %s: %+v, %v", p.ID, got, err)
	}
	if l := b.api.ledger(); l["usd"] != 1000 {
		t.Errorf("ledger %v, want 1000 usd: nothing refused may reach the API", l)
	}
	recs, err := records(b.kb)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if len(recs) != 4 || last.Operation != "payouts.retrieve" || last.Decision != keybrake.Allowed || !last.Amount.IsZero() || last.Outcome != audit.Settled {
		t.Errorf("records %+v, want 4, the last an allowed payouts.retrieve that moved nothing", recs)
	}
}

// request is a request as the transport hands it to Classify; a POST
// says its body is JSON.
func request(method, path, query, body string) *vendors.Request {
	h := http.Header{}
	if method == http.MethodPost {
		h.Set("Content-Type", "application/json")
	}
	return &vendors.Request{Method: method, Host: apiHost, Path: path, Query: query, Header: h, Body: []byte(body)}
}

// withHeader replaces the values of header k.
func withHeader(r *vendors.Request, k string, values ...string) *vendors.Request {
	r.Header[k] = values
	return r
}

func TestClassify(t *testing.T) {
	const good = `{"amount": 2500, "currency": "usd", "recipient": "acct_alice"}`
	jpy, _ := money.FromMinor(500, "JPY")
	tests := []struct {
		name   string
		req    *vendors.Request
		op     string
		amount money.Amount
		code   string // of the refusal; "" for none
	}{
		{"payout", request("POST", "/v1/payouts", "", good), "payouts.create", usd(2500), ""},
		{"zero-decimal currency", request("POST", "/v1/payouts", "", `{"amount":500,"currency":"jpy","recipient":"acct_a"}`), "payouts.create", jpy, ""},
		{"description", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"usd","recipient":"acct_a","description":"May"}`), "payouts.create", usd(1), ""},
		{"charset", withHeader(request("POST", "/v1/payouts", "", good), "Content-Type", "application/json; charset=utf-8"), "payouts.create", usd(2500), ""},
		{"retrieve", request("GET", "/v1/payouts/po_000001", "", ""), "payouts.retrieve", money.Amount{}, ""},

		{"list", request("GET", "/v1/payouts", "", ""), "", money.Amount{}, "keybrake_unknown_endpoint"},
		{"other POST", request("POST", "/v1/payouts/po_1/cancel", "", good), "", money.Amount{}, "keybrake_unknown_endpoint"},
		{"upper case", request("POST", "/V1/payouts", "", good), "", money.Amount{}, "keybrake_unknown_endpoint"},
		{"PUT", request("PUT", "/v1/payouts", "", good), "", money.Amount{}, "keybrake_unknown_endpoint"},
		{"bad id", request("GET", "/v1/payouts/ch_1", "", ""), "", money.Amount{}, "keybrake_bad_id"},
		{"query", request("POST", "/v1/payouts", "amount=1", good), "", money.Amount{}, "keybrake_unexpected_query"},
		{"GET body", request("GET", "/v1/payouts/po_1", "", "{}"), "", money.Amount{}, "keybrake_unexpected_body"},
		{"form", withHeader(request("POST", "/v1/payouts", "", "amount=2500"), "Content-Type", "application/x-www-form-urlencoded"), "", money.Amount{}, "keybrake_bad_content_type"},
		{"two content types", withHeader(request("POST", "/v1/payouts", "", good), "Content-Type", jsonType, jsonType), "", money.Amount{}, "keybrake_bad_content_type"},
		{"no content type", withHeader(request("POST", "/v1/payouts", "", good), "Content-Type"), "", money.Amount{}, "keybrake_bad_content_type"},
		{"idempotency key", withHeader(request("POST", "/v1/payouts", "", good), "Idempotency-Key", "k1"), "", money.Amount{}, "keybrake_bad_header"},
		{"idempotency key, lower case", withHeader(request("POST", "/v1/payouts", "", good), "idempotency-key", "k1"), "", money.Amount{}, "keybrake_bad_header"},
		{"two objects", request("POST", "/v1/payouts", "", good+good), "", money.Amount{}, "keybrake_bad_json"},
		{"array", request("POST", "/v1/payouts", "", "["+good+"]"), "", money.Amount{}, "keybrake_bad_json"},
		{"not UTF-8", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"usd","recipient":"acct_a","description":"`+"\xff"+`"}`), "", money.Amount{}, "keybrake_bad_json"},
		{"duplicate amount", request("POST", "/v1/payouts", "", `{"amount":1,"amount":9999,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_duplicate_key"},
		{"case variant", request("POST", "/v1/payouts", "", `{"amount":1,"Amount":9999,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_unknown_param"},
		{"unknown field", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"usd","recipient":"acct_a","split":2}`), "", money.Amount{}, "keybrake_unknown_param"},
		{"no recipient", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"usd"}`), "", money.Amount{}, "keybrake_missing_param"},
		{"fraction", request("POST", "/v1/payouts", "", `{"amount":25.00,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"exponent", request("POST", "/v1/payouts", "", `{"amount":2.5e3,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"string amount", request("POST", "/v1/payouts", "", `{"amount":"2500","currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"zero", request("POST", "/v1/payouts", "", `{"amount":0,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"negative", request("POST", "/v1/payouts", "", `{"amount":-1,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"huge", request("POST", "/v1/payouts", "", `{"amount":9223372036854775807,"currency":"usd","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"upper-case currency", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"USD","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"unknown currency", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"xyz","recipient":"acct_a"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"bad recipient", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"usd","recipient":"acct_a b"}`), "", money.Amount{}, "keybrake_bad_param"},
		{"recipient list", request("POST", "/v1/payouts", "", `{"amount":1,"currency":"usd","recipient":["acct_a"]}`), "", money.Amount{}, "keybrake_bad_param"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := payoutsVendor{}.Classify(tt.req)
			if tt.code != "" {
				var inv *vendors.Invalid
				if !errors.As(err, &inv) || inv.Code != tt.code {
					t.Fatalf("Classify = %+v, %v; want an *Invalid %s", c, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Operation != tt.op || c.Amount != tt.amount || c.MovesMoney != !tt.amount.IsZero() {
				t.Errorf("Classify = %s %v (moves money %v), want %s %v", c.Operation, c.Amount, c.MovesMoney, tt.op, tt.amount)
			}
			if c.MovesMoney && (len(c.Recipients) != 1 || c.Count != 1) {
				t.Errorf("a payout has recipients %v and count %d, want one of each", c.Recipients, c.Count)
			}
		})
	}
}

func TestClassifyRedactsDescription(t *testing.T) {
	vendors.RedactSecrets(payoutsVendor{}.Info().Secrets...) // what keybrake.Open does
	c, err := payoutsVendor{}.Classify(request("POST", "/v1/payouts", "",
		`{"amount":1,"currency":"usd","recipient":"acct_a","description":"key pk_live_abc123 card 4242424242424242"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Audit["description"], "key [redacted] card 424242******4242"; got != want {
		t.Errorf("audit description = %q, want %q", got, want)
	}
}

func TestSettle(t *testing.T) {
	call := &vendors.Call{Operation: "payouts.create", MovesMoney: true, Amount: usd(2500)}
	tests := []struct {
		name  string
		body  string
		moved money.Amount // when ok
		ok    bool
	}{
		{"paid", `{"id":"po_1","amount":2500,"currency":"usd","recipient":"acct_a","status":"paid"}`, usd(2500), true},
		{"pending", `{"id":"po_1","amount":2500,"currency":"usd","status":"pending"}`, usd(2500), true},
		{"less than asked", `{"id":"po_1","amount":1000,"currency":"usd","status":"paid"}`, usd(1000), true},
		{"failed", `{"id":"po_1","amount":2500,"currency":"usd","status":"failed"}`, money.Amount{}, false},
		{"other currency", `{"id":"po_1","amount":2500,"currency":"eur","status":"paid"}`, money.Amount{}, false},
		{"no id", `{"amount":2500,"currency":"usd","status":"paid"}`, money.Amount{}, false},
		{"fraction", `{"id":"po_1","amount":25.5,"currency":"usd","status":"paid"}`, money.Amount{}, false},
		{"amount twice", `{"id":"po_1","amount":1,"amount":2500,"currency":"usd","status":"paid"}`, money.Amount{}, false},
		{"not JSON", `paid`, money.Amount{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := payoutsVendor{}.Settle(call, []byte(tt.body))
			if !tt.ok {
				if !errors.Is(err, errSettle) {
					t.Fatalf("Settle = %+v, %v; want an error wrapping errSettle", s, err)
				}
				return
			}
			if err != nil || s.Moved != tt.moved || s.Object != "po_1" || s.Units != 1 {
				t.Errorf("Settle = %+v, %v; want %v moved by po_1", s, err, tt.moved)
			}
		})
	}
}

func TestRefusalDetails(t *testing.T) {
	v := payoutsVendor{}
	details := []byte(`{"decision":"capped","code":"keybrake_daily_cap","rule":"agents.a.payouts.daily_cap","reason":"r","vendor":"payouts","status":402,"call_id":7}`)
	req := httptest.NewRequest(http.MethodPost, apiBase+"/v1/payouts", nil)
	resp := v.Deny(req, vendors.Refusal{Status: 402, Code: "keybrake_daily_cap", Message: "Keybrake refused this call (capped): r", RequestID: "kb_7", Details: details})
	if resp.StatusCode != 402 || resp.Header.Get("Request-Id") != "kb_7" || resp.Request != req {
		t.Errorf("Deny = %d, Request-Id %q; want 402, kb_7, for req", resp.StatusCode, resp.Header.Get("Request-Id"))
	}
	_, err := readAnswer(resp)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Code != "keybrake_daily_cap" || ae.RequestID != "kb_7" {
		t.Fatalf("the client read %v, want an *apiError keybrake_daily_cap", err)
	}

	other := vendors.NewRefusalToken()
	vendors.RememberRefusal(other, details)

	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"the client's error", err, true},
		{"wrapped", fmt.Errorf("paying out: %w", err), true},
		{"text only", errors.New("paying out: " + err.Error()), true},
		{"nil", nil, false},
		{"the API's own error", &apiError{Status: 402, Code: "insufficient_funds", Message: "balance too low"}, false},
		{"another vendor's token", errors.New("Keybrake refused this call (capped): r " + other), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := v.RefusalDetails(tt.err)
			if ok != tt.ok {
				t.Fatalf("RefusalDetails(%v) ok = %v, want %v", tt.err, ok, tt.ok)
			}
			if ok && string(got) != string(details) {
				t.Errorf("RefusalDetails = %s, want %s", got, details)
			}
		})
	}

	// A status the SDK might not take for an error becomes 503.
	if resp := v.Deny(req, vendors.Refusal{Status: 200, Code: "keybrake_x", Details: details}); resp.StatusCode != 503 {
		t.Errorf("Deny of status 200 = %d, want 503", resp.StatusCode)
	}
}
