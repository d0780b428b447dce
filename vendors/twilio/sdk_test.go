package twilio

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	messaging "github.com/twilio/twilio-go/rest/messaging/v1"
	verify "github.com/twilio/twilio-go/rest/verify/v2"

	"github.com/keybrake/keybrake/vendors"
)

// classifying hands every request twilio-go sends to Classify, as
// Keybrake's transport does after its own checks, and records the result.
type classifying struct {
	mu    sync.Mutex
	calls []*vendors.Call
	errs  []error
	hosts []string
}

func (c *classifying) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	call, err := Vendor{}.Classify(&vendors.Request{
		Method: req.Method, Host: req.URL.Host, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery,
		Header: req.Header.Clone(), Body: body,
	})
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.errs = append(c.errs, err)
	c.hosts = append(c.hosts, req.URL.Host)
	c.mu.Unlock()
	status := 200
	if req.Method == "POST" {
		status = 201
	}
	if req.Method == "DELETE" {
		status = 204
	}
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
}

// TestClassifyAcceptsTwilioGo checks that the strict reading refuses none
// of what twilio-go itself sends, on hosts Hosts lists, and names each
// call.
func TestClassifyAcceptsTwilioGo(t *testing.T) {
	when := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		op   string
		call func(tw *twiliogo.RestClient) error
	}{
		{"messages.create", func(tw *twiliogo.RestClient) error {
			p := &api.CreateMessageParams{}
			p.SetTo("+15558675310").SetFrom("+15005550006").SetBody("Your code: 123456 — thanks! 😀 a&b=c").
				SetStatusCallback("https://example.com/status?x=1").SetValidityPeriod(600).SetSmartEncoded(true).
				SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png?sig=1&x=2"}).SetSendAsMms(false)
			_, err := tw.Api.CreateMessage(p)
			return err
		}},
		{"messages.create", func(tw *twiliogo.RestClient) error {
			p := &api.CreateMessageParams{}
			p.SetTo("+15558675310").SetMessagingServiceSid("MG0123456789abcdef0123456789abcdef").SetBody(strings.Repeat("long ", 80)).
				SetScheduleType("fixed").SetSendAt(when).SetShortenUrls(false).SetPathAccountSid(testAccount)
			_, err := tw.Api.CreateMessage(p)
			return err
		}},
		{"messages.list", func(tw *twiliogo.RestClient) error {
			p := &api.ListMessageParams{}
			p.SetTo("+15558675310").SetDateSentBefore(when).SetDateSentAfter(when.Add(-time.Hour)).SetPageSize(50).SetLimit(50)
			_, err := tw.Api.ListMessage(p)
			return err
		}},
		{"messages.retrieve", func(tw *twiliogo.RestClient) error {
			_, err := tw.Api.FetchMessage(testMessage, nil)
			return err
		}},
		{"messages.update", func(tw *twiliogo.RestClient) error {
			p := &api.UpdateMessageParams{}
			p.SetStatus("canceled")
			_, err := tw.Api.UpdateMessage(testMessage, p)
			return err
		}},
		{"messages.delete", func(tw *twiliogo.RestClient) error {
			return tw.Api.DeleteMessage(testMessage, nil)
		}},
		{"calls.create", func(tw *twiliogo.RestClient) error {
			p := &api.CreateCallParams{}
			p.SetTo("+15558675310").SetFrom("+15005550006").SetUrl("https://example.com/twiml").SetTimeLimit(600).
				SetStatusCallbackEvent([]string{"initiated", "answered", "completed"}).SetMachineDetection("Enable").
				SetRecord(true).SetSipAuthPassword("hunter2")
			_, err := tw.Api.CreateCall(p)
			return err
		}},
		{"calls.update", func(tw *twiliogo.RestClient) error {
			p := &api.UpdateCallParams{}
			p.SetStatus("completed")
			_, err := tw.Api.UpdateCall(testCall, p)
			return err
		}},
		{"calls.list", func(tw *twiliogo.RestClient) error {
			p := &api.ListCallParams{}
			p.SetStartTimeAfter(when).SetStatus("completed").SetLimit(20)
			_, err := tw.Api.ListCall(p)
			return err
		}},
		{"accounts.retrieve", func(tw *twiliogo.RestClient) error {
			_, err := tw.Api.FetchAccount(testAccount)
			return err
		}},
		{"balance.retrieve", func(tw *twiliogo.RestClient) error {
			_, err := tw.Api.FetchBalance(nil)
			return err
		}},
		{"verify.verifications.create", func(tw *twiliogo.RestClient) error {
			p := &verify.CreateVerificationParams{}
			p.SetTo("+15558675310").SetChannel("sms").SetLocale("en")
			_, err := tw.VerifyV2.CreateVerification(testService, p)
			return err
		}},
		{"verify.verification_checks.create", func(tw *twiliogo.RestClient) error {
			p := &verify.CreateVerificationCheckParams{}
			p.SetTo("+15558675310").SetCode("123456")
			_, err := tw.VerifyV2.CreateVerificationCheck(testService, p)
			return err
		}},
		{"", func(tw *twiliogo.RestClient) error {
			p := &messaging.ListServiceParams{}
			p.SetPageSize(20).SetLimit(20)
			_, err := tw.MessagingV1.ListService(p)
			return err
		}},
		{"", func(tw *twiliogo.RestClient) error {
			p := &api.CreateIncomingPhoneNumberParams{}
			p.SetPhoneNumber("+15005550006").SetFriendlyName("agent line")
			_, err := tw.Api.CreateIncomingPhoneNumber(p)
			return err
		}},
	}
	hosts := Vendor{}.Hosts()
	for _, tt := range tests {
		for _, where := range [][2]string{{"", ""}, {"dublin", "ie1"}, {"tokyo", ""}, {"", "au1"}} {
			name := tt.op + " " + where[0] + "." + where[1]
			t.Run(name, func(t *testing.T) {
				rec := &classifying{}
				tw := restClient(&http.Client{Transport: rec})
				tw.SetEdge(where[0])
				tw.SetRegion(where[1])
				_ = tt.call(tw) // the fake's empty answers may not decode
				if len(rec.calls) == 0 {
					t.Fatal("no request reached the transport")
				}
				for i, err := range rec.errs {
					if err != nil {
						t.Fatalf("Classify refused what twilio-go sends: %v", err)
					}
					if got := rec.calls[i].Operation; got != tt.op {
						t.Errorf("Operation %q, want %q", got, tt.op)
					}
					if !slices.Contains(hosts, rec.hosts[i]) {
						t.Errorf("twilio-go sent to %s, which Hosts does not list", rec.hosts[i])
					}
				}
			})
		}
	}
}

