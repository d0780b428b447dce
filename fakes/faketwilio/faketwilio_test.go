package faketwilio_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/keybrake/keybrake/fakes/faketwilio"
	"github.com/keybrake/keybrake/money"
)

const (
	to   = "+15558675310"
	from = "+15005550006"
)

// newFake starts a fake and a twilio-go client on it.
func newFake(t *testing.T) (*faketwilio.Server, *twilio.RestClient, string) {
	t.Helper()
	ft, url := faketwilio.Start(t)
	return ft, newClient(url, faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken, 10*time.Second), url
}

func newClient(baseURL, sid, token string, timeout time.Duration) *twilio.RestClient {
	c := &client.Client{
		Credentials: client.NewCredentials(sid, token),
		// A bound on every call, so that a fault that strikes more often
		// than it should fails the test instead of hanging it.
		HTTPClient: &http.Client{Transport: faketwilio.Transport(baseURL, nil), Timeout: timeout},
	}
	c.SetAccountSid(sid)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
}

func sms(body string) *api.CreateMessageParams {
	return (&api.CreateMessageParams{}).SetTo(to).SetFrom(from).SetBody(body)
}

// twilioErr asserts err is a *client.TwilioRestError with this status and
// code.
func twilioErr(t *testing.T, err error, status, code int) *client.TwilioRestError {
	t.Helper()
	var te *client.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("got %v (%T), want a *client.TwilioRestError", err, err)
	}
	if te.Status != status || te.Code != code || te.Message == "" || !strings.HasSuffix(te.MoreInfo, "/errors/"+itoa(code)) {
		t.Fatalf("got %+v, want status %d code %d", te, status, code)
	}
	return te
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func usd(t *testing.T, s string) money.Amount {
	t.Helper()
	a, err := money.ParsePrice(s + " USD")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func spent(t *testing.T, ft *faketwilio.Server, want string) {
	t.Helper()
	got := ft.Spent()[faketwilio.PriceUnit]
	if w := usd(t, want); got.Micros != w.Micros {
		t.Fatalf("spent %v, want %v (messages %+v, calls %+v)", got, w, ft.Messages(), ft.Calls())
	}
}

func TestMessagePricedLater(t *testing.T) {
	ft, tw, _ := newFake(t)
	m, err := tw.Api.CreateMessage(sms("Hello from Keybrake"))
	if err != nil {
		t.Fatal(err)
	}
	wantSID := "SM00000000000000000000000000000001"
	wantURI := "/2010-04-01/Accounts/" + faketwilio.DefaultAccountSID + "/Messages/" + wantSID + ".json"
	if str(m.Sid) != wantSID || str(m.Status) != "queued" || m.Price != nil || str(m.PriceUnit) != "USD" ||
		str(m.NumSegments) != "1" || str(m.NumMedia) != "0" || str(m.Uri) != wantURI ||
		str(m.To) != to || str(m.From) != from || str(m.Body) != "Hello from Keybrake" ||
		str(m.AccountSid) != faketwilio.DefaultAccountSID || str(m.Direction) != "outbound-api" || m.DateSent != nil {
		t.Fatalf("created %s", dump(m))
	}
	if _, err := time.Parse(time.RFC1123Z, str(m.DateCreated)); err != nil {
		t.Fatalf("date_created %q: %v", str(m.DateCreated), err)
	}
	// Twilio bills it from the moment it is sent; the API shows nothing yet.
	spent(t, ft, "0.0079")
	if b := ft.Billed(); len(b) != 0 {
		t.Fatalf("billed %v before pricing", b)
	}

	got, err := tw.Api.FetchMessage(wantSID, nil)
	if err != nil || got.Price != nil {
		t.Fatalf("fetch before pricing: %s %v", dump(got), err)
	}
	if n := ft.PriceMessages(); n != 1 {
		t.Fatalf("priced %d", n)
	}
	got, err = tw.Api.FetchMessage(wantSID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if str(got.Price) != "-0.00790" || str(got.Status) != "sent" || got.DateSent == nil || str(got.NumSegments) != "1" {
		t.Fatalf("fetch after pricing: %s", dump(got))
	}
	if b := ft.Billed()[faketwilio.PriceUnit]; b.Micros != 7900 {
		t.Fatalf("billed %v", b)
	}
	if n := ft.PriceMessages(); n != 0 {
		t.Fatalf("priced %d again", n)
	}
	spent(t, ft, "0.0079")
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSegmentsAndPricesThroughSDK(t *testing.T) {
	ft, tw, _ := newFake(t)
	ft.SetPrice("+44", "0.0400")
	ft.SetPrice("+447", "0.0450")
	ft.SetPrice("+1", "0.0083")
	tests := []struct {
		name     string
		to       string
		body     string
		segments string
		price    string
	}{
		{"one GSM-7 segment", "+15558675310", strings.Repeat("a", 160), "1", "-0.00830"},
		{"two GSM-7 segments", "+15558675310", strings.Repeat("a", 161), "2", "-0.01660"},
		{"extension characters count double", "+15558675310", strings.Repeat("€", 81), "2", "-0.01660"},
		{"one non-GSM character makes UCS-2", "+15558675310", strings.Repeat("a", 70) + "ç", "2", "-0.01660"},
		{"emoji are two code units", "+15558675310", strings.Repeat("😀", 35), "1", "-0.00830"},
		{"longest prefix wins", "+447700900123", strings.Repeat("b", 307), "3", "-0.13500"},
		{"shorter prefix", "+442071838750", "hi", "1", "-0.04000"},
		{"default price", "+33612345678", "salut", "1", "-0.00790"},
	}
	var total money.Amount
	total.Currency = faketwilio.PriceUnit
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tw.Api.CreateMessage((&api.CreateMessageParams{}).SetTo(tt.to).SetFrom(from).SetBody(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if str(m.NumSegments) != tt.segments || str(m.Body) != tt.body {
				t.Fatalf("num_segments %s, want %s", str(m.NumSegments), tt.segments)
			}
			ft.PriceMessages()
			got, err := tw.Api.FetchMessage(*m.Sid, nil)
			if err != nil || str(got.Price) != tt.price {
				t.Fatalf("price %s, want %s (%v)", str(got.Price), tt.price, err)
			}
			p, err := money.ParsePrice(strings.TrimPrefix(tt.price, "-") + " USD")
			if err != nil {
				t.Fatal(err)
			}
			if total, err = total.Add(p); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := ft.Spent()[faketwilio.PriceUnit]; got != total {
		t.Fatalf("spent %v, want the sum of prices %v", got, total)
	}
}

func TestPriceFixedWhenSent(t *testing.T) {
	ft, tw, _ := newFake(t)
	m, err := tw.Api.CreateMessage(sms("x"))
	if err != nil {
		t.Fatal(err)
	}
	ft.SetPrice("", "1.25")
	ft.PriceMessages()
	got, err := tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil || str(got.Price) != "-0.00790" {
		t.Fatalf("price %s (%v): a later price change reached a sent message", str(got.Price), err)
	}
	if _, err := tw.Api.CreateMessage(sms("y")); err != nil {
		t.Fatal(err)
	}
	spent(t, ft, "1.2579")
}

func TestPriceDelay(t *testing.T) {
	ft, tw, _ := newFake(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	ft.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ft.SetPriceDelay(2 * time.Minute)

	m, err := tw.Api.CreateMessage(sms("later"))
	if err != nil {
		t.Fatal(err)
	}
	if str(m.DateCreated) != "Sun, 01 Mar 2026 12:00:00 +0000" {
		t.Fatalf("date_created %q", str(m.DateCreated))
	}
	advance(time.Minute + 59*time.Second)
	if got, err := tw.Api.FetchMessage(*m.Sid, nil); err != nil || got.Price != nil {
		t.Fatalf("priced early: %s %v", dump(got), err)
	}
	advance(time.Second)
	got, err := tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil || str(got.Price) != "-0.00790" || str(got.DateSent) != "Sun, 01 Mar 2026 12:02:00 +0000" {
		t.Fatalf("not priced on time: %s %v", dump(got), err)
	}
	if ms := ft.Messages(); len(ms) != 1 || !ms[0].Priced || ms[0].Status != "sent" {
		t.Fatalf("messages %+v", ms)
	}
}

func TestMMS(t *testing.T) {
	ft, tw, _ := newFake(t)
	ft.SetMMSPrice("+1", "0.0220")
	m, err := tw.Api.CreateMessage(sms(strings.Repeat("long caption ", 30)).SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"}))
	if err != nil {
		t.Fatal(err)
	}
	if str(m.NumMedia) != "2" || str(m.NumSegments) != "1" {
		t.Fatalf("created %s", dump(m))
	}
	if _, err := tw.Api.CreateMessage(sms("ten").SetMediaUrl(mediaURLs(10))); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Api.CreateMessage(sms("as mms").SetSendAsMms(true)); err != nil {
		t.Fatal(err)
	}
	spent(t, ft, "0.0660")
	ms := ft.Messages()
	if len(ms) != 3 || !ms[0].MMS || !ms[2].MMS || ms[2].Segments != 1 || len(ms[0].MediaURLs) != 2 || ms[0].MediaURLs[1] != "https://example.com/b.png" {
		t.Fatalf("messages %+v", ms)
	}
	// Outside +1 Twilio would send an SMS with a link, which is not modelled.
	_, err = tw.Api.CreateMessage((&api.CreateMessageParams{}).SetTo("+447700900123").SetFrom(from).SetMediaUrl([]string{"https://example.com/a.png"}))
	twilioErr(t, err, 400, 20001)
	spent(t, ft, "0.0660")
}

func TestMessagingService(t *testing.T) {
	ft, tw, _ := newFake(t)
	service := "MG0123456789abcdef0123456789abcdef"
	m, err := tw.Api.CreateMessage((&api.CreateMessageParams{}).SetTo(to).SetMessagingServiceSid(service).SetBody(strings.Repeat("z", 200)))
	if err != nil {
		t.Fatal(err)
	}
	if str(m.Status) != "accepted" || str(m.NumSegments) != "0" || m.From != nil || str(m.MessagingServiceSid) != service {
		t.Fatalf("created %s", dump(m))
	}
	spent(t, ft, "0.0158")
	ft.PriceMessages()
	got, err := tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil || str(got.NumSegments) != "2" || str(got.Price) != "-0.01580" {
		t.Fatalf("fetched %s %v", dump(got), err)
	}
}

func TestMessageErrors(t *testing.T) {
	p := func() *api.CreateMessageParams { return &api.CreateMessageParams{} }
	tests := []struct {
		name   string
		params *api.CreateMessageParams
		status int
		code   int
	}{
		{"no To", p().SetFrom(from).SetBody("x"), 400, 21604},
		{"national To", p().SetTo("5558675310").SetFrom(from).SetBody("x"), 400, 21211},
		{"To with spaces", p().SetTo("+1 555 867 5310").SetFrom(from).SetBody("x"), 400, 21211},
		{"no From", p().SetTo(to).SetBody("x"), 400, 21603},
		{"bad From", p().SetTo(to).SetFrom("not a sender!").SetBody("x"), 400, 21212},
		{"bad service", p().SetTo(to).SetMessagingServiceSid("MGxyz").SetBody("x"), 400, 20001},
		{"no Body", p().SetTo(to).SetFrom(from), 400, 21602},
		{"empty Body", p().SetTo(to).SetFrom(from).SetBody(""), 400, 21602},
		{"Body too long", sms(strings.Repeat("a", 1601)), 400, 21617},
		{"too many media", sms("x").SetMediaUrl(mediaURLs(11)), 400, 21623},
		{"bad media URL", sms("x").SetMediaUrl([]string{"ftp://example.com/a.png"}), 400, 21620},
		{"template", p().SetTo(to).SetFrom(from).SetContentSid("HX0123456789abcdef0123456789abcdef"), 400, 20001},
		{"smart encoding", sms("x").SetSmartEncoded(true), 400, 20001},
		{"shortened links", sms("x").SetShortenUrls(true), 400, 20001},
		{"scheduled", sms("x").SetScheduleType("fixed").SetSendAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), 400, 20001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft, tw, _ := newFake(t)
			_, err := tw.Api.CreateMessage(tt.params)
			twilioErr(t, err, tt.status, tt.code)
			if ms := ft.Messages(); len(ms) != 0 {
				t.Fatalf("a refused message was created: %+v", ms)
			}
			if s := ft.Spent(); len(s) != 0 {
				t.Fatalf("spent %v", s)
			}
		})
	}
}

func mediaURLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "https://example.com/" + itoa(i) + ".png"
	}
	return out
}

func TestSendersAccepted(t *testing.T) {
	for _, sender := range []string{"+15005550006", "12345", "Keybrake", "Key 2"} {
		ft, tw, _ := newFake(t)
		m, err := tw.Api.CreateMessage((&api.CreateMessageParams{}).SetTo(to).SetFrom(sender).SetBody("x"))
		if err != nil || str(m.From) != sender {
			t.Fatalf("From %q: %s %v", sender, dump(m), err)
		}
		_ = ft
	}
}

func TestAuthentication(t *testing.T) {
	ft, _, url := newFake(t)
	tests := []struct {
		name, sid, token string
	}{
		{"wrong token", faketwilio.DefaultAccountSID, "0000000000000000"},
		{"wrong account", "AC00000000000000000000000000000000", faketwilio.DefaultAuthToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newClient(url, tt.sid, tt.token, 5*time.Second).Api.CreateMessage(sms("x"))
			te := twilioErr(t, err, 401, 20003)
			if strings.Contains(te.Error(), tt.token) {
				t.Fatalf("the token was echoed: %v", te)
			}
		})
	}
	// The right credentials on another account's path see nothing.
	_, err := newClient(url, faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken, 5*time.Second).Api.
		CreateMessage(sms("x").SetPathAccountSid("AC00000000000000000000000000000000"))
	twilioErr(t, err, 404, 20404)

	sid, token := "ACabcdefabcdefabcdefabcdefabcdefab", "s3cr3tT0ken"
	ft.SetCredentials(sid, token)
	if ft.AccountSID() != sid {
		t.Fatalf("AccountSID %q", ft.AccountSID())
	}
	m, err := newClient(url, sid, token, 5*time.Second).Api.CreateMessage(sms("x"))
	if err != nil || str(m.AccountSid) != sid || !strings.Contains(str(m.Uri), sid) {
		t.Fatalf("%s %v", dump(m), err)
	}
	_, err = newClient(url, faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken, 5*time.Second).Api.CreateMessage(sms("x"))
	twilioErr(t, err, 401, 20003)
	if len(ft.Messages()) != 1 {
		t.Fatalf("messages %+v", ft.Messages())
	}
}

func TestUnknownResources(t *testing.T) {
	_, tw, _ := newFake(t)
	_, err := tw.Api.FetchMessage("SM000000000000000000000000000000ff", nil)
	twilioErr(t, err, 404, 20404)
	_, err = tw.Api.FetchCall("CA000000000000000000000000000000ff", nil)
	twilioErr(t, err, 404, 20404)
	// A route faketwilio does not model.
	_, err = tw.Api.ListMessage(nil)
	var te *client.TwilioRestError
	if !errors.As(err, &te) || te.Status != 404 {
		t.Fatalf("list: %v", err)
	}
}

func TestCalls(t *testing.T) {
	ft, tw, _ := newFake(t)
	ft.SetCallPrice("+44", "0.0300")
	call := func(to string, limit int) *api.ApiV2010Call {
		t.Helper()
		p := (&api.CreateCallParams{}).SetTo(to).SetFrom(from).SetUrl("https://example.com/twiml")
		if limit > 0 {
			p.SetTimeLimit(limit)
		}
		c, err := tw.Api.CreateCall(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := call(to, 0)
	if str(a.Sid) != "CA00000000000000000000000000000001" || str(a.Status) != "queued" || a.Price != nil || a.Duration != nil ||
		str(a.PriceUnit) != "USD" || str(a.ToFormatted) != "(555) 867-5310" || str(a.Direction) != "outbound-api" {
		t.Fatalf("created %s", dump(a))
	}
	b := call("+447700900123", 90)
	c := call(to, 0)
	if !ft.CompleteCall(*c.Sid, 61) || ft.CompleteCall(*c.Sid, 61) || ft.CompleteCall("CAnope", 1) {
		t.Fatal("CompleteCall")
	}
	spent(t, ft, "0.0280")
	if n := ft.CompleteCalls(10); n != 2 {
		t.Fatalf("completed %d", n)
	}
	if n := ft.CompleteCalls(10); n != 0 {
		t.Fatalf("completed %d again", n)
	}
	tests := []struct {
		sid      string
		duration string
		price    string
	}{
		{*a.Sid, "600", "-0.14000"},
		{*b.Sid, "90", "-0.06000"}, // TimeLimit bounds it: 90 s are two started minutes
		{*c.Sid, "61", "-0.02800"},
	}
	for _, tt := range tests {
		got, err := tw.Api.FetchCall(tt.sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		if str(got.Status) != "completed" || str(got.Duration) != tt.duration || str(got.Price) != tt.price || got.StartTime == nil || got.EndTime == nil {
			t.Fatalf("%s: %s, want duration %s price %s", tt.sid, dump(got), tt.duration, tt.price)
		}
	}
	spent(t, ft, "0.2280")
	if b := ft.Billed()[faketwilio.PriceUnit]; b.Micros != 228000 {
		t.Fatalf("billed %v", b)
	}
	cs := ft.Calls()
	if len(cs) != 3 || cs[0].TimeLimit != faketwilio.DefaultTimeLimit || cs[1].TimeLimit != 90 || cs[1].Duration != 90 || !cs[2].Completed {
		t.Fatalf("calls %+v", cs)
	}

	d := call(to, 0)
	ft.CompleteCalls(0)
	got, err := tw.Api.FetchCall(*d.Sid, nil)
	if err != nil || str(got.Status) != "no-answer" || str(got.Price) != "0.00000" || str(got.Duration) != "0" {
		t.Fatalf("unanswered: %s %v", dump(got), err)
	}
	spent(t, ft, "0.2280")
}

func TestCallErrors(t *testing.T) {
	p := func() *api.CreateCallParams { return &api.CreateCallParams{} }
	ok := func() *api.CreateCallParams { return p().SetTo(to).SetFrom(from).SetUrl("https://example.com/x") }
	tests := []struct {
		name   string
		params *api.CreateCallParams
		code   int
	}{
		{"no To", p().SetFrom(from).SetUrl("https://example.com/x"), 21201},
		{"SIP To", p().SetTo("sip:alice@example.com").SetFrom(from).SetUrl("https://example.com/x"), 21211},
		{"no From", p().SetTo(to).SetUrl("https://example.com/x"), 21213},
		{"bad From", p().SetTo(to).SetFrom("Keybrake").SetUrl("https://example.com/x"), 21212},
		{"no TwiML", p().SetTo(to).SetFrom(from), 20001},
		{"Url and Twiml", ok().SetTwiml("<Response/>"), 20001},
		{"bad Url", p().SetTo(to).SetFrom(from).SetUrl("example.com/x"), 21205},
		{"bad application", p().SetTo(to).SetFrom(from).SetApplicationSid("AP1"), 20001},
		{"zero TimeLimit", ok().SetTimeLimit(0), 20001},
		{"TimeLimit over a day", ok().SetTimeLimit(86401), 20001},
		{"bad method", ok().SetMethod("PUT"), 20001},
		{"recording", ok().SetRecord(true), 20001},
		{"answering machine detection", ok().SetMachineDetection("Enable"), 20001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft, tw, _ := newFake(t)
			_, err := tw.Api.CreateCall(tt.params)
			twilioErr(t, err, 400, tt.code)
			if len(ft.Calls()) != 0 {
				t.Fatalf("calls %+v", ft.Calls())
			}
		})
	}
	ft, tw, _ := newFake(t)
	for _, params := range []*api.CreateCallParams{
		p().SetTo(to).SetFrom(from).SetTwiml("<Response><Say>hi</Say></Response>").SetTimeLimit(86400),
		p().SetTo(to).SetFrom(from).SetApplicationSid("AP0123456789abcdef0123456789abcdef").SetTimeout(30),
		ok().SetStatusCallback("https://example.com/cb").SetStatusCallbackEvent([]string{"initiated", "completed"}).SetMethod("GET"),
	} {
		if _, err := tw.Api.CreateCall(params); err != nil {
			t.Fatal(err)
		}
	}
	if cs := ft.Calls(); len(cs) != 3 || cs[0].TimeLimit != 86400 {
		t.Fatalf("calls %+v", cs)
	}
}

func TestFailNextDoesNothing(t *testing.T) {
	ft, tw, _ := newFake(t)
	ft.FailNext(1, 500)
	_, err := tw.Api.CreateMessage(sms("x"))
	twilioErr(t, err, 500, 20500)
	if len(ft.Messages()) != 0 {
		t.Fatal("a failed request sent a message")
	}
	m, err := tw.Api.CreateMessage(sms("x"))
	if err != nil || str(m.Sid) != "SM00000000000000000000000000000001" {
		t.Fatalf("the fault struck twice, or used up a SID: %s %v", dump(m), err)
	}
}

func TestExecuteThenFail(t *testing.T) {
	// The message goes out and will be billed, yet the client sees an
	// error: Keybrake must keep such a send counted.
	ft, tw, _ := newFake(t)
	ft.ExecuteThenFail(1, 503)
	_, err := tw.Api.CreateMessage(sms("x"))
	twilioErr(t, err, 503, 20503)
	spent(t, ft, "0.0079")
	if ms := ft.Messages(); len(ms) != 1 || ms[0].Body != "x" {
		t.Fatalf("messages %+v", ms)
	}
	log := ft.Log()
	if len(log) != 1 || log[0].Status != 503 || !log[0].Fault || log[0].Params.Get("Body") != "x" {
		t.Fatalf("log %+v", log)
	}
}

func TestFaultBodyIsNotATwilioError(t *testing.T) {
	ft, tw, _ := newFake(t)
	ft.Inject(faketwilio.Fault{Status: 502, Body: "<html>Bad Gateway</html>", Times: 1})
	_, err := tw.Api.CreateMessage(sms("x"))
	var te *client.TwilioRestError
	if err == nil || errors.As(err, &te) {
		t.Fatalf("got %v, want a decoding error", err)
	}
}

func TestFaultCodeOverride(t *testing.T) {
	ft, tw, _ := newFake(t)
	ft.Inject(faketwilio.Fault{Status: 429, Code: 20429, Times: 1, Method: "POST"})
	_, err := tw.Api.CreateMessage(sms("x"))
	twilioErr(t, err, 429, 20429)
	ft.Inject(faketwilio.Fault{Status: 400, Code: 21610, Times: 1})
	_, err = tw.Api.CreateMessage(sms("x"))
	twilioErr(t, err, 400, 21610)
}

func TestScopedFaults(t *testing.T) {
	ft, tw, _ := newFake(t)
	m, err := tw.Api.CreateMessage(sms("x"))
	if err != nil {
		t.Fatal(err)
	}
	ft.On("POST", "/2010-04-01/Accounts/"+faketwilio.DefaultAccountSID+"/Calls.json").FailNext(1, 500)
	if _, err := tw.Api.FetchMessage(*m.Sid, nil); err != nil {
		t.Fatalf("a call fault struck a message read: %v", err)
	}
	if _, err := tw.Api.CreateMessage(sms("y")); err != nil {
		t.Fatalf("a call fault struck a message: %v", err)
	}
	_, err = tw.Api.CreateCall((&api.CreateCallParams{}).SetTo(to).SetFrom(from).SetUrl("https://example.com/x"))
	twilioErr(t, err, 500, 20500)
	if _, err := tw.Api.CreateCall((&api.CreateCallParams{}).SetTo(to).SetFrom(from).SetUrl("https://example.com/x")); err != nil {
		t.Fatalf("the fault struck twice: %v", err)
	}
}

func TestDelayRespectsTheClient(t *testing.T) {
	ft, url := faketwilio.Start(t)
	ft.Delay(10 * time.Second)
	tw := newClient(url, faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken, 200*time.Millisecond)
	start := time.Now()
	if _, err := tw.Api.CreateMessage(sms("x")); err == nil {
		t.Fatal("no error from a delayed request")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	waitStatus(t, ft, 0, 0)
	if len(ft.Messages()) != 0 {
		t.Fatal("a request the client gave up on sent a message")
	}
	ft.ClearFaults()
	if _, err := tw.Api.CreateMessage(sms("x")); err != nil {
		t.Fatal(err)
	}
}

func TestExecuteThenHang(t *testing.T) {
	ft, url := faketwilio.Start(t)
	ft.On("POST", "").ExecuteThenHang(1)
	tw := newClient(url, faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken, 300*time.Millisecond)
	if _, err := tw.Api.CreateMessage(sms("x")); err == nil {
		t.Fatal("no error from a hung request")
	}
	waitStatus(t, ft, 0, 0)
	spent(t, ft, "0.0079")
}

func TestCloseReleasesHang(t *testing.T) {
	ft, url := faketwilio.Start(t)
	ft.Hang()
	tw := newClient(url, faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken, 0)
	done := make(chan error, 1)
	go func() {
		_, err := tw.Api.CreateMessage(sms("x"))
		done <- err
	}()
	waitRequests(t, ft, 1)
	ft.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a hung request was answered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
	if len(ft.Messages()) != 0 {
		t.Fatal("a hung request sent a message")
	}
}

// waitStatus waits until the handler of log entry i has finished and
// checks the status it recorded (0 when dropped unanswered).
func waitStatus(t *testing.T, ft *faketwilio.Server, i, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := ft.Log()
		if len(log) > i && log[i].Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %+v", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitRequests(t *testing.T, ft *faketwilio.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ft.Requests() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests, want %d", ft.Requests(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConcurrentSends(t *testing.T) {
	ft, tw, _ := newFake(t)
	const n = 40
	var wg sync.WaitGroup
	sids := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := tw.Api.CreateMessage(sms("concurrent"))
			if err != nil {
				t.Error(err)
				return
			}
			sids <- *m.Sid
		}()
	}
	wg.Wait()
	close(sids)
	seen := map[string]bool{}
	for sid := range sids {
		if seen[sid] {
			t.Fatalf("SID %s twice", sid)
		}
		seen[sid] = true
	}
	if len(seen) != n || ft.Requests() != n || ft.RequestsTo("POST", "/2010-04-01/Accounts/"+faketwilio.DefaultAccountSID+"/Messages.json") != n {
		t.Fatalf("%d SIDs, %d requests", len(seen), ft.Requests())
	}
	spent(t, ft, "0.3160")
}

// raw sends a request by hand and decodes the JSON answer.
func raw(t *testing.T, method, target, contentType, body string, auth bool) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.SetBasicAuth(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v\n%s", method, target, err, b)
	}
	if !strings.HasPrefix(res.Header.Get("Twilio-Request-Id"), "RQ") {
		t.Errorf("%s %s: no Twilio-Request-Id", method, target)
	}
	return res, m
}

func TestWire(t *testing.T) {
	ft, base := faketwilio.Start(t)
	account := "/2010-04-01/Accounts/" + faketwilio.DefaultAccountSID
	messages := account + "/Messages.json"
	form := "application/x-www-form-urlencoded"
	ok := "To=%2B15558675310&From=%2B15005550006&Body=hi"
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		auth        bool
		wantStatus  int
		wantCode    float64 // 0 for success
	}{
		{"no auth", "POST", messages, form, ok, false, 401, 20003},
		{"unknown route", "GET", account + "/Nope.json", "", "", true, 404, 20404},
		{"wrong method", "DELETE", messages, "", "", true, 404, 20404},
		{"dot segments", "POST", account + "/Calls/../Messages.json", form, ok, true, 404, 20404},
		{"escaped path", "POST", account + "/%4Dessages.json", form, ok, true, 404, 20404},
		{"trailing slash", "POST", messages + "/", form, ok, true, 404, 20404},
		{"xml format", "POST", account + "/Messages.xml", form, ok, true, 404, 20404},
		{"JSON body", "POST", messages, "application/json", `{"To":"+15558675310"}`, true, 400, 20001},
		{"query on a write", "POST", messages + "?Body=more", form, ok, true, 400, 20001},
		{"query on a read", "GET", account + "/Messages/SM00000000000000000000000000000001.json?x=1", "", "", true, 400, 20001},
		{"repeated To", "POST", messages, form, ok + "&To=%2B15558675311", true, 400, 20001},
		{"lower-case parameter", "POST", messages, form, "to=%2B15558675310&From=%2B15005550006&Body=hi", true, 400, 20001},
		{"semicolon", "POST", messages, form, "To=%2B15558675310;From=%2B15005550006&Body=hi", true, 400, 20001},
		{"bad escape", "POST", messages, form, ok + "%ZZ", true, 400, 20001},
		{"invalid UTF-8 body", "POST", messages, form, "To=%2B15558675310&From=%2B15005550006&Body=%FF", true, 400, 20001},
		{"bad SendAsMms", "POST", messages, form, ok + "&SendAsMms=yes", true, 400, 20001},
		{"body on a read", "GET", account + "/Messages/SM00000000000000000000000000000001.json", form, "x=1", true, 400, 20001},
		{"accepted", "POST", messages, form + "; charset=utf-8", ok, true, 201, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, m := raw(t, tt.method, base+tt.path, tt.contentType, tt.body, tt.auth)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", res.StatusCode, tt.wantStatus, m)
			}
			if tt.wantCode == 0 {
				if m["sid"] == nil || m["status"] != "queued" {
					t.Fatalf("got %v", m)
				}
				return
			}
			if m["code"] != tt.wantCode || m["status"] != float64(tt.wantStatus) || m["message"] == "" || m["more_info"] == "" {
				t.Fatalf("error %v, want code %v", m, tt.wantCode)
			}
			if tt.wantStatus == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(ft.Messages()); n != 1 {
		t.Fatalf("%d messages, want only the accepted one", n)
	}

	big := strings.NewReader("Body=" + strings.Repeat("a", 1<<20))
	req, _ := http.NewRequest("POST", base+messages, big)
	req.Header.Set("Content-Type", form)
	req.SetBasicAuth(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 1 MiB body: status %d", res.StatusCode)
	}

	// Request IDs are unique, and the credentials are never logged.
	seen := map[string]bool{}
	for _, r := range ft.Log() {
		if seen[r.ID] || !strings.HasPrefix(r.ID, "RQ") || len(r.ID) != 34 {
			t.Fatalf("request ID %q", r.ID)
		}
		seen[r.ID] = true
		for k, vs := range r.Params {
			for _, v := range vs {
				if strings.Contains(k+v, faketwilio.DefaultAuthToken) {
					t.Fatal("the token reached the log")
				}
			}
		}
	}
	if b, _ := json.Marshal(ft.Log()); strings.Contains(string(b), faketwilio.DefaultAuthToken) ||
		strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(faketwilio.DefaultAccountSID+":"+faketwilio.DefaultAuthToken))) {
		t.Fatal("the credentials reached the log")
	}
}

func TestLogKeepsWhatWasSent(t *testing.T) {
	ft, tw, _ := newFake(t)
	if _, err := tw.Api.CreateMessage(sms("logged").SetMediaUrl([]string{"https://e.com/1.png", "https://e.com/2.png"})); err != nil {
		t.Fatal(err)
	}
	log := ft.Log()
	if len(log) != 1 || log[0].Method != "POST" || log[0].Status != 201 || log[0].Fault ||
		log[0].Params.Get("Body") != "logged" || len(log[0].Params["MediaUrl"]) != 2 {
		t.Fatalf("log %+v", log)
	}
	// Log returns copies.
	log[0].Params.Set("Body", "changed")
	if ft.Log()[0].Params.Get("Body") != "logged" {
		t.Fatal("Log shares its parameters")
	}
}

func TestTransportLeavesTheRequestAlone(t *testing.T) {
	ft, base := faketwilio.Start(t)
	req, err := http.NewRequestWithContext(context.Background(), "POST",
		"https://api.twilio.com/2010-04-01/Accounts/"+faketwilio.DefaultAccountSID+"/Messages.json",
		strings.NewReader(url.Values{"To": {to}, "From": {from}, "Body": {"x"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken)
	res, err := faketwilio.HTTPClient(base).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 || req.URL.Host != "api.twilio.com" || req.URL.Scheme != "https" || req.Host != "api.twilio.com" {
		t.Fatalf("status %d, request now %s (Host %q)", res.StatusCode, req.URL, req.Host)
	}
	if len(ft.Messages()) != 1 {
		t.Fatal("no message")
	}
}

func TestSetupRefusesNonsense(t *testing.T) {
	tests := []struct {
		name string
		f    func(*faketwilio.Server)
	}{
		{"success status", func(s *faketwilio.Server) { s.FailNext(1, 200) }},
		{"no effect", func(s *faketwilio.Server) { s.Inject(faketwilio.Fault{Times: 1}) }},
		{"zero times", func(s *faketwilio.Server) { s.FailNext(0, 500) }},
		{"price prefix", func(s *faketwilio.Server) { s.SetPrice("44", "0.04") }},
		{"price with sign", func(s *faketwilio.Server) { s.SetPrice("+44", "-0.04") }},
		{"price with seven decimals", func(s *faketwilio.Server) { s.SetPrice("+44", "0.0000001") }},
		{"price not a number", func(s *faketwilio.Server) { s.SetCallPrice("", "free") }},
		{"mms price", func(s *faketwilio.Server) { s.SetMMSPrice("+1", "1e-2") }},
		{"account SID", func(s *faketwilio.Server) { s.SetCredentials("AC123", "token") }},
		{"token", func(s *faketwilio.Server) { s.SetCredentials(faketwilio.DefaultAccountSID, "tok_en") }},
		{"negative delay", func(s *faketwilio.Server) { s.SetPriceDelay(-time.Second) }},
		{"negative minutes", func(s *faketwilio.Server) { s.CompleteCalls(-1) }},
		{"negative seconds", func(s *faketwilio.Server) { s.CompleteCall("CA1", -1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.f(faketwilio.New())
		})
	}
}
