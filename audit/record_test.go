package audit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

func TestRecordJSONRoundTrip(t *testing.T) {
	usd := func(m int64) money.Amount { return money.Amount{Micros: m, Currency: "USD"} }
	recs := []Record{
		{
			ID: 7, Time: time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC), Agent: "refund-bot", Vendor: "stripe",
			Method: "POST", Host: "api.stripe.com", Path: "/v1/refunds", Operation: "refunds.create", Event: "x",
			Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]", Reason: "ok",
			Params: map[string]string{"charge": "ch_1"}, IdempotencyKey: "k1", KeyID: "key_ab", Customer: "cus_1",
			Account: "acct_1", Amount: usd(50_000_000), Reserved: usd(50_000_000), Settled: usd(7900),
			Holds: []Hold{{Key: "agent/x", Unit: "USD", Limit: 10, Amount: 5, Settled: 1}}, Outcome: Settled, Estimated: true, Object: "re_1",
			RetryOf: 3, Lookup: "GET /v1/charges/ch_1", Status: 200, RequestID: "req_1",
			Duration: 1500 * time.Microsecond, PolicyHash: "abc", PrevHash: "def",
		},
		// A sub-cent reservation, and a negative sub-millisecond duration.
		// Zero amounts come back in the record's currency.
		{ID: 8, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Decision: policy.Capped, Amount: usd(0), Reserved: usd(1), Settled: usd(0), Outcome: None, Duration: -1500 * time.Microsecond},
		{ID: 9, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Decision: policy.Blocked, Amount: money.Amount{Micros: 100_000_000, Currency: "JPY"}, Reserved: money.Amount{Currency: "JPY"}, Settled: money.Amount{Currency: "JPY"}, Outcome: None},
	}
	for _, r := range recs {
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("marshal %d: %v", r.ID, err)
		}
		var got Record
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("unmarshal %d: %v (%s)", r.ID, err, b)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip %d:\n got %+v\nwant %+v\njson %s", r.ID, got, r, b)
		}
	}
}

func TestRecordJSONFields(t *testing.T) {
	r := Record{ID: 1, Time: time.Unix(0, 0).UTC(), Agent: "a", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
		Decision: policy.Allowed, Rule: "r", Reason: "x", Status: 200,
		Amount: money.Amount{Micros: 10_990_000, Currency: "USD"}, Settled: money.Amount{Micros: 10_990_000, Currency: "USD"},
		Outcome: Settled}
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"time":"1970-01-01T00:00:00Z"`, `"agent":"a"`, `"vendor":"stripe"`, `"method":"POST"`,
		`"path":"/v1/refunds"`, `"decision":"allowed"`, `"rule":"r"`, `"reason":"x"`, `"status":200`,
		`"amount":1099`, `"settled":1099`, `"currency":"USD"`, `"outcome":"settled"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}

func TestRecordJSONRefusesMixedCurrencies(t *testing.T) {
	r := Record{Amount: money.Amount{Micros: 1, Currency: "USD"}, Settled: money.Amount{Micros: 1, Currency: "EUR"}}
	if _, err := json.Marshal(&r); err == nil {
		t.Fatal("mixed currencies marshalled")
	}
	r = Record{Settled: money.Amount{Micros: 1}}
	if _, err := json.Marshal(&r); err == nil {
		t.Fatal("an amount without a currency marshalled")
	}
}
