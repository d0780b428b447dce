package resend

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	resendgo "github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake/vendors"
)

// classifying hands every request resend-go sends to Classify, as
// Keybrake's transport does, records the result, and answers 200 {}.
type classifying struct {
	mu    sync.Mutex
	hosts []string
	calls []*vendors.Call
	errs  []error
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
	c.hosts = append(c.hosts, req.URL.Host)
	c.calls = append(c.calls, call)
	c.errs = append(c.errs, err)
	c.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
}

// TestClassifyAcceptsResendGo checks that the strict reading refuses none
// of what resend-go v2.28 sends, and names each call.
func TestClassifyAcceptsResendGo(t *testing.T) {
	ctx := context.Background()
	email := func() *resendgo.SendEmailRequest {
		return &resendgo.SendEmailRequest{
			From:        "Acme <billing@acme.example>",
			To:          []string{"a@x.example", "b@y.example"},
			Cc:          []string{"c@z.example"},
			Bcc:         []string{"d@z.example"},
			ReplyTo:     "support@acme.example",
			Subject:     "Your invoice <#42> & more",
			Html:        "<p>Hello & welcome</p>",
			Text:        "Hello",
			Tags:        []resendgo.Tag{{Name: "category", Value: "invoice"}},
			Attachments: []*resendgo.Attachment{{Content: []byte("hi\x00\xff"), Filename: "a.txt", ContentType: "text/plain"}, {Path: "https://acme.example/i.pdf", Filename: "i.pdf", ContentId: "logo"}},
			Headers:     map[string]string{"X-Entity-Ref-ID": "42"},
			ScheduledAt: "in 1 min",
		}
	}
	tests := []struct {
		op         string
		moves      bool
		recipients int64
		call       func(c *resendgo.Client) error
	}{
		{"emails.send", true, 4, func(c *resendgo.Client) error { _, err := c.Emails.Send(email()); return err }},
		{"emails.send", true, 4, func(c *resendgo.Client) error {
			_, err := c.Emails.SendWithOptions(ctx, email(), &resendgo.SendEmailOptions{IdempotencyKey: "welcome/42"})
			return err
		}},
		{"emails.send", true, 1, func(c *resendgo.Client) error {
			_, err := c.Emails.Send(&resendgo.SendEmailRequest{From: "a@acme.example", To: []string{"b@y.example"}, Subject: "hi", Text: "x"})
			return err
		}},
		{"emails.batch", true, 8, func(c *resendgo.Client) error {
			_, err := c.Batch.Send([]*resendgo.SendEmailRequest{email(), email()})
			return err
		}},
		{"emails.batch", true, 4, func(c *resendgo.Client) error {
			_, err := c.Batch.SendWithOptions(ctx, []*resendgo.SendEmailRequest{email()},
				&resendgo.BatchSendEmailOptions{IdempotencyKey: "batch/1", BatchValidation: resendgo.BatchValidationPermissive})
			return err
		}},
		{"emails.get", false, 0, func(c *resendgo.Client) error { _, err := c.Emails.Get(uuid1); return err }},
		{"emails.list", false, 0, func(c *resendgo.Client) error { _, err := c.Emails.List(); return err }},
		{"emails.list", false, 0, func(c *resendgo.Client) error {
			limit, after := 10, uuid1
			_, err := c.Emails.ListWithOptions(ctx, &resendgo.ListOptions{Limit: &limit, After: &after})
			return err
		}},
		{"emails.cancel", false, 0, func(c *resendgo.Client) error { _, err := c.Emails.Cancel(uuid1); return err }},
		{"emails.update", false, 0, func(c *resendgo.Client) error {
			_, err := c.Emails.Update(&resendgo.UpdateEmailRequest{Id: uuid1, ScheduledAt: "2030-01-01T00:00:00Z"})
			return err
		}},
		{"broadcasts.create", false, 0, func(c *resendgo.Client) error {
			_, err := c.Broadcasts.Create(&resendgo.CreateBroadcastRequest{AudienceId: uuid1, From: "a@acme.example", Subject: "s", Html: "<p>x</p>", Name: "n"})
			return err
		}},
		{"broadcasts.update", false, 0, func(c *resendgo.Client) error {
			_, err := c.Broadcasts.Update(&resendgo.UpdateBroadcastRequest{BroadcastId: uuid1, Subject: "t"})
			return err
		}},
		{"broadcasts.send", true, 0, func(c *resendgo.Client) error {
			_, err := c.Broadcasts.Send(&resendgo.SendBroadcastRequest{BroadcastId: uuid1})
			return err
		}},
		{"broadcasts.send", true, 0, func(c *resendgo.Client) error {
			_, err := c.Broadcasts.Send(&resendgo.SendBroadcastRequest{BroadcastId: uuid1, ScheduledAt: "in 1 hour"})
			return err
		}},
		{"broadcasts.get", false, 0, func(c *resendgo.Client) error { _, err := c.Broadcasts.Get(uuid1); return err }},
		{"broadcasts.list", false, 0, func(c *resendgo.Client) error { _, err := c.Broadcasts.List(); return err }},
		{"broadcasts.remove", false, 0, func(c *resendgo.Client) error { _, err := c.Broadcasts.Remove(uuid1); return err }},
		{"domains.create", false, 0, func(c *resendgo.Client) error {
			_, err := c.Domains.Create(&resendgo.CreateDomainRequest{Name: "acme.example", Region: "eu-west-1"})
			return err
		}},
		{"domains.update", false, 0, func(c *resendgo.Client) error {
			_, err := c.Domains.Update(uuid1, &resendgo.UpdateDomainRequest{OpenTracking: true, Tls: resendgo.Enforced})
			return err
		}},
		{"domains.verify", false, 0, func(c *resendgo.Client) error { _, err := c.Domains.Verify(uuid1); return err }},
		{"domains.list", false, 0, func(c *resendgo.Client) error { _, err := c.Domains.List(); return err }},
		{"domains.get", false, 0, func(c *resendgo.Client) error { _, err := c.Domains.Get(uuid1); return err }},
		{"domains.remove", false, 0, func(c *resendgo.Client) error { _, err := c.Domains.Remove(uuid1); return err }},
		{"api_keys.create", false, 0, func(c *resendgo.Client) error {
			_, err := c.ApiKeys.Create(&resendgo.CreateApiKeyRequest{Name: "k", Permission: "sending_access", DomainId: uuid1})
			return err
		}},
		{"api_keys.list", false, 0, func(c *resendgo.Client) error { _, err := c.ApiKeys.List(); return err }},
		{"api_keys.remove", false, 0, func(c *resendgo.Client) error { _, err := c.ApiKeys.Remove(uuid1); return err }},
		{"audiences.create", false, 0, func(c *resendgo.Client) error {
			_, err := c.Audiences.Create(&resendgo.CreateAudienceRequest{Name: "a"})
			return err
		}},
		{"audiences.list", false, 0, func(c *resendgo.Client) error { _, err := c.Audiences.List(); return err }},
		{"audiences.get", false, 0, func(c *resendgo.Client) error { _, err := c.Audiences.Get(uuid1); return err }},
		{"audiences.remove", false, 0, func(c *resendgo.Client) error { _, err := c.Audiences.Remove(uuid1); return err }},
		{"audiences.contacts.create", false, 0, func(c *resendgo.Client) error {
			_, err := c.Contacts.Create(&resendgo.CreateContactRequest{AudienceId: uuid1, Email: "ann@x.example", FirstName: "Ann", Unsubscribed: true})
			return err
		}},
		{"audiences.contacts.list", false, 0, func(c *resendgo.Client) error { _, err := c.Contacts.List(uuid1); return err }},
		{"audiences.contacts.get", false, 0, func(c *resendgo.Client) error { _, err := c.Contacts.Get(uuid1, uuid2); return err }},
		{"audiences.contacts.remove", false, 0, func(c *resendgo.Client) error { _, err := c.Contacts.Remove(uuid1, uuid2); return err }},
		{"audiences.contacts.update", false, 0, func(c *resendgo.Client) error {
			p := &resendgo.UpdateContactRequest{AudienceId: uuid1, Id: uuid2, FirstName: "Ann"}
			p.SetUnsubscribed(false)
			_, err := c.Contacts.Update(p)
			return err
		}},
		{"webhooks.create", false, 0, func(c *resendgo.Client) error {
			_, err := c.Webhooks.Create(&resendgo.CreateWebhookRequest{Endpoint: "https://acme.example/hook", Events: []string{"email.sent"}})
			return err
		}},
		{"webhooks.get", false, 0, func(c *resendgo.Client) error { _, err := c.Webhooks.Get(uuid1); return err }},
		{"webhooks.update", false, 0, func(c *resendgo.Client) error {
			s := "disabled"
			_, err := c.Webhooks.Update(uuid1, &resendgo.UpdateWebhookRequest{Status: &s})
			return err
		}},
		{"webhooks.list", false, 0, func(c *resendgo.Client) error { _, err := c.Webhooks.List(); return err }},
		{"webhooks.remove", false, 0, func(c *resendgo.Client) error { _, err := c.Webhooks.Remove(uuid1); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			rt := &classifying{}
			client := resendgo.NewCustomClient(&http.Client{Transport: rt}, "re_123")
			if err := tt.call(client); err != nil {
				t.Fatalf("resend-go: %v", err)
			}
			if len(rt.calls) != 1 {
				t.Fatalf("resend-go made %d requests", len(rt.calls))
			}
			if rt.hosts[0] != APIHost {
				t.Errorf("host %q, want %s", rt.hosts[0], APIHost)
			}
			c, err := rt.calls[0], rt.errs[0]
			if err != nil {
				t.Fatalf("Classify refused what resend-go sends: %v", err)
			}
			if c.Operation != tt.op || c.MovesMoney != tt.moves {
				t.Fatalf("Operation %q MovesMoney %v, want %q %v", c.Operation, c.MovesMoney, tt.op, tt.moves)
			}
			if tt.moves && c.Priced.Item == "email" && c.Priced.Recipients != tt.recipients {
				t.Errorf("Recipients %d, want %d", c.Priced.Recipients, tt.recipients)
			}
			if tt.moves && c.Priced.Item == "email" && c.Params.Get("from") == "" {
				t.Errorf("no from in Params %v", c.Params)
			}
		})
	}
}
