package stripe

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

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/vendors"
)

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
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return buf.String()
}

const details = `{"decision": "capped", "rule": "agents.refund-bot.stripe.daily_cap", "amount": 5000}`

func TestDenyThroughStripeGo(t *testing.T) {
	for _, status := range []int{401, 402, 403, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			d := &denyingTransport{refusal: vendors.Refusal{
				Status: status, Code: "keybrake_capped", Message: "over the daily cap",
				RequestID: "kb_req_1", Details: []byte(details),
			}}
			sc := client.New("sk_test_x", Backends(&http.Client{Transport: d}))
			_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1")})
			checkStripeError(t, err, status, "kb_req_1")
			if len(d.seen) != 1 {
				t.Fatalf("stripe-go made %d attempts %v, want exactly 1", len(d.seen), d.seen)
			}
			if d.seen[0] != "POST api.stripe.com/v1/refunds" {
				t.Errorf("attempt %q", d.seen[0])
			}
			got, ok := Vendor{}.RefusalDetails(err)
			if !ok || string(got) != compact(t, []byte(details)) {
				t.Errorf("RefusalDetails = %s, %v; want %s", got, ok, details)
			}
			// Through the caller's own wrapping too.
			if got, ok := (Vendor{}).RefusalDetails(fmt.Errorf("refund bot: %w", err)); !ok || len(got) == 0 {
				t.Errorf("RefusalDetails lost a wrapped error")
			}
		})
	}
}

func checkStripeError(t *testing.T, err error, status int, requestID string) *stripego.Error {
	t.Helper()
	var se *stripego.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %T %v, want *stripe.Error", err, err)
	}
	if se.HTTPStatusCode != status {
		t.Errorf("HTTPStatusCode = %d, want %d", se.HTTPStatusCode, status)
	}
	if se.Code != "keybrake_capped" || se.Msg != "over the daily cap" {
		t.Errorf("Code, Msg = %q, %q", se.Code, se.Msg)
	}
	if se.Type != stripego.ErrorTypeInvalidRequest {
		t.Errorf("Type = %q", se.Type)
	}
	if se.RequestID != requestID {
		t.Errorf("RequestID = %q, want %q", se.RequestID, requestID)
	}
	var ire *stripego.InvalidRequestError
	if !errors.As(err, &ire) {
		t.Errorf("Err = %T, want *stripe.InvalidRequestError", se.Err)
	}
	return se
}

func TestDenyThroughStripeGoConnect(t *testing.T) {
	tests := []struct {
		name string
		call func(sc *client.API) error
		want string
	}{
		{"oauth token", func(sc *client.API) error {
			_, err := sc.OAuth.New(&stripego.OAuthTokenParams{
				GrantType: stripego.String("authorization_code"), Code: stripego.String("ac_1")})
			return err
		}, "POST connect.stripe.com/oauth/token"},
		{"oauth deauthorize", func(sc *client.API) error {
			_, err := sc.OAuth.Del(&stripego.DeauthorizeParams{
				ClientID: stripego.String("ca_1"), StripeUserID: stripego.String("acct_1")})
			return err
		}, "POST connect.stripe.com/oauth/deauthorize"},
	}
	for _, tt := range tests {
		for _, status := range []int{401, 402, 403, 503} {
			t.Run(fmt.Sprint(tt.name, " ", status), func(t *testing.T) {
				d := &denyingTransport{refusal: vendors.Refusal{
					Status: status, Code: "keybrake_capped", Message: "over the daily cap",
					RequestID: "kb_req_2", Details: []byte(details),
				}}
				sc := client.New("sk_test_x", Backends(&http.Client{Transport: d}))
				err := tt.call(sc)
				se := checkStripeError(t, err, status, "kb_req_2")
				if se.OAuthError != "keybrake_capped" || se.OAuthErrorDescription != "over the daily cap" {
					t.Errorf("OAuth error = %q, %q", se.OAuthError, se.OAuthErrorDescription)
				}
				if len(d.seen) != 1 || d.seen[0] != tt.want {
					t.Fatalf("attempts %v, want exactly [%s]", d.seen, tt.want)
				}
				got, ok := Vendor{}.RefusalDetails(err)
				if !ok || string(got) != compact(t, []byte(details)) {
					t.Errorf("RefusalDetails = %s, %v", got, ok)
				}
			})
		}
	}
}

