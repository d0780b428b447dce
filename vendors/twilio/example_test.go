package twilio_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/twilio"
)

// One character outside GSM-7 turns the whole message into UCS-2, and 161
// characters into three segments instead of two.
func ExampleSegments() {
	fmt.Println(twilio.Segments("Your order has shipped."))
	fmt.Println(twilio.Segments(strings.Repeat("a", 161)))
	fmt.Println(twilio.Segments(strings.Repeat("a", 160) + "😀"))
	// Output:
	// 1 GSM-7
	// 2 GSM-7
	// 3 UCS-2
}

// A message is priced from the policy's price list: Classify says what is
// bought, for which destination, and how many.
func ExampleVendor_Classify() {
	c, err := twilio.Vendor{}.Classify(&vendors.Request{
		Method: "POST", Host: "api.twilio.com",
		Path:   "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:   []byte("From=%2B15005550006&To=%2B447700900123&Body=" + url.QueryEscape(strings.Repeat("Hello! ", 25))),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Operation, c.Priced.Item, c.Priced.Destination, c.Priced.Quantity)
	fmt.Println(c.Audit["Body.chars"], c.Audit["Body.segments"], c.Audit["Body"] == "")
	// Output:
	// messages.create sms +447700900123 2
	// 175 2 true
}

// A refusal reaches the agent as twilio-go's own error, after one attempt.
func ExampleVendor_Deny() {
	v := twilio.Vendor{}
	deny := roundTripper(func(req *http.Request) (*http.Response, error) {
		return v.Deny(req, vendors.Refusal{
			Status: 402, Code: "keybrake_capped", Message: "sms-bot has 0.01 USD left today",
			RequestID: "kb_42", Details: []byte(`{"decision":"capped"}`),
		}), nil
	})
	c := &client.Client{Credentials: client.NewCredentials("AC0123456789abcdef0123456789abcdef", "token"),
		HTTPClient: &http.Client{Transport: deny}}
	c.SetAccountSid("AC0123456789abcdef0123456789abcdef")
	tw := twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c})

	params := &api.CreateMessageParams{}
	params.SetTo("+15558675310").SetFrom("+15005550006").SetBody("Hello")
	_, err := tw.Api.CreateMessage(params)
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		fmt.Println(te.Status, te.Code == twilio.CodeCapped, te.Message)
	}
	details, ok := v.RefusalDetails(err)
	fmt.Println(string(details), ok)
	// Output:
	// 402 true sms-bot has 0.01 USD left today
	// {"decision":"capped"} true
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
