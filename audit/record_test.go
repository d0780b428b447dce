package audit

import (
	"encoding/json"
	"os"
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
			Holds: []Hold{{Key: "agent/x", Unit: "USD", Limit: 10, Amount: 5, Settled: 1}, {Key: "agent/x/units", Unit: "units", Limit: 100, Amount: 2},
				{Key: "k", Limit: -1, Amount: 3}, {Key: "neg", Unit: "USD", Limit: -1, Amount: 8500, Settled: -8500}}, Outcome: Settled, Estimated: true, Object: "re_1",
			RetryOf: 3, Lookup: "GET /v1/charges/ch_1", Status: 200, RequestID: "req_1",
			Duration: 1500 * time.Microsecond, PolicyHash: "abc", PrevHash: "def",
		},
		// What replay needs, every field set.
		{ID: 10, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Decision: policy.Allowed, Outcome: Settled,
			MovesMoney: true, Uncapped: true, Count: -1, RefundOf: "ch_1",
			Priced:     &policy.PriceQuery{Item: "sms", Destination: "+15550100", Quantity: 2, Recipients: 3},
			Recipients: []string{"+15550100"}, Senders: []string{"+15550199", "MG1"}, RecipientsWithheld: true,
			MostRecipients: 4, NoCustomer: true, AudienceUnknown: true, CreatesCustomer: true, CustomerUnknown: true},
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
		`"amount":"10.99"`, `"reserved":"0.00"`, `"settled":"10.99"`, `"currency":"USD"`, `"outcome":"settled"`} {
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

// TestRecordJSONMoney pins the one convention every money field follows:
// a decimal string in major units beside its currency, a count an integer.
func TestRecordJSONMoney(t *testing.T) {
	usd := func(m int64) money.Amount { return money.Amount{Micros: m, Currency: "USD"} }
	r := Record{ID: 3, Time: time.Unix(0, 0).UTC(), Decision: policy.Allowed, Outcome: Settled,
		Amount: usd(8500), Reserved: usd(8500), Settled: usd(8500), // one Twilio segment, 0.0085 USD
		Holds: []Hold{
			{Key: "agent/texter/twilio/2026-12-02/USD", Unit: "USD", Limit: 1000 * money.MicrosPerUnit, Amount: 8500, Settled: 8500},
			{Key: "agent/texter/twilio/2026-12-02/units", Unit: "units", Limit: 100, Amount: 1, Settled: 1},
		}}
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"amount":"0.0085","reserved":"0.0085","settled":"0.0085","currency":"USD"`,
		`{"key":"agent/texter/twilio/2026-12-02/USD","unit":"USD","limit":"1000.00","amount":"0.0085","settled":"0.0085"}`,
		`{"key":"agent/texter/twilio/2026-12-02/units","unit":"units","limit":100,"amount":1,"settled":1}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	// No money at all: "0" and no currency, still strings.
	b, err = json.Marshal(&Record{ID: 4, Event: "halt"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"amount":"0","reserved":"0","settled":"0","outcome"`) {
		t.Errorf("a record without money: %s", b)
	}
}

// TestRecordJSONOldFormat reads lines as Keybrake wrote them before the
// money fields were decimal strings: amounts in minor units, holds in
// micros. Old dumps, store/postgres rows and store/bolt schema-2 records
// are in this form.
func TestRecordJSONOldFormat(t *testing.T) {
	tests := []struct {
		name, line string
		want       Record
	}{
		{"stripe", `{"id":52,"time":"2026-11-25T23:35:57Z","decision":"allowed","status":200,"amount":1099,"reserved":1099,"settled":1000,"currency":"USD","outcome":"settled",` +
			`"holds":[{"key":"agent/r/stripe/2026-11-25/USD","unit":"USD","limit":500000000,"amount":10990000,"settled":10000000},{"key":"agent/r/stripe/2026-11-25/units","unit":"units","limit":100,"amount":1,"settled":1}],"duration_ms":0.412,"policy":"p"}`,
			Record{ID: 52, Time: time.Date(2026, 11, 25, 23, 35, 57, 0, time.UTC), Decision: policy.Allowed, Status: 200,
				Amount: money.Amount{Micros: 10_990_000, Currency: "USD"}, Reserved: money.Amount{Micros: 10_990_000, Currency: "USD"},
				Settled: money.Amount{Micros: 10_000_000, Currency: "USD"}, Outcome: Settled,
				Holds: []Hold{{Key: "agent/r/stripe/2026-11-25/USD", Unit: "USD", Limit: 500_000_000, Amount: 10_990_000, Settled: 10_000_000},
					{Key: "agent/r/stripe/2026-11-25/units", Unit: "units", Limit: 100, Amount: 1, Settled: 1}},
				Duration: 412 * time.Microsecond, PolicyHash: "p"}},
		{"sub-cent", `{"id":2,"time":"2026-01-01T00:00:00Z","amount":0.85,"reserved":0.85,"settled":0,"currency":"USD","duration_ms":0}`,
			Record{ID: 2, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Amount: money.Amount{Micros: 8500, Currency: "USD"},
				Reserved: money.Amount{Micros: 8500, Currency: "USD"}, Settled: money.Amount{Currency: "USD"}}},
		{"yen", `{"id":3,"time":"2026-01-01T00:00:00Z","amount":500,"reserved":0,"settled":0,"currency":"JPY"}`,
			Record{ID: 3, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Amount: money.Amount{Micros: 500 * money.MicrosPerUnit, Currency: "JPY"},
				Reserved: money.Amount{Currency: "JPY"}, Settled: money.Amount{Currency: "JPY"}}},
		{"no money", `{"id":4,"time":"2026-01-01T00:00:00Z","event":"halt","amount":0,"reserved":0,"settled":0,"duration_ms":0}`,
			Record{ID: 4, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Event: "halt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Record
			if err := json.Unmarshal([]byte(tt.line), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRecordJSONRefusesBadMoney(t *testing.T) {
	for _, line := range []string{
		`{"amount":"10.99"}`,                      // money without a currency
		`{"amount":5,"currency":"XYZ"}`,           // a currency Keybrake does not know
		`{"amount":"1e3","currency":"USD"}`,       // an exponent
		`{"amount":"0.0000001","currency":"USD"}`, // finer than a micro
		`{"amount":"","currency":"USD"}`,
		`{"amount":true,"currency":"USD"}`,
		`{"amount":null,"currency":"USD"}`,
		`{"holds":[{"key":"k","unit":"USD","limit":"5 USD"}]}`,
		`{"holds":[{"key":"k","unit":"units","limit":"5"}]}`, // a count is an integer
		`{"holds":[{"key":"k","unit":"USD","limit":1.5}]}`,   // the old form's micros are whole
	} {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err == nil {
			t.Errorf("%s read as %+v", line, r)
		}
	}
}

// TestDocumentedRecords reads the records docs/operations.md shows and
// writes them back: the documented form is the one MarshalJSON writes,
// byte for byte.
func TestDocumentedRecords(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(doc), "```json\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
			if !strings.Contains(line, `"outcome"`) {
				continue
			}
			n++
			var r Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			b, err := json.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != line {
				t.Errorf("documented\n%s\nMarshalJSON writes\n%s", line, b)
			}
		}
	}
	if n < 2 {
		t.Fatalf("found %d records in docs/operations.md, want the two the audit section shows", n)
	}
}