// TestAttemptCounterSeesRetries shows the harness above would notice
// retries: an error body stripe-go cannot parse is retried.
func TestAttemptCounterSeesRetries(t *testing.T) {
	var attempts int
	hc := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		attempts++
		return &http.Response{StatusCode: 503, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("busy")), Request: req}, nil
	})}
	b := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		HTTPClient: hc, MaxNetworkRetries: stripego.Int64(1), LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull}})
	sc := client.New("sk_test_x", &stripego.Backends{API: b})
	_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1")})
	if err == nil || attempts != 2 {
		t.Fatalf("attempts = %d, err = %v; want 2 attempts", attempts, err)
	}
	if _, ok := (Vendor{}).RefusalDetails(err); ok {
		t.Errorf("RefusalDetails found details in %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDenyResponse(t *testing.T) {
	r, _ := http.NewRequest("POST", "https://api.stripe.com/v1/refunds", nil)
	resp := Vendor{}.Deny(r, vendors.Refusal{Status: 402, Code: "keybrake_capped", Message: "m", RequestID: "kb_1", Details: []byte(`{"a":1}`)})
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 402 || resp.Status != "402 Payment Required" || resp.Proto != "HTTP/1.1" || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Errorf("status line %d %q %q", resp.StatusCode, resp.Status, resp.Proto)
	}
	if resp.Request != r {
		t.Errorf("Request not set")
	}
	if resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("ContentLength %d for %d bytes", resp.ContentLength, len(body))
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Stripe-Should-Retry": "false", "Request-Id": "kb_1"} {
		if resp.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	want := `{"error":{"type":"invalid_request_error","code":"keybrake_capped","message":"m","keybrake":{"a":1}}}`
	if string(body) != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}

	// Connect's flat shape.
	r, _ = http.NewRequest("POST", "https://connect.stripe.com/oauth/token", nil)
	body, _ = io.ReadAll(Vendor{}.Deny(r, vendors.Refusal{Status: 403, Code: "keybrake_blocked", Message: "m", Details: []byte(`{"a":1}`)}).Body)
	want = `{"error":"keybrake_blocked","error_description":"m","type":"invalid_request_error","code":"keybrake_blocked","message":"m","keybrake":{"a":1}}`
	if string(body) != want {
		t.Errorf("connect body\n%s\nwant\n%s", body, want)
	}
}

func TestDenyOddRefusals(t *testing.T) {
	tests := []struct {
		name       string
		refusal    vendors.Refusal
		wantStatus int
		details    string // what RefusalDetails returns, "" for none
	}{
		{"status 200 would read as success", vendors.Refusal{Status: 200, Code: "keybrake_x", Details: []byte(`{}`)}, 503, `{}`},
		{"no status", vendors.Refusal{Code: "keybrake_x", Details: []byte(`{"d":1}`)}, 503, `{"d":1}`},
		{"status 600", vendors.Refusal{Status: 600, Code: "keybrake_x", Details: []byte(`[1]`)}, 503, `[1]`},
		{"details not JSON", vendors.Refusal{Status: 403, Code: "keybrake_x", Details: []byte(`not "json"`)}, 403, `"not \"json\""`},
		{"no details", vendors.Refusal{Status: 403, Code: "keybrake_x"}, 403, ""},
		{"no request id", vendors.Refusal{Status: 401, Code: "keybrake_revoked", Details: []byte(`{}`)}, 401, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &denyingTransport{refusal: tt.refusal}
			sc := client.New("sk_test_x", Backends(&http.Client{Transport: d}))
			_, err := sc.Charges.Get("ch_1", nil)
			var se *stripego.Error
			if !errors.As(err, &se) || se.HTTPStatusCode != tt.wantStatus {
				t.Fatalf("err = %v, want *stripe.Error %d", err, tt.wantStatus)
			}
			if len(d.seen) != 1 {
				t.Fatalf("%d attempts", len(d.seen))
			}
			got, ok := Vendor{}.RefusalDetails(err)
			if tt.details == "" {
				if ok {
					t.Errorf("RefusalDetails = %s, want none", got)
				}
				return
			}
			if !ok || string(got) != tt.details {
				t.Errorf("RefusalDetails = %s, %v; want %s", got, ok, tt.details)
			}
		})
	}
}

func TestRefusalDetailsOtherErrors(t *testing.T) {
	withBody := func(raw string) *stripego.Error {
		e := &stripego.Error{}
		e.SetLastResponse(&stripego.APIResponse{RawJSON: []byte(raw)})
		return e
	}
	tests := []struct {
		name string
		err  error
	}{
		{"nil", nil},
		{"plain", errors.New("keybrake")},
		{"stripe error without response", &stripego.Error{Code: "keybrake_capped"}},
		{"stripe's own error", withBody(`{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such charge"}}`)},
		{"keybrake null", withBody(`{"error":{"keybrake":null}}`)},
		{"not JSON", withBody(`<html>`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, ok := (Vendor{}).RefusalDetails(tt.err); ok {
				t.Errorf("RefusalDetails = %s, true", d)
			}
		})
	}
}
