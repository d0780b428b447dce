package fakeresend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/fakes/fakeresend"
)

func serve(fr *fakeresend.Server, method string, u *url.URL, body, idem, mode string) *httptest.ResponseRecorder {
	req := (&http.Request{
		Method: method, URL: u, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(body)), Host: "api.resend.com",
	}).WithContext(context.Background())
	req.Header.Set("Authorization", "Bearer "+fakeresend.DefaultAPIKey)
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if mode != "" {
		req.Header.Set("X-Batch-Validation", mode)
	}
	rec := httptest.NewRecorder()
	fr.ServeHTTP(rec, req)
	return rec
}

// FuzzServeHTTP sends arbitrary requests and checks what must hold for any
// of them: an answer in Resend's shape, one ID per email sent, counts that
// add up, and a replay under the same key that sends nothing.
func FuzzServeHTTP(f *testing.F) {
	f.Add("POST", "/emails", `{"from":"a@example.com","to":["b@example.com","c@example.com"],"cc":"d@example.com","subject":"s","html":"<p>x</p>"}`, "k1", "")
	f.Add("POST", "/emails/batch", `[{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t"},{"from":"bad","to":"b@example.com","subject":"s","text":"t"}]`, "k2", "permissive")
	f.Add("POST", "/emails/batch", `[{"from":"a@example.com","to":"b@example.com","subject":"s","text":"t"}]`, "", "strict")
	f.Add("POST", "/broadcasts/b1/send", `{"broadcast_id":"b1","scheduled_at":""}`, "", "")
	f.Add("GET", "/emails/00000000-0000-4000-8000-000000000001", "", "", "")
	f.Fuzz(func(t *testing.T, method, path, body, idem, mode string) {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		fr := fakeresend.New()
		fr.AddBroadcast("b1", 7)
		seed, _ := url.ParseRequestURI("/emails")
		if rec := serve(fr, "POST", seed, `{"from":"a@example.com","to":"b@example.com","subject":"seed","text":"t"}`, "", ""); rec.Code != 200 {
			t.Fatalf("seed: %d %s", rec.Code, rec.Body)
		}

		rec := serve(fr, method, u, body, idem, mode)
		checkAnswer(t, rec)
		sent, recipients := fr.Sent(), fr.Recipients()
		checkCounts(t, fr)
		if rec.Code == 200 && method == "POST" && path == "/emails" {
			var res struct{ ID string }
			if json.Unmarshal(rec.Body.Bytes(), &res) != nil || sent != 2 || fr.Emails()[1].ID != res.ID {
				t.Fatalf("sent %d for %s", sent, rec.Body)
			}
		}
		if rec.Code == 200 && method == "POST" && path == "/emails/batch" {
			var res struct {
				Data   []struct{ ID string }
				Errors []struct{ Index int }
			}
			if json.Unmarshal(rec.Body.Bytes(), &res) != nil || sent != 1+len(res.Data) {
				t.Fatalf("sent %d for %s", sent, rec.Body)
			}
		}

		again := serve(fr, method, u, body, idem, mode)
		checkAnswer(t, again)
		replayable := method == "POST" && (path == "/emails" || path == "/emails/batch") && idem != ""
		if replayable && rec.Code == 200 {
			if again.Code != 200 || !bytes.Equal(again.Body.Bytes(), rec.Body.Bytes()) {
				t.Fatalf("not replayed: %d %s then %d %s", rec.Code, rec.Body, again.Code, again.Body)
			}
			if fr.Sent() != sent || fr.Recipients() != recipients {
				t.Fatalf("a replay sent again: %d then %d", sent, fr.Sent())
			}
		}
		checkCounts(t, fr)
	})
}

func checkCounts(t *testing.T, fr *fakeresend.Server) {
	t.Helper()
	n, ids := 0, map[string]bool{}
	for _, e := range fr.Emails() {
		n += len(e.To) + len(e.Cc) + len(e.Bcc)
		if ids[e.ID] || len(e.To) < 1 || len(e.To) > fakeresend.MaxRecipients || e.Subject == "" || e.HTML+e.Text == "" {
			t.Fatalf("email %+v", e)
		}
		ids[e.ID] = true
	}
	if n != fr.Recipients() || len(ids) != fr.Sent() {
		t.Fatalf("recipients %d, sent %d, emails %+v", fr.Recipients(), fr.Sent(), fr.Emails())
	}
	if b := fr.BroadcastRecipients(); b != 0 && b != 7 {
		t.Fatalf("broadcast recipients %d", b)
	}
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d, body not a JSON object: %v\n%s", rec.Code, err, rec.Body)
	}
	switch rec.Code {
	case http.StatusOK:
		if _, ok := m["id"].(string); !ok {
			if _, ok := m["data"].([]any); !ok {
				t.Fatalf("200 without an id or data: %s", rec.Body)
			}
		}
	case 400, 401, 404, 405, 409, 413, 422:
		if m["statusCode"] != float64(rec.Code) || m["name"] == "" || m["message"] == "" {
			t.Fatalf("%d not in Resend's error shape: %s", rec.Code, rec.Body)
		}
	default:
		t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
	}
}

func BenchmarkSendEmail(b *testing.B) {
	fr := fakeresend.New()
	u, _ := url.ParseRequestURI("/emails")
	body := `{"from":"Keybrake <agent@keybrake.dev>","to":["a@example.com","b@example.com"],"subject":"Your receipt","html":"<p>Thanks</p>"}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rec := serve(fr, "POST", u, body, "", ""); rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkBatch100(b *testing.B) {
	fr := fakeresend.New()
	u, _ := url.ParseRequestURI("/emails/batch")
	item := `{"from":"a@keybrake.dev","to":"b@example.com","subject":"s","text":"t"}`
	body := "[" + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + "]"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rec := serve(fr, "POST", u, body, "", ""); rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}
