package twilio

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// throughPrism classifies what twilio-go sends, forwards it to Prism, and
// settles the calls that move money from Prism's answers, as Keybrake's
// transport would with a configured endpoint.
type throughPrism struct {
	t      *testing.T
	base   *url.URL
	prices map[string]money.Amount // by operation: what the policy would price the call at
	mu     sync.Mutex
	got    []vendors.Settlement
	ops    []string
}

func (p *throughPrism) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	req.Body.Close()
	c, err := Vendor{}.Classify(&vendors.Request{Method: req.Method, Host: req.URL.Host, Path: req.URL.EscapedPath(),
		Query: req.URL.RawQuery, Header: req.Header.Clone(), Body: body})
	if err != nil {
		p.t.Errorf("Classify refused what twilio-go sends: %v", err)
		return nil, err
	}
	c.Amount = p.prices[c.Operation]
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = p.base.Scheme, p.base.Host, ""
	out.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	if resp.StatusCode/100 != 2 {
		p.t.Errorf("Prism refused %s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, rb)
		return resp, nil
	}
	if c.MovesMoney {
		st, err := Vendor{}.Settle(c, rb)
		if err != nil {
			p.t.Errorf("Settle(%s): %v", c.Operation, err)
		}
		p.mu.Lock()
		p.got = append(p.got, st)
		p.ops = append(p.ops, c.Operation)
		p.mu.Unlock()
	}
	return resp, nil
}

// TestAgainstTwilioSpec runs twilio-go against Prism serving Twilio's own
// OpenAPI description: Keybrake's strict reading accepts what the SDK
// sends, Twilio's spec accepts the same requests, and Settle reads the
// spec's answers (a message with "price": null, a call priced "-0.03000").
func TestAgainstTwilioSpec(t *testing.T) {
	base, err := url.Parse(testenv.Prism(t, testenv.TwilioSpecWithMediaURLFix(t)))
	if err != nil {
		t.Fatal(err)
	}
	sms, mms, minute := price(t, "0.0079 USD"), price(t, "0.02 USD"), price(t, "0.028 USD")
	p := &throughPrism{t: t, base: base, prices: map[string]money.Amount{"messages.create": sms, "calls.create": minute}}
	// The spec's examples answer for account ACaaaa...; Settle checks the
	// answer is the calling account's.
	const exampleAccount = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tw := restClientFor(&http.Client{Transport: p}, exampleAccount)

	m := &api.CreateMessageParams{}
	m.SetTo("+15558675310").SetFrom("+15005550006").SetBody("Hello from Keybrake")
	if _, err := tw.Api.CreateMessage(m); err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	p.prices["messages.create"] = mms
	m.SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"})
	if _, err := tw.Api.CreateMessage(m); err != nil {
		t.Fatalf("CreateMessage with media: %v", err)
	}
	cp := &api.CreateCallParams{}
	cp.SetTo("+15558675310").SetFrom("+15005550006").SetUrl("https://example.com/twiml").SetTimeLimit(120).
		SetStatusCallbackEvent([]string{"initiated", "completed"})
	if _, err := tw.Api.CreateCall(cp); err != nil {
		t.Fatalf("CreateCall: %v", err)
	}
	if _, err := tw.Api.FetchMessage("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", nil); err != nil {
		t.Fatalf("FetchMessage: %v", err)
	}

	want := []struct {
		op        string
		moved     money.Amount
		estimated bool
		object    string
		units     int64
	}{
		{"messages.create", sms, true, "/2010-04-01/Accounts/" + exampleAccount + "/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json", 1},
		{"messages.create", mms, true, "/2010-04-01/Accounts/" + exampleAccount + "/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json", 1},
		{"calls.create", price(t, "0.03 USD"), false, "/2010-04-01/Accounts/" + exampleAccount + "/Calls/CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json", -1},
	}
	if len(p.got) != len(want) {
		t.Fatalf("settled %v %+v, want %d settlements", p.ops, p.got, len(want))
	}
	for i, w := range want {
		st := p.got[i]
		if p.ops[i] != w.op || st.Moved != w.moved || st.Estimated != w.estimated || st.Object != w.object || st.Units != w.units {
			t.Errorf("settlement %d: %s %+v, want %+v", i, p.ops[i], st, w)
		}
	}
}
