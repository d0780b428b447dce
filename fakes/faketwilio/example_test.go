package faketwilio_test

import (
	"fmt"
	"net/http/httptest"
	"strings"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake/fakes/faketwilio"
)

// A message is billed by its segments, but Twilio reports the price only
// after it has gone out: the create answer says "price": null.
func ExampleServer_PriceMessages() {
	ft := faketwilio.New()
	ft.SetPrice("+44", "0.0400")
	ts := httptest.NewServer(ft)
	defer ts.Close()
	defer ft.Close()

	c := &client.Client{
		Credentials: client.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
		HTTPClient:  faketwilio.HTTPClient(ts.URL),
	}
	c.SetAccountSid(faketwilio.DefaultAccountSID)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	params := &api.CreateMessageParams{}
	params.SetTo("+447700900123").SetFrom("+15005550006").SetBody(strings.Repeat("Your order has shipped. ", 10))
	m, err := tw.Api.CreateMessage(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*m.Sid, *m.Status, "segments:", *m.NumSegments, "price:", m.Price)

	ft.PriceMessages()
	m, err = tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*m.Status, "price:", *m.Price, *m.PriceUnit)
	fmt.Println("spent:", ft.Spent()[faketwilio.PriceUnit])
	// Output:
	// SM00000000000000000000000000000001 queued segments: 2 price: <nil>
	// sent price: -0.08000 USD
	// spent: 0.08 USD
}

// A call costs nothing until it is over, then its started minutes.
func ExampleServer_CompleteCalls() {
	ft := faketwilio.New()
	ts := httptest.NewServer(ft)
	defer ts.Close()
	defer ft.Close()

	c := &client.Client{
		Credentials: client.NewCredentials(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken),
		HTTPClient:  faketwilio.HTTPClient(ts.URL),
	}
	c.SetAccountSid(faketwilio.DefaultAccountSID)
	tw := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})

	params := &api.CreateCallParams{}
	params.SetTo("+15558675310").SetFrom("+15005550006").SetUrl("https://example.com/twiml").SetTimeLimit(300)
	call, err := tw.Api.CreateCall(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*call.Sid, *call.Status, "price:", call.Price)

	ft.CompleteCalls(60) // the agent left it running; TimeLimit ends it at 5 minutes
	call, err = tw.Api.FetchCall(*call.Sid, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*call.Status, "duration:", *call.Duration, "price:", *call.Price)
	// Output:
	// CA00000000000000000000000000000001 queued price: <nil>
	// completed duration: 300 price: -0.07000
}
