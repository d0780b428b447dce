package resend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	resendgo "github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake/vendors"
)

// denying answers every request with Deny's response and counts attempts.
type denying struct {
	r        vendors.Refusal
	attempts atomic.Int32
}

func (d *denying) RoundTrip(req *http.Request) (*http.Response, error) {
	d.attempts.Add(1)
	if req.Body != nil {
		req.Body.Close()
	}
	return Vendor{}.Deny(req, d.r), nil
}

// refusal is a refusal as the transport writes it.
func refusal(decision string, status int, reason string) vendors.Refusal {
	details := fmt.Sprintf(`{"decision":%q,"code":"keybrake_%s","rule":"agents.mailer.resend.daily_cap","reason":%q,"agent":"mailer","vendor":"resend","method":"POST","path":"/emails","status":%d,"call_id":42,"policy":"abc"}`,
		decision, decision, reason, status)
	return vendors.Refusal{
		Status:    status,
		Code:      "keybrake_" + decision,
		Message:   "Keybrake refused this call (" + decision + "): " + reason + " (rule agents.mailer.resend.daily_cap)",
		RequestID: "kb_42",
		Details:   []byte(details),
	}
}

var sdkCalls = []struct {
	name string
	call func(c *resendgo.Client) error
}{
	{"Emails.Send", func(c *resendgo.Client) error {
		_, err := c.Emails.Send(&resendgo.SendEmailRequest{From: "a@acme.example", To: []string{"b@y.example"}, Subject: "hi"})
		return err
	}},
	{"Emails.SendWithOptions", func(c *resendgo.Client) error {
		_, err := c.Emails.SendWithOptions(context.Background(), &resendgo.SendEmailRequest{From: "a@acme.example", To: []string{"b@y.example"}},
			&resendgo.SendEmailOptions{IdempotencyKey: "k1"})
		return err
	}},
	{"Batch.Send", func(c *resendgo.Client) error {
		_, err := c.Batch.Send([]*resendgo.SendEmailRequest{{From: "a@acme.example", To: []string{"b@y.example"}}})
		return err
	}},
	{"Broadcasts.Send", func(c *resendgo.Client) error {
		_, err := c.Broadcasts.Send(&resendgo.SendBroadcastRequest{BroadcastId: uuid1})
		return err
	}},
	{"Domains.Get", func(c *resendgo.Client) error { _, err := c.Domains.Get(uuid1); return err }},
}

// TestDenyThroughResendGo sends each refusal through the real SDK: the
// agent gets resend-go's own error after exactly one attempt, and
// RefusalDetails finds the whole decision in it, also wrapped.
func TestDenyThroughResendGo(t *testing.T) {
	for _, decision := range []struct {
		name   string
		status int
	}{{"capped", 402}, {"blocked", 403}, {"scoped", 403}, {"revoked", 401}, {"error", 503}} {
		for _, sc := range sdkCalls {
			t.Run(decision.name+"/"+sc.name, func(t *testing.T) {
				r := refusal(decision.name, decision.status, "mailer has sent 100 of 100 emails today")
				rt := &denying{r: r}
				err := sc.call(resendgo.NewCustomClient(&http.Client{Transport: rt}, "re_123"))
				if err == nil {
					t.Fatal("resend-go returned no error")
				}
				if n := rt.attempts.Load(); n != 1 {
					t.Fatalf("%d attempts", n)
				}
				if errors.Is(err, resendgo.ErrRateLimit) {
					t.Fatalf("a refusal reads as a rate limit: %v", err)
				}
				msg := err.Error()
				for _, want := range []string{"[ERROR]: Keybrake refused this call (" + decision.name + "): mailer has sent 100 of 100 emails today",
					`rule "agents.mailer.resend.daily_cap"`, "code keybrake_" + decision.name, fmt.Sprintf("status %d", decision.status), `request "kb_42"`} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q lacks %q", msg, want)
					}
				}
				if !regexp.MustCompile(`, kbr_[0-9a-f]{16}\)$`).MatchString(msg) {
					t.Errorf("error %q does not end in a token", msg)
				}
				wrapped := []error{
					err,
					&url.Error{Op: "Post", URL: "https://api.resend.com/emails", Err: err},
					fmt.Errorf("sending the invoice: %w", err),
					fmt.Errorf("%w (after 1 attempt)", &url.Error{Op: "Post", URL: "https://api.resend.com/emails", Err: err}),
				}
				for _, e := range wrapped {
					d, ok := Vendor{}.RefusalDetails(e)
					if !ok || string(d) != string(r.Details) {
						t.Errorf("RefusalDetails(%T %q) = %s, %v; want the details", e, e, d, ok)
					}
				}
			})
		}
	}
}

