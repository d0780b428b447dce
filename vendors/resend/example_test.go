package resend_test

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"

	resendgo "github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/resend"
)

// Two keys that differ only in case are refused: encoding/json would read
// both as the same field and keep the last, Resend only the exact one.
func ExampleVendor_Classify() {
	_, err := resend.Vendor{}.Classify(&vendors.Request{
		Method: "POST", Host: "api.resend.com", Path: "/emails",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(`{"from":"billing@acme.example","to":"ops@acme.example","TO":"everyone@list.example"}`),
	})
	var inv *vendors.Invalid
	if errors.As(err, &inv) {
		fmt.Println(inv.Code)
	}
	// Output: keybrake_duplicate_key
}

// A send names its sender and recipients; the policy's price list makes
// the amount.
func ExampleVendor_Classify_send() {
	c, err := resend.Vendor{}.Classify(&vendors.Request{
		Method: "POST", Host: "api.resend.com", Path: "/emails",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(`{"from":"Acme <billing@acme.example>","to":["a@x.example","b@y.example"],"bcc":"audit@acme.example","subject":"Invoice 42"}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Operation, c.Count, *c.Priced)
	fmt.Println(c.Params.Get("from"), c.Params.Get("to[1]"))
	fmt.Println(c.Audit["recipients"], c.Audit["subject_length"])
	// Output:
	// emails.send 1 {email  1 3}
	// Acme <billing@acme.example> b@y.example
	// 3 10
}

// In permissive mode Resend may refuse some emails of a batch; only those
// it sent are counted, each at its exact share of what was reserved.
func ExampleVendor_Settle() {
	v := resend.Vendor{}
	c, err := v.Classify(&vendors.Request{
		Method: "POST", Host: "api.resend.com", Path: "/emails/batch",
		Header: http.Header{"Content-Type": {"application/json"}, "X-Batch-Validation": {"permissive"}},
		Body: []byte(`[{"from":"a@acme.example","to":"b@x.example"},{"from":"a@acme.example","to":"c@x.example"},` +
			`{"from":"a@acme.example","to":"d@x.example"}]`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Amount, _ = money.ParsePrice("0.0027 USD") // 3 emails at 0.0009 USD, as the transport prices them
	s, err := v.Settle(c, []byte(`{"data":[{"id":"e1"},{"id":"e3"}],"errors":[{"index":1,"message":"Invalid to"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Moved, s.Units, s.Object)
	// Output: 0.0018 USD 2 e1,e3
}

// A refusal reaches the agent as resend-go's own error, after one attempt;
// RefusalDetails finds the whole decision again from its message.
func ExampleVendor_Deny() {
	v := resend.Vendor{}
	deny := roundTripper(func(req *http.Request) (*http.Response, error) {
		return v.Deny(req, vendors.Refusal{
			Status: 402, Code: "keybrake_capped", Message: "mailer has sent 100 of 100 emails today",
			RequestID: "kb_42",
			Details:   []byte(`{"decision":"capped","rule":"agents.mailer.resend.daily_count","reason":"mailer has sent 100 of 100 emails today"}`),
		}), nil
	})
	client := resendgo.NewCustomClient(&http.Client{Transport: deny}, "re_123")

	_, err := client.Emails.Send(&resendgo.SendEmailRequest{From: "a@acme.example", To: []string{"b@x.example"}, Subject: "hi"})
	fmt.Println(regexp.MustCompile(`kbr_[0-9a-f]{16}`).ReplaceAllString(err.Error(), "kbr_<token>"))
	details, ok := v.RefusalDetails(err)
	fmt.Println(string(details), ok)
	// Output:
	// [ERROR]: Keybrake refused this call (capped): mailer has sent 100 of 100 emails today (rule "agents.mailer.resend.daily_count", code keybrake_capped, status 402, request "kb_42", kbr_<token>)
	// {"decision":"capped","rule":"agents.mailer.resend.daily_count","reason":"mailer has sent 100 of 100 emails today"} true
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
