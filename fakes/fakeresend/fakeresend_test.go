package fakeresend_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake/fakes/fakeresend"
)

// newFake starts a fake and a resend-go client on it.
func newFake(t *testing.T) (*fakeresend.Server, *resend.Client, string) {
	t.Helper()
	fr, base := fakeresend.Start(t)
	return fr, newClient(t, base, fakeresend.DefaultAPIKey, 10*time.Second), base
}

func newClient(t *testing.T, base, key string, timeout time.Duration) *resend.Client {
	t.Helper()
	// A bound on every call, so that a fault that strikes more often than
	// it should fails the test instead of hanging it.
	rc := resend.NewCustomClient(&http.Client{Timeout: timeout}, key)
	u, err := url.Parse(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	rc.BaseURL = u
	return rc
}

func email(to ...string) *resend.SendEmailRequest {
	return &resend.SendEmailRequest{
		From:    "Keybrake <agent@keybrake.dev>",
		To:      to,
		Subject: "Your receipt",
		Html:    "<p>Thanks</p>",
	}
}

// lastStatus returns the status of the last request the fake answered.
func lastStatus(t *testing.T, fr *fakeresend.Server) int {
	t.Helper()
	log := fr.Log()
	if len(log) == 0 {
		t.Fatal("no request")
	}
	return log[len(log)-1].Status
}

func TestSendEmail(t *testing.T) {
	fr, rc, _ := newFake(t)
	req := email("ada@example.com", "Grace <grace@example.org>")
	req.Cc = []string{"cc@example.com"}
	req.Bcc = []string{"audit@example.com", "audit2@example.com"}
	req.ReplyTo = "support@keybrake.dev"
	req.Text = "Thanks"
	req.Tags = []resend.Tag{{Name: "kind", Value: "receipt"}}
	req.Headers = map[string]string{"X-Entity-Ref-ID": "123"}
	req.Attachments = []*resend.Attachment{{Filename: "r.txt", Content: []byte("receipt")}, {Path: "https://example.com/r.pdf"}}
	sent, err := rc.Emails.Send(req)
	if err != nil {
		t.Fatal(err)
	}
	if sent.Id != "00000000-0000-4000-8000-000000000001" {
		t.Fatalf("id %q", sent.Id)
	}
	if fr.Sent() != 1 || fr.Recipients() != 5 {
		t.Fatalf("sent %d recipients %d", fr.Sent(), fr.Recipients())
	}
	es := fr.Emails()
	if len(es) != 1 || es[0].ID != sent.Id || es[0].From != req.From || len(es[0].To) != 2 || es[0].To[1] != "Grace <grace@example.org>" ||
		len(es[0].Bcc) != 2 || es[0].Attachments != 2 || es[0].Batch || es[0].ReplyTo[0] != "support@keybrake.dev" {
		t.Fatalf("emails %+v", es)
	}

	got, err := rc.Emails.Get(sent.Id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Object != "email" || got.Id != sent.Id || got.From != req.From || len(got.To) != 2 || got.Subject != req.Subject ||
		got.Html != req.Html || got.Text != "Thanks" || len(got.Cc) != 1 || len(got.Bcc) != 2 || len(got.ReplyTo) != 1 || got.LastEvent != "sent" {
		t.Fatalf("got %+v", got)
	}
	if _, err := time.Parse(time.RFC3339Nano, got.CreatedAt); err != nil {
		t.Fatalf("created_at %q: %v", got.CreatedAt, err)
	}
	if second, err := rc.Emails.Send(email("x@example.com")); err != nil || second.Id != "00000000-0000-4000-8000-000000000002" {
		t.Fatalf("%+v %v", second, err)
	}
}

func TestEmailValidation(t *testing.T) {
	tooMany := make([]string, 51)
	for i := range tooMany {
		tooMany[i] = "r" + itoa(i) + "@example.com"
	}
	with := func(f func(*resend.SendEmailRequest)) *resend.SendEmailRequest {
		r := email("ada@example.com")
		f(r)
		return r
	}
	tests := []struct {
		name    string
		req     *resend.SendEmailRequest
		message string // part of the error resend-go returns
	}{
		{"no from", with(func(r *resend.SendEmailRequest) { r.From = "" }), "Missing `from` field."},
		{"bad from", with(func(r *resend.SendEmailRequest) { r.From = "Keybrake" }), "Invalid `from` field."},
		{"from without a dot", with(func(r *resend.SendEmailRequest) { r.From = "a@localhost" }), "Invalid `from` field."},
		{"two from", with(func(r *resend.SendEmailRequest) { r.From = "a@example.com, b@example.com" }), "Invalid `from` field."},
		{"no to", with(func(r *resend.SendEmailRequest) { r.To = nil }), "Missing `to` field."},
		{"empty to", with(func(r *resend.SendEmailRequest) { r.To = []string{} }), "Missing `to` field."},
		{"51 to", with(func(r *resend.SendEmailRequest) { r.To = tooMany }), "at most 50"},
		{"bad to", with(func(r *resend.SendEmailRequest) { r.To = []string{"ada@example.com", "nobody"} }), "Invalid `to` field."},
		{"51 bcc", with(func(r *resend.SendEmailRequest) { r.Bcc = tooMany }), "Invalid `bcc` field"},
		{"bad cc", with(func(r *resend.SendEmailRequest) { r.Cc = []string{"a b@example.com"} }), "Invalid `cc` field."},
		{"bad reply_to", with(func(r *resend.SendEmailRequest) { r.ReplyTo = "@example.com" }), "Invalid `reply_to` field."},
		{"no subject", with(func(r *resend.SendEmailRequest) { r.Subject = "" }), "Missing `subject` field."},
		{"no body", with(func(r *resend.SendEmailRequest) { r.Html = "" }), "Missing `html` or `text` field."},
		{"empty attachment", with(func(r *resend.SendEmailRequest) { r.Attachments = []*resend.Attachment{{Filename: "x"}} }), "either a `content` or `path`"},
		{"bad tag", with(func(r *resend.SendEmailRequest) { r.Tags = []resend.Tag{{Name: "a b", Value: "c"}} }), "Invalid `tags` field"},
		{"scheduled", with(func(r *resend.SendEmailRequest) { r.ScheduledAt = "in 1 hour" }), "scheduled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr, rc, _ := newFake(t)
			_, err := rc.Emails.Send(tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.message) || !strings.HasPrefix(err.Error(), "[ERROR]: ") {
				t.Fatalf("got %v, want an error with %q", err, tt.message)
			}
			if s := lastStatus(t, fr); s != http.StatusUnprocessableEntity {
				t.Fatalf("status %d", s)
			}
			if fr.Sent() != 0 || fr.Recipients() != 0 {
				t.Fatalf("a refused email was sent: %+v", fr.Emails())
			}
		})
	}
	// The list above really holds 51 distinct valid addresses.
	fr, rc, _ := newFake(t)
	if _, err := rc.Emails.Send(email(tooMany[:50]...)); err != nil || fr.Recipients() != 50 {
		t.Fatalf("50 recipients: %v, %d", err, fr.Recipients())
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func batch(n int) []*resend.SendEmailRequest {
	out := make([]*resend.SendEmailRequest, n)
	for i := range out {
		out[i] = email("user"+itoa(i)+"@example.com", "copy@example.com")
	}
	return out
}

func TestBatchStrict(t *testing.T) {
	fr, rc, _ := newFake(t)
	res, err := rc.Batch.Send(batch(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 3 || res.Errors != nil || res.Data[2].Id != "00000000-0000-4000-8000-000000000003" {
		t.Fatalf("got %+v", res)
	}
	if fr.Sent() != 3 || fr.Recipients() != 6 {
		t.Fatalf("sent %d recipients %d", fr.Sent(), fr.Recipients())
	}
	for _, e := range fr.Emails() {
		if !e.Batch {
			t.Fatalf("email %+v not marked as batch", e)
		}
	}

	bad := batch(3)
	bad[1].Subject = ""
	_, err = rc.Batch.SendWithOptions(context.Background(), bad, &resend.BatchSendEmailOptions{BatchValidation: resend.BatchValidationStrict})
	if err == nil || !strings.Contains(err.Error(), "emails[1]: Missing `subject` field.") {
		t.Fatalf("got %v", err)
	}
	if fr.Sent() != 3 {
		t.Fatalf("a refused batch sent %d", fr.Sent()-3)
	}
	if log := fr.Log(); log[len(log)-1].BatchValidation != "strict" {
		t.Fatalf("log %+v", log[len(log)-1])
	}
}

func TestBatchPermissive(t *testing.T) {
	fr, rc, base := newFake(t)
	b := batch(4)
	b[1].To = []string{"not an address"}
	b[3].From = ""
	res, err := rc.Batch.SendWithOptions(context.Background(), b, &resend.BatchSendEmailOptions{BatchValidation: resend.BatchValidationPermissive})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2 || len(res.Errors) != 2 || res.Errors[0].Index != 1 || res.Errors[1].Index != 3 ||
		!strings.Contains(res.Errors[1].Message, "Missing `from` field.") {
		t.Fatalf("got %+v", res)
	}
	es := fr.Emails()
	if fr.Sent() != 2 || len(es) != 2 || es[0].To[0] != "user0@example.com" || es[1].To[0] != "user2@example.com" ||
		es[1].ID != res.Data[1].Id {
		t.Fatalf("emails %+v", es)
	}

	// All valid: errors is there, and empty.
	_, body := raw(t, base, "POST", "/emails/batch", `[{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t"}]`,
		map[string]string{"X-Batch-Validation": "permissive"})
	if errs, ok := body["errors"].([]any); !ok || len(errs) != 0 {
		t.Fatalf("got %v", body)
	}
	// All invalid: nothing sent, every error reported.
	res, err = rc.Batch.SendWithOptions(context.Background(), []*resend.SendEmailRequest{{}, {}}, &resend.BatchSendEmailOptions{BatchValidation: resend.BatchValidationPermissive})
	if err != nil || len(res.Data) != 0 || len(res.Errors) != 2 {
		t.Fatalf("got %+v %v", res, err)
	}
	if fr.Sent() != 3 {
		t.Fatalf("sent %d", fr.Sent())
	}
}

func TestBatchLimits(t *testing.T) {
	fr, rc, base := newFake(t)
	for _, n := range []int{0, 101} {
		if _, err := rc.Batch.Send(batch(n)); err == nil || !strings.Contains(err.Error(), "1 to 100 emails") {
			t.Fatalf("%d emails: %v", n, err)
		}
	}
	if fr.Sent() != 0 {
		t.Fatalf("sent %d", fr.Sent())
	}
	res, err := rc.Batch.Send(batch(100))
	if err != nil || len(res.Data) != 100 || fr.Sent() != 100 || fr.Recipients() != 200 {
		t.Fatalf("100 emails: %v, sent %d", err, fr.Sent())
	}
	withAttachment := batch(1)
	withAttachment[0].Attachments = []*resend.Attachment{{Path: "https://example.com/a.pdf"}}
	if _, err := rc.Batch.Send(withAttachment); err == nil || !strings.Contains(err.Error(), "not supported in batch") {
		t.Fatalf("attachment in a batch: %v", err)
	}
	_, body := raw(t, base, "POST", "/emails/batch", `{"from":"a@example.com"}`, nil)
	if body["name"] != "validation_error" {
		t.Fatalf("an object as a batch: %v", body)
	}
	_, body = raw(t, base, "POST", "/emails/batch", `[]`, map[string]string{"X-Batch-Validation": "lenient"})
	if body["statusCode"] != float64(422) || !strings.Contains(body["message"].(string), "x-batch-validation") {
		t.Fatalf("bad mode: %v", body)
	}
}

func TestIdempotentRetry(t *testing.T) {
	fr, rc, base := newFake(t)
	ctx := context.Background()
	opts := &resend.SendEmailOptions{IdempotencyKey: "welcome/ada"}
	first, err := rc.Emails.SendWithOptions(ctx, email("ada@example.com"), opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := rc.Emails.SendWithOptions(ctx, email("ada@example.com"), opts)
	if err != nil || again.Id != first.Id {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if fr.Sent() != 1 {
		t.Fatalf("a replay sent again: %d", fr.Sent())
	}
	log := fr.Log()
	if len(log) != 2 || log[0].Replayed || !log[1].Replayed || log[1].IdempotencyKey != "welcome/ada" || log[1].Status != 200 {
		t.Fatalf("log %+v", log)
	}

	// The same meaning in another key order and spacing is the same body.
	_, body := raw(t, base, "POST", "/emails", ` {"subject":"Your receipt","html":"<p>Thanks</p>", "to":["ada@example.com"],"from":"Keybrake <agent@keybrake.dev>"}`,
		map[string]string{"Idempotency-Key": "welcome/ada"})
	if body["id"] != first.Id || fr.Sent() != 1 {
		t.Fatalf("reordered body: %v, sent %d", body, fr.Sent())
	}

	_, err = rc.Emails.SendWithOptions(ctx, email("grace@example.com"), opts)
	if err == nil || !strings.Contains(err.Error(), "different request payload") || lastStatus(t, fr) != http.StatusConflict {
		t.Fatalf("another body under the key: %v", err)
	}
	// Keys are per endpoint: the same key on the batch endpoint is new.
	if _, err := rc.Batch.SendWithOptions(ctx, batch(1), &resend.BatchSendEmailOptions{IdempotencyKey: "welcome/ada"}); err != nil {
		t.Fatal(err)
	}
	if fr.Sent() != 2 {
		t.Fatalf("sent %d", fr.Sent())
	}
}

func TestIdempotencyKeepsOnlySuccesses(t *testing.T) {
	fr, rc, _ := newFake(t)
	ctx := context.Background()
	opts := &resend.SendEmailOptions{IdempotencyKey: "k-1"}
	bad := email("ada@example.com")
	bad.Subject = ""
	if _, err := rc.Emails.SendWithOptions(ctx, bad, opts); err == nil {
		t.Fatal("no error")
	}
	if _, err := rc.Emails.SendWithOptions(ctx, email("ada@example.com"), opts); err != nil {
		t.Fatalf("the corrected request under the same key: %v", err)
	}
	if fr.Sent() != 1 || fr.Log()[1].Replayed {
		t.Fatalf("sent %d, log %+v", fr.Sent(), fr.Log())
	}
}

func TestIdempotencyWindow(t *testing.T) {
	fr, rc, _ := newFake(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	fr.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()
	opts := &resend.SendEmailOptions{IdempotencyKey: "daily-digest"}
	first, err := rc.Emails.SendWithOptions(ctx, email("ada@example.com"), opts)
	if err != nil {
		t.Fatal(err)
	}
	advance(fakeresend.IdempotencyWindow - time.Second)
	if again, err := rc.Emails.SendWithOptions(ctx, email("ada@example.com"), opts); err != nil || again.Id != first.Id {
		t.Fatalf("within the window: %+v %v", again, err)
	}
	advance(time.Second)
	later, err := rc.Emails.SendWithOptions(ctx, email("ada@example.com"), opts)
	if err != nil || later.Id == first.Id || fr.Sent() != 2 {
		t.Fatalf("after the window: %+v %v, sent %d", later, err, fr.Sent())
	}
	if got, err := rc.Emails.Get(later.Id); err != nil || got.CreatedAt != "2026-03-02T12:00:00.000000+00:00" {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestBatchIdempotencyIncludesTheMode(t *testing.T) {
	fr, rc, _ := newFake(t)
	ctx := context.Background()
	if _, err := rc.Batch.SendWithOptions(ctx, batch(2), &resend.BatchSendEmailOptions{IdempotencyKey: "b", BatchValidation: resend.BatchValidationStrict}); err != nil {
		t.Fatal(err)
	}
	_, err := rc.Batch.SendWithOptions(ctx, batch(2), &resend.BatchSendEmailOptions{IdempotencyKey: "b", BatchValidation: resend.BatchValidationPermissive})
	if err == nil || lastStatus(t, fr) != http.StatusConflict {
		t.Fatalf("another mode under the key: %v", err)
	}
	res, err := rc.Batch.SendWithOptions(ctx, batch(2), &resend.BatchSendEmailOptions{IdempotencyKey: "b", BatchValidation: resend.BatchValidationStrict})
	if err != nil || len(res.Data) != 2 || res.Data[0].Id != "00000000-0000-4000-8000-000000000001" || fr.Sent() != 2 {
		t.Fatalf("replay: %+v %v, sent %d", res, err, fr.Sent())
	}
}

func TestIdempotencyKeyLength(t *testing.T) {
	fr, _, base := newFake(t)
	body := `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t"}`
	for _, key := range []string{"", strings.Repeat("k", 257)} {
		res, m := raw(t, base, "POST", "/emails", body, map[string]string{"Idempotency-Key": key})
		if res.StatusCode != 400 || m["name"] != "invalid_idempotency_key" {
			t.Fatalf("key of %d: %d %v", len(key), res.StatusCode, m)
		}
	}
	if res, m := raw(t, base, "POST", "/emails", body, map[string]string{"Idempotency-Key": strings.Repeat("é", 256)}); res.StatusCode != 200 {
		t.Fatalf("256 characters: %v", m)
	}
	if fr.Sent() != 1 {
		t.Fatalf("sent %d", fr.Sent())
	}
}

func TestBroadcasts(t *testing.T) {
	fr, rc, base := newFake(t)
	fr.AddBroadcast("559ac32e-9ef5-46fb-82a1-b76b840c0f7b", 1200)
	fr.AddBroadcast("spring-sale", 30)
	res, err := rc.Broadcasts.Send(&resend.SendBroadcastRequest{BroadcastId: "559ac32e-9ef5-46fb-82a1-b76b840c0f7b"})
	if err != nil || res.Id != "559ac32e-9ef5-46fb-82a1-b76b840c0f7b" {
		t.Fatalf("%+v %v", res, err)
	}
	if fr.BroadcastRecipients() != 1200 || fr.Sent() != 0 || fr.Recipients() != 0 {
		t.Fatalf("broadcast recipients %d, sent %d", fr.BroadcastRecipients(), fr.Sent())
	}
	if _, err := rc.Broadcasts.Send(&resend.SendBroadcastRequest{BroadcastId: "559ac32e-9ef5-46fb-82a1-b76b840c0f7b"}); err == nil ||
		!strings.Contains(err.Error(), "already been sent") {
		t.Fatalf("sent twice: %v", err)
	}
	if _, err := rc.Broadcasts.Send(&resend.SendBroadcastRequest{BroadcastId: "nope"}); err == nil || lastStatus(t, fr) != 404 {
		t.Fatalf("unknown broadcast: %v", err)
	}
	if _, err := rc.Broadcasts.Send(&resend.SendBroadcastRequest{BroadcastId: "spring-sale", ScheduledAt: "tomorrow"}); err == nil {
		t.Fatal("a scheduled broadcast was accepted")
	}
	res2, m := raw(t, base, "POST", "/broadcasts/spring-sale/send", `{"broadcast_id":"other"}`, nil)
	if res2.StatusCode != 422 {
		t.Fatalf("mismatched broadcast_id: %v", m)
	}
	if _, err := rc.Broadcasts.Send(&resend.SendBroadcastRequest{BroadcastId: "spring-sale"}); err != nil {
		t.Fatal(err)
	}
	bs := fr.Broadcasts()
	if len(bs) != 2 || !bs[0].Sent || !bs[1].Sent || bs[1].Recipients != 30 || bs[0].SentAt.IsZero() || fr.BroadcastRecipients() != 1230 {
		t.Fatalf("broadcasts %+v", bs)
	}
}

func TestAuthentication(t *testing.T) {
	fr, _, base := newFake(t)
	body := `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t"}`
	tests := []struct {
		name   string
		header string
		status int
		err    string
	}{
		{"none", "", 401, "missing_api_key"},
		{"basic", "Basic cmVfMTIzOg==", 401, "missing_api_key"},
		{"empty bearer", "Bearer ", 401, "missing_api_key"},
		{"not a Resend key", "Bearer sk_test_secret123", 401, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, m := rawAuth(t, base, "POST", "/emails", body, tt.header, nil)
			if res.StatusCode != tt.status || m["name"] != tt.err || strings.Contains(m["message"].(string), "secret123") {
				t.Fatalf("%d %v", res.StatusCode, m)
			}
		})
	}
	fr.SetAPIKeys("re_agent_key")
	res, m := rawAuth(t, base, "POST", "/emails", body, "Bearer re_other_key", nil)
	if res.StatusCode != 403 || m["name"] != "invalid_api_key" {
		t.Fatalf("unknown key: %d %v", res.StatusCode, m)
	}
	if _, err := newClient(t, base, "re_agent_key", 5*time.Second).Emails.Send(email("a@example.com")); err != nil {
		t.Fatal(err)
	}
	if fr.Sent() != 1 {
		t.Fatalf("sent %d", fr.Sent())
	}
	b, _ := json.Marshal(fr.Log())
	for _, key := range []string{"re_agent_key", "re_other_key", "secret123", fakeresend.DefaultAPIKey} {
		if strings.Contains(string(b), key) {
			t.Fatalf("a key reached the log: %s", b)
		}
	}
	for _, r := range fr.Log() {
		if r.Status == 401 && r.Body != nil {
			t.Fatalf("the body of a refused request was kept: %+v", r)
		}
	}
}

func TestRateLimit(t *testing.T) {
	fr, rc, base := newFake(t)
	fr.FailNext(1, http.StatusTooManyRequests)
	_, err := rc.Emails.Send(email("a@example.com"))
	var rl *resend.RateLimitError
	if !errors.Is(err, resend.ErrRateLimit) || !errors.As(err, &rl) {
		t.Fatalf("got %v (%T)", err, err)
	}
	if rl.Limit != "2" || rl.Remaining != "0" || rl.Reset != "1" || rl.RetryAfter != "1" || !strings.Contains(rl.Message, "Too many requests") {
		t.Fatalf("got %+v", rl)
	}
	if fr.Sent() != 0 {
		t.Fatal("a rate-limited request sent an email")
	}
	if _, err := rc.Emails.Send(email("a@example.com")); err != nil {
		t.Fatalf("the fault struck twice: %v", err)
	}

	fr.Inject(fakeresend.Fault{Status: 429, Name: "daily_quota_exceeded", Times: 1})
	res, m := raw(t, base, "POST", "/emails", `{}`, nil)
	if res.StatusCode != 429 || m["name"] != "daily_quota_exceeded" || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("quota: %d %v", res.StatusCode, m)
	}
}

func TestExecuteThenFailThenReplay(t *testing.T) {
	// The email goes out, the answer is lost; the retry under the same key
	// is replayed rather than sent twice.
	fr, rc, _ := newFake(t)
	ctx := context.Background()
	opts := &resend.SendEmailOptions{IdempotencyKey: "order-42"}
	fr.ExecuteThenFail(1, 500)
	if _, err := rc.Emails.SendWithOptions(ctx, email("a@example.com"), opts); err == nil || !strings.Contains(err.Error(), "unexpected error") {
		t.Fatalf("got %v", err)
	}
	if fr.Sent() != 1 {
		t.Fatalf("sent %d", fr.Sent())
	}
	res, err := rc.Emails.SendWithOptions(ctx, email("a@example.com"), opts)
	if err != nil || res.Id != "00000000-0000-4000-8000-000000000001" || fr.Sent() != 1 || !fr.Log()[1].Replayed {
		t.Fatalf("retry: %+v %v, sent %d", res, err, fr.Sent())
	}
}

func TestFailNextDoesNothing(t *testing.T) {
	fr, rc, base := newFake(t)
	fr.On("POST", "/emails/batch").FailNext(1, 503)
	if _, err := rc.Emails.Send(email("a@example.com")); err != nil {
		t.Fatalf("a batch fault struck /emails: %v", err)
	}
	if _, err := rc.Batch.SendWithOptions(context.Background(), batch(2), &resend.BatchSendEmailOptions{IdempotencyKey: "x"}); err == nil {
		t.Fatal("no error")
	}
	if fr.Sent() != 1 {
		t.Fatalf("sent %d", fr.Sent())
	}
	// Nothing was saved under the key: the retry executes.
	res, err := rc.Batch.SendWithOptions(context.Background(), batch(2), &resend.BatchSendEmailOptions{IdempotencyKey: "x"})
	if err != nil || len(res.Data) != 2 || fr.Sent() != 3 || fr.Log()[2].Replayed {
		t.Fatalf("%+v %v", res, err)
	}
	fr.Inject(fakeresend.Fault{Status: 409, Times: 1})
	_, m := raw(t, base, "POST", "/emails", `{}`, nil)
	if m["name"] != "concurrent_idempotent_requests" {
		t.Fatalf("409 fault: %v", m)
	}
	fr.Inject(fakeresend.Fault{Status: 502, Body: "<html>Bad Gateway</html>", Times: 1})
	if _, err := rc.Emails.Send(email("a@example.com")); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("HTML fault: %v", err)
	}
}

func TestDelayRespectsTheClient(t *testing.T) {
	fr, base := fakeresend.Start(t)
	fr.Delay(10 * time.Second)
	rc := newClient(t, base, fakeresend.DefaultAPIKey, 200*time.Millisecond)
	start := time.Now()
	if _, err := rc.Emails.Send(email("a@example.com")); err == nil {
		t.Fatal("no error from a delayed request")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	waitStatus(t, fr, 0, 0)
	if fr.Sent() != 0 {
		t.Fatal("a request the client gave up on sent an email")
	}
	fr.ClearFaults()
	if _, err := rc.Emails.Send(email("a@example.com")); err != nil {
		t.Fatal(err)
	}
}

func TestExecuteThenHang(t *testing.T) {
	fr, base := fakeresend.Start(t)
	fr.On("POST", "/emails").ExecuteThenHang(1)
	rc := newClient(t, base, fakeresend.DefaultAPIKey, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	opts := &resend.SendEmailOptions{IdempotencyKey: "hung"}
	if _, err := rc.Emails.SendWithOptions(ctx, email("a@example.com"), opts); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline", err)
	}
	if fr.Sent() != 1 {
		t.Fatalf("sent %d", fr.Sent())
	}
	res, err := rc.Emails.SendWithOptions(context.Background(), email("a@example.com"), opts)
	if err != nil || res.Id != "00000000-0000-4000-8000-000000000001" || fr.Sent() != 1 {
		t.Fatalf("retry: %+v %v", res, err)
	}
}

func TestCloseReleasesHang(t *testing.T) {
	fr, base := fakeresend.Start(t)
	fr.Hang()
	rc := newClient(t, base, fakeresend.DefaultAPIKey, 0)
	done := make(chan error, 1)
	go func() {
		_, err := rc.Emails.Send(email("a@example.com"))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for fr.Requests() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no request")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fr.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a hung request was answered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
	if fr.Sent() != 0 {
		t.Fatal("a hung request sent an email")
	}
}

func waitStatus(t *testing.T, fr *fakeresend.Server, i, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := fr.Log()
		if len(log) > i && log[i].Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %+v", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentSends(t *testing.T) {
	fr, rc, _ := newFake(t)
	const n = 40
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := rc.Emails.Send(email("a@example.com"))
			if err != nil {
				t.Error(err)
				return
			}
			ids <- res.Id
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("ID %s twice", id)
		}
		seen[id] = true
	}
	if len(seen) != n || fr.Sent() != n || fr.RequestsTo("POST", "/emails") != n {
		t.Fatalf("%d IDs, sent %d", len(seen), fr.Sent())
	}
}

// raw sends a request by hand with the default key and decodes the JSON
// answer.
func raw(t *testing.T, base, method, path, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	return rawAuth(t, base, method, path, body, "Bearer "+fakeresend.DefaultAPIKey, header)
}

func rawAuth(t *testing.T, base, method, path, body, auth string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
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
		t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, b)
	}
	if res.StatusCode >= 400 && (m["statusCode"] != float64(res.StatusCode) || m["name"] == nil || m["message"] == nil) {
		t.Fatalf("%s %s: %d not in Resend's error shape: %s", method, path, res.StatusCode, b)
	}
	return res, m
}

func TestWire(t *testing.T) {
	fr, _, base := newFake(t)
	ok := `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t"}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantName   string // "" for success
	}{
		{"to as a string", "POST", "/emails", ok, nil, 200, ""},
		{"nulls are absent", "POST", "/emails", `{"from":"a@example.com","to":["b@example.com"],"cc":null,"subject":"s","html":null,"text":"t"}`, nil, 200, ""},
		{"unknown route", "GET", "/domains", "", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/emails", "", nil, 405, "method_not_allowed"},
		{"dot segments", "POST", "/broadcasts/../emails", ok, nil, 404, "not_found"},
		{"escaped path", "POST", "/%65mails", ok, nil, 404, "not_found"},
		{"trailing slash", "POST", "/emails/", ok, nil, 404, "not_found"},
		{"query string", "POST", "/emails?to=c@example.com", ok, nil, 400, "validation_error"},
		{"text body", "POST", "/emails", ok, map[string]string{"Content-Type": "text/plain"}, 400, "validation_error"},
		{"form body", "POST", "/emails", "from=a@example.com", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, "validation_error"},
		{"invalid JSON", "POST", "/emails", `{"from":`, nil, 400, "validation_error"},
		{"trailing data", "POST", "/emails", ok + `{}`, nil, 400, "validation_error"},
		{"duplicate key", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","to":"c@example.com","subject":"s","text":"t"}`, nil, 400, "validation_error"},
		{"duplicate nested key", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t","headers":{"X":"1","X":"2"}}`, nil, 400, "validation_error"},
		{"case variant key", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","TO":"c@example.com","subject":"s","text":"t"}`, nil, 422, "validation_error"},
		{"unknown field", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t","template":"x"}`, nil, 422, "validation_error"},
		{"not an object", "POST", "/emails", `["a"]`, nil, 422, "validation_error"},
		{"number as subject", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","subject":1,"text":"t"}`, nil, 422, "validation_error"},
		{"number in to", "POST", "/emails", `{"from":"a@example.com","to":[1],"subject":"s","text":"t"}`, nil, 422, "validation_error"},
		{"headers not strings", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t","headers":{"X":1}}`, nil, 422, "validation_error"},
		{"unknown attachment field", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t","attachments":[{"path":"https://e.com/a","size":1}]}`, nil, 422, "validation_error"},
		{"empty attachment", "POST", "/emails", `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t","attachments":[{"filename":"a"}]}`, nil, 422, "invalid_attachment"},
		{"deep nesting", "POST", "/emails", strings.Repeat("[", 40) + strings.Repeat("]", 40), nil, 400, "validation_error"},
		{"missing field", "POST", "/emails", `{"to":"b@example.com","subject":"s","text":"t"}`, nil, 422, "missing_required_field"},
		{"body on a read", "GET", "/emails/00000000-0000-4000-8000-000000000001", "{}", nil, 400, "validation_error"},
		{"email ID not a UUID", "GET", "/emails/abc", "", nil, 422, "invalid_parameter"},
		{"unknown email", "GET", "/emails/00000000-0000-4000-8000-0000000000ff", "", nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, m := raw(t, base, tt.method, tt.path, tt.body, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", res.StatusCode, tt.wantStatus, m)
			}
			if tt.wantName == "" {
				if id, _ := m["id"].(string); id == "" {
					t.Fatalf("got %v", m)
				}
				return
			}
			if m["name"] != tt.wantName {
				t.Fatalf("error %v, want %s", m, tt.wantName)
			}
		})
	}
	if fr.Sent() != 2 {
		t.Fatalf("sent %d, want only the two accepted", fr.Sent())
	}

	big := `{"from":"a@example.com","to":"b@example.com","subject":"s","text":"` + strings.Repeat("a", 1<<20) + `"}`
	res, m := raw(t, base, "POST", "/emails", big, nil)
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 1 MiB body: %d %v", res.StatusCode, m)
	}
}

func TestLog(t *testing.T) {
	fr, rc, _ := newFake(t)
	if _, err := rc.Emails.SendWithOptions(context.Background(), email("a@example.com"), &resend.SendEmailOptions{IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	log := fr.Log()
	if len(log) != 1 || log[0].Method != "POST" || log[0].Path != "/emails" || log[0].IdempotencyKey != "k" || log[0].Status != 200 ||
		!strings.Contains(string(log[0].Body), `"a@example.com"`) {
		t.Fatalf("log %+v", log)
	}
	log[0].Body[0] = 'X'
	if fr.Log()[0].Body[0] != '{' {
		t.Fatal("Log shares its bodies")
	}
	if fr.Requests() != 1 || fr.RequestsTo("POST", "/emails") != 1 || fr.RequestsTo("GET", "/emails") != 0 {
		t.Fatal("request counts")
	}
}

func TestSetupRefusesNonsense(t *testing.T) {
	tests := []struct {
		name string
		f    func(*fakeresend.Server)
	}{
		{"success status", func(s *fakeresend.Server) { s.FailNext(1, 200) }},
		{"no effect", func(s *fakeresend.Server) { s.Inject(fakeresend.Fault{Times: 1}) }},
		{"zero times", func(s *fakeresend.Server) { s.FailNext(0, 500) }},
		{"broadcast ID", func(s *fakeresend.Server) { s.AddBroadcast("a/b", 1) }},
		{"negative audience", func(s *fakeresend.Server) { s.AddBroadcast("b", -1) }},
		{"broadcast twice", func(s *fakeresend.Server) { s.AddBroadcast("b", 1); s.AddBroadcast("b", 2) }},
		{"API key", func(s *fakeresend.Server) { s.SetAPIKeys("sk_test_1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.f(fakeresend.New())
		})
	}
}