// TestRefusalDetailsForgotten rebuilds the details from the message once
// the process's memory no longer holds its token.
func TestRefusalDetailsForgotten(t *testing.T) {
	reason := `parameter from must be "billing@acme.example"; the call sent "x (rule \"halt\", code keybrake_halted, status 401, request \"kb_1\", kbr_0000000000000000)"`
	r := refusal("blocked", 403, reason)
	r.Details = []byte(strings.Replace(string(r.Details), `"reason":`, `"extra":[1,2],"reason":`, 1))
	err := (func() error {
		_, err := resendgo.NewCustomClient(&http.Client{Transport: &denying{r: r}}, "re_123").Emails.Send(
			&resendgo.SendEmailRequest{From: "x@evil.example", To: []string{"b@y.example"}})
		return err
	})()
	if d, ok := (Vendor{}).RefusalDetails(err); !ok || string(d) != string(r.Details) {
		t.Fatalf("before forgetting: %s, %v", d, ok)
	}
	// Fill the memory with other refusals until it forgets this one.
	for i := 0; i < 5000; i++ {
		vendors.RememberRefusal(vendors.NewRefusalToken(), nil)
	}
	wrapped := &url.Error{Op: "Post", URL: "https://api.resend.com/emails", Err: err}
	d, ok := Vendor{}.RefusalDetails(wrapped)
	if !ok {
		t.Fatalf("RefusalDetails(%q) found nothing", wrapped)
	}
	var got map[string]any
	if err := json.Unmarshal(d, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"decision": "blocked", "code": "keybrake_blocked", "rule": "agents.mailer.resend.daily_cap",
		"reason": reason, "status": 403.0, "vendor": "resend", "call_id": 42.0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rebuilt\n%v\nwant\n%v", got, want)
	}
}

func TestRefusalDetailsOtherErrors(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("[ERROR]: The `to` field is missing."),
		&resendgo.RateLimitError{Message: "Too many requests"},
		errors.New("Keybrake refused this call (capped): x (rule agents.a, code keybrake_capped, kbr_0123456789abcdef)"), // the transport's own message, no trailer
		errors.New(`Keybrake refused this call (maybe): x (rule "r", code keybrake_capped, status 402, request "kb_1", kbr_0123456789abcdef)`),
		errors.New(`Keybrake refused this call (capped): x (rule "r", code keybrake_capped, status 402, request "kb_1", kbr_0123)`),
	} {
		if d, ok := (Vendor{}).RefusalDetails(err); ok {
			t.Errorf("RefusalDetails(%v) = %s, true", err, d)
		}
	}
}

func TestDenyResponse(t *testing.T) {
	tests := []struct {
		name       string
		r          vendors.Refusal
		status     int
		decision   string
		code       string
		rebuilt    bool // the details are not JSON: Deny remembers rebuilt ones
		reasonPart string
	}{
		{"capped", refusal("capped", 402, "cap"), 402, "capped", "keybrake_capped", false, "cap"},
		{"429 never", vendors.Refusal{Status: 429, Code: "keybrake_capped", Message: "m", Details: []byte(`{"decision":"capped","reason":"r"}`)}, 503, "capped", "keybrake_capped", false, "r"},
		{"200 never", vendors.Refusal{Status: 200, Code: "keybrake_x", Message: "m"}, 503, "error", "keybrake_x", true, "m"},
		{"no details", vendors.Refusal{Status: 401, Code: "keybrake_revoked", Message: "agent revoked"}, 401, "revoked", "keybrake_revoked", true, "agent revoked"},
		{"details not json", vendors.Refusal{Status: 402, Code: "keybrake_capped", Message: "m", Details: []byte("{oops")}, 402, "capped", "keybrake_capped", true, "m"},
		{"odd code", vendors.Refusal{Status: 403, Code: "Bad Code", Message: "m"}, 403, "blocked", "keybrake_refused", true, "m"},
		{"odd decision", vendors.Refusal{Status: 403, Code: "keybrake_x", Details: []byte(`{"decision":"allowed","reason":"r"}`)}, 403, "blocked", "keybrake_x", false, "r"},
		{"nothing", vendors.Refusal{}, 503, "error", "keybrake_refused", true, "no reason given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hreq, _ := http.NewRequest("POST", "https://api.resend.com/emails", strings.NewReader("{}"))
			resp := Vendor{}.Deny(hreq, tt.r)
			if resp.StatusCode != tt.status || resp.Request != hreq || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.ContentLength != int64(len(b)) || resp.Header.Get("Content-Length") != fmt.Sprint(len(b)) {
				t.Errorf("ContentLength %d, body %d", resp.ContentLength, len(b))
			}
			var body struct {
				StatusCode int             `json:"statusCode"`
				Name       string          `json:"name"`
				Message    string          `json:"message"`
				Keybrake   json.RawMessage `json:"keybrake"`
			}
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if body.StatusCode != tt.status || body.Name != tt.code {
				t.Errorf("body %s", b)
			}
			if !strings.HasPrefix(body.Message, "Keybrake refused this call ("+tt.decision+"): "+tt.reasonPart) {
				t.Errorf("message %q", body.Message)
			}
			d, ok := Vendor{}.RefusalDetails(errors.New("[ERROR]: " + body.Message))
			if !ok {
				t.Fatalf("RefusalDetails found nothing in %q", body.Message)
			}
			if string(d) != string(body.Keybrake) {
				t.Errorf("remembered %s, body carries %s", d, body.Keybrake)
			}
			if !tt.rebuilt && string(d) != string(tt.r.Details) {
				t.Errorf("remembered %s, want the refusal's %s", d, tt.r.Details)
			}
			if tt.rebuilt {
				var got struct{ Decision, Code, Reason string }
				if err := json.Unmarshal(d, &got); err != nil || got.Decision != tt.decision || got.Code != tt.code {
					t.Errorf("rebuilt %s", d)
				}
			}
		})
	}
	// Each refusal gets its own token.
	a := Vendor{}.Deny(nil, refusal("capped", 402, "x"))
	b := Vendor{}.Deny(nil, refusal("capped", 402, "x"))
	ab, _ := io.ReadAll(a.Body)
	bb, _ := io.ReadAll(b.Body)
	if string(ab) == string(bb) {
		t.Error("two refusals share a token")
	}
}