// TestHostsCoverTwilioGo builds every host twilio-go builds for the
// accepted products from the documented edges and regions, as
// client.RequestHandler.BuildUrl does, and checks Hosts holds exactly
// those.
func TestHostsCoverTwilioGo(t *testing.T) {
	built := map[string]bool{}
	for _, product := range []string{APIHost, MessagingHost, VerifyHost} {
		for _, edge := range append([]string{""}, edges...) {
			for _, region := range append([]string{""}, regions...) {
				h := &client.RequestHandler{Edge: edge, Region: region}
				u, err := h.BuildUrl("https://" + product + "/x")
				if err != nil {
					t.Fatal(err)
				}
				p, err := url.Parse(u)
				if err != nil {
					t.Fatal(err)
				}
				built[p.Host] = true
			}
		}
	}
	hosts := Vendor{}.Hosts()
	if len(built) != len(hosts) {
		t.Errorf("twilio-go builds %d hosts, Hosts lists %d", len(built), len(hosts))
	}
	for _, h := range hosts {
		if !built[h] {
			t.Errorf("Hosts lists %s, which twilio-go never builds", h)
		}
	}
	for h := range built {
		if !slices.Contains(hosts, h) {
			t.Errorf("twilio-go builds %s, which Hosts does not list", h)
		}
	}
}
