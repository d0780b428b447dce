package twilio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	verify "github.com/twilio/twilio-go/rest/verify/v2"

	"github.com/keybrake/keybrake/vendors"
)

// Test credentials: twilio-go refuses any that are not alphanumeric.
const testToken = "0123456789abcdef0123456789abcdef"

// restClient wires twilio-go as Keybrake's documentation says to.
func restClient(hc *http.Client) *twiliogo.RestClient { return restClientFor(hc, testAccount) }

func restClientFor(hc *http.Client, account string) *twiliogo.RestClient {
	c := &client.Client{Credentials: client.NewCredentials(account, testToken), HTTPClient: hc}
	c.SetAccountSid(account)
	return twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c})
}

// denyingTransport answers every request with Vendor.Deny and counts the
// attempts, as Keybrake's transport does for a refused call.
type denyingTransport struct {
	refusal vendors.Refusal
	mu      sync.Mutex
	seen    []string // "METHOD host/path" of each attempt
}

func (d *denyingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	d.mu.Lock()
	d.seen = append(d.seen, req.Method+" "+req.URL.Host+req.URL.Path)
	d.mu.Unlock()
	return Vendor{}.Deny(req, d.refusal), nil
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	// RefusalDetails re-marshals what twilio-go decoded: compare as JSON
	// values, keys sorted.
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const details = `{"decision":"capped","code":"keybrake_capped","rule":"agents.sms-bot.twilio.daily_cap","status":402,"call_id":42,"agent":"sms-bot"}`

func TestDenyThroughTwilioGo(t *testing.T) {
	for _, status := range []int{401, 402, 403, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			d := &denyingTransport{refusal: vendors.Refusal{
				Status: status, Code: "keybrake_capped", Message: "sms-bot has 0.01 USD left today",
				RequestID: "kb_42", Details: []byte(details),
			}}
			tw := restClient(&http.Client{Transport: d})
			params := &api.CreateMessageParams{}
			params.SetTo("+15558675310").SetFrom("+15005550006").SetBody("Hello")
			_, err := tw.Api.CreateMessage(params)

			var te *client.TwilioRestError
			if !errors.As(err, &te) {
				t.Fatalf("err = %T %v, want *client.TwilioRestError", err, err)
			}
			if te.Status != status || te.Code != codeBase+status {
				t.Errorf("Status %d Code %d, want %d %d", te.Status, te.Code, status, codeBase+status)
			}
			if te.Message != "sms-bot has 0.01 USD left today" || te.MoreInfo != moreInfo {
				t.Errorf("Message %q MoreInfo %q", te.Message, te.MoreInfo)
			}
			if len(d.seen) != 1 {
				t.Fatalf("twilio-go made %d attempts %v, want exactly 1", len(d.seen), d.seen)
			}
			if want := "POST api.twilio.com" + messages; d.seen[0] != want {
				t.Errorf("attempt %q, want %q", d.seen[0], want)
			}
			got, ok := Vendor{}.RefusalDetails(err)
			if !ok || string(got) != compact(t, []byte(details)) {
				t.Errorf("RefusalDetails = %s, %v; want %s", got, ok, details)
			}
			if got, ok := (Vendor{}).RefusalDetails(fmt.Errorf("sms bot: %w", err)); !ok || len(got) == 0 {
				t.Errorf("RefusalDetails lost a wrapped error")
			}
		})
	}
}

func TestDenyThroughTwilioGoOtherProducts(t *testing.T) {
	tests := []struct {
		name string
		call func(tw *twiliogo.RestClient) error
		want string
		v1   bool // a "v1.0" service: twilio-go decodes a *client.RestErrorV1
	}{
		{"calls", func(tw *twiliogo.RestClient) error {
			p := &api.CreateCallParams{}
			p.SetTo("+15558675310").SetFrom("+15005550006").SetUrl("https://example.com/twiml").SetTimeLimit(60)
			_, err := tw.Api.CreateCall(p)
			return err
		}, "POST api.twilio.com" + calls, false},
		{"fetch message", func(tw *twiliogo.RestClient) error {
			_, err := tw.Api.FetchMessage(testMessage, nil)
			return err
		}, "GET api.twilio.com" + messageURI, false},
		{"verify", func(tw *twiliogo.RestClient) error {
			p := &verify.CreateVerificationParams{}
			p.SetTo("+15558675310").SetChannel("sms")
			_, err := tw.VerifyV2.CreateVerification(testService, p)
			return err
		}, "POST verify.twilio.com/v2/Services/" + testService + "/Verifications", false},
		{"edge and region", func(tw *twiliogo.RestClient) error {
			tw.SetEdge("sydney")
			tw.SetRegion("au1")
			_, err := tw.Api.FetchMessage(testMessage, nil)
			return err
		}, "GET api.sydney.au1.twilio.com" + messageURI, false},
		// A product Keybrake does not read, whose calls the transport
		// refuses by host: the refusal must still take one attempt.
		{"voice v3 (v1.0 errors)", func(tw *twiliogo.RestClient) error {
			_, err := tw.VoiceV3.FetchTranscription("op_1")
			return err
		}, "GET voice.twilio.com/v3/Transcriptions/op_1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &denyingTransport{refusal: vendors.Refusal{
				Status: 403, Code: "keybrake_not_allowed", Message: "no allow rule",
				RequestID: "kb_7", Details: []byte(details),
			}}
			err := tt.call(restClient(&http.Client{Transport: d}))
			if len(d.seen) != 1 || d.seen[0] != tt.want {
				t.Fatalf("attempts %v, want exactly [%s]", d.seen, tt.want)
			}
			if tt.v1 {
				var v1 *client.RestErrorV1
				if !errors.As(err, &v1) || v1.HttpStatusCode != 403 || v1.Code != CodeBlocked {
					t.Fatalf("err = %T %v, want *client.RestErrorV1 403", err, err)
				}
			} else {
				var te *client.TwilioRestError
				if !errors.As(err, &te) || te.Status != 403 || te.Code != CodeBlocked {
					t.Fatalf("err = %T %v, want *client.TwilioRestError 403", err, err)
				}
			}
			got, ok := Vendor{}.RefusalDetails(err)
			if !ok || string(got) != compact(t, []byte(details)) {
				t.Errorf("RefusalDetails = %s, %v", got, ok)
			}
		})
	}
}

