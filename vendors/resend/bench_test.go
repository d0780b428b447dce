package resend

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

func BenchmarkClassifySend(b *testing.B) {
	r := req("POST", "/emails", `{"from":"Acme <billing@acme.example>","to":["a@x.example","b@y.example"],"subject":"Your invoice #42",`+
		`"cc":["c@z.example"],"html":"<p>Hello, your invoice is attached. `+strings.Repeat("Lorem ipsum dolor sit amet. ", 40)+`</p>",`+
		`"tags":[{"name":"category","value":"invoice"}],"headers":{"X-Entity-Ref-ID":"42"}}`, "Idempotency-Key", "invoice/42")
	b.ReportAllocs()
	b.SetBytes(int64(len(r.Body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Classify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkClassifyBatch100(b *testing.B) {
	// The largest batch: 100 emails of 50 recipients each.
	to := make([]string, 50)
	for i := range to {
		to[i] = fmt.Sprintf(`"user%d@example.com"`, i)
	}
	items := make([]string, 100)
	for i := range items {
		items[i] = `{"from":"Acme <billing@acme.example>","to":[` + strings.Join(to, ",") + `],"subject":"Weekly digest","text":"` + strings.Repeat("news ", 50) + `"}`
	}
	r := req("POST", "/emails/batch", "["+strings.Join(items, ",")+"]")
	b.ReportAllocs()
	b.SetBytes(int64(len(r.Body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Classify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSettleBatch(b *testing.B) {
	c, err := Vendor{}.Classify(req("POST", "/emails/batch", batchJSON(100, func(int) string { return "" })))
	if err != nil {
		b.Fatal(err)
	}
	c.Amount = money.Amount{Micros: 90_000, Currency: "USD"}
	ids := make([]string, 99)
	for i := range ids {
		ids[i] = `{"id":"` + uuid1 + `"}`
	}
	body := []byte(`{"data":[` + strings.Join(ids, ",") + `],"errors":[{"index":7,"message":"Invalid to"}]}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := (Vendor{}).Settle(c, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDenyRefusalDetails(b *testing.B) {
	r := vendors.Refusal{Status: 402, Code: "keybrake_capped", RequestID: "kb_42",
		Details: []byte(`{"decision":"capped","rule":"agents.mailer.resend.daily_count","reason":"mailer has sent 100 of 100 emails today"}`)}
	hreq, _ := http.NewRequest("POST", "https://api.resend.com/emails", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp := Vendor{}.Deny(hreq, r)
			var body errorBody
			if err := decodeBody(resp, &body); err != nil {
				b.Fatal(err)
			}
			if _, ok := (Vendor{}).RefusalDetails(errors.New("[ERROR]: " + body.Message)); !ok {
				b.Fatal("no details")
			}
		}
	})
}

func decodeBody(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