// TestAttemptCounterSeesRetries shows the harness above would notice a
// second attempt: a v1.0 service resends a request whose error body is
// not JSON.
func TestAttemptCounterSeesRetries(t *testing.T) {
	var attempts int
	hc := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		attempts++
		return &http.Response{StatusCode: 503, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("busy")), Request: req}, nil
	})}
	_, err := restClient(hc).VoiceV3.FetchTranscription("op_1")
	if err == nil || attempts != 2 {
		t.Fatalf("attempts = %d, err = %v; want 2 attempts and an error", attempts, err)
	}
	if _, ok := (Vendor{}).RefusalDetails(err); ok {
		t.Fatal("RefusalDetails found details in a plain error")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDenyResponse(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://api.twilio.com"+messages, strings.NewReader("To=%2B1"))
	tests := []struct {
		name    string
		r       vendors.Refusal
		status  int
		details string // the JSON of details.keybrake; "" for none
		message string
	}{
		{"capped", vendors.Refusal{Status: 402, Code: "keybrake_capped", Message: "over", RequestID: "kb_1", Details: []byte(`{"a":1}`)}, 402, `{"a":1}`, "over"},
		{"status 200 becomes 503", vendors.Refusal{Status: 200, Code: "keybrake_store_error", Message: "x"}, 503, "", "x"},
		{"status 302 becomes 503", vendors.Refusal{Status: 302, Code: "keybrake_store_error", Message: "x"}, 503, "", "x"},
		{"status 0 becomes 503", vendors.Refusal{Code: "keybrake_store_error", Message: "x"}, 503, "", "x"},
		{"details not JSON", vendors.Refusal{Status: 403, Code: "keybrake_blocked", Message: "x", Details: []byte("not json")}, 403, `"not json"`, "x"},
		{"no message", vendors.Refusal{Status: 401, Code: "keybrake_revoked"}, 401, "", "keybrake_revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := Vendor{}.Deny(req, tt.r)
			if resp.StatusCode != tt.status || resp.Request != req || resp.ProtoMajor != 1 {
				t.Fatalf("status %d, request %v", resp.StatusCode, resp.Request)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if id := resp.Header.Get("Twilio-Request-Id"); id != tt.r.RequestID {
				t.Errorf("Twilio-Request-Id %q", id)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.ContentLength != int64(len(b)) {
				t.Errorf("ContentLength %d, body %d bytes", resp.ContentLength, len(b))
			}
			var got struct {
				Code     int                        `json:"code"`
				Message  string                     `json:"message"`
				Status   int                        `json:"status"`
				Details  map[string]json.RawMessage `json:"details"`
				MoreInfo string                     `json:"more_info"`
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if got.Code != codeBase+tt.status || got.Status != tt.status || got.Message != tt.message {
				t.Errorf("body %s", b)
			}
			if string(got.Details["keybrake"]) != tt.details {
				t.Errorf("details.keybrake %s, want %s", got.Details["keybrake"], tt.details)
			}
		})
	}
}

func TestRefusalDetailsOtherErrors(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("plain"),
		&client.TwilioRestError{Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number"},
		&client.TwilioRestError{Status: 402, Details: map[string]any{"other": 1}},
		&client.TwilioRestError{Status: 402, Details: map[string]any{"keybrake": nil}},
		&client.RestErrorV1{HttpStatusCode: 404},
		(*client.TwilioRestError)(nil),
	} {
		if d, ok := (Vendor{}).RefusalDetails(err); ok {
			t.Errorf("RefusalDetails(%v) = %s, true", err, d)
		}
	}
}
