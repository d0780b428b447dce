package faketwilio_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/fakes/faketwilio"
	"github.com/keybrake/keybrake/money"
)

const accountPath = "/2010-04-01/Accounts/" + faketwilio.DefaultAccountSID

func serve(ft *faketwilio.Server, method string, u *url.URL, body string) *httptest.ResponseRecorder {
	req := (&http.Request{
		Method: method, URL: u, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(body)), Host: "api.twilio.com",
	}).WithContext(context.Background())
	req.SetBasicAuth(faketwilio.DefaultAccountSID, faketwilio.DefaultAuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	ft.ServeHTTP(rec, req)
	return rec
}

// FuzzServeHTTP sends arbitrary requests and checks what must hold for any
// of them: an answer in Twilio's shape with a Twilio-Request-Id, and a bill
// that is exactly the sum of what was sent, each message priced by its
// segments.
func FuzzServeHTTP(f *testing.F) {
	f.Add("POST", accountPath+"/Messages.json", "To=%2B15558675310&From=%2B15005550006&Body=hi")
	f.Add("POST", accountPath+"/Messages.json", "To=%2B447700900123&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&Body=%E2%82%AC%E2%82%AC")
	f.Add("POST", accountPath+"/Messages.json", "To=%2B15558675310&From=12345&MediaUrl=https%3A%2F%2Fe.com%2Fa.png&MediaUrl=https%3A%2F%2Fe.com%2Fb.png")
	f.Add("GET", accountPath+"/Messages/SM00000000000000000000000000000001.json", "")
	f.Add("POST", accountPath+"/Calls.json", "To=%2B15558675310&From=%2B15005550006&Twiml=%3CResponse%2F%3E&TimeLimit=60")
	f.Add("GET", accountPath+"/Calls/CA00000000000000000000000000000001.json", "")
	f.Fuzz(func(t *testing.T, method, path, body string) {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		ft := faketwilio.New()
		ft.SetPrice("+44", "0.0400")
		seed, _ := url.ParseRequestURI(accountPath + "/Messages.json")
		if rec := serve(ft, "POST", seed, "To=%2B15558675310&From=%2B15005550006&Body=seed"); rec.Code != http.StatusCreated {
			t.Fatalf("seed: %d %s", rec.Code, rec.Body)
		}
		seedCall, _ := url.ParseRequestURI(accountPath + "/Calls.json")
		if rec := serve(ft, "POST", seedCall, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fe.com%2Fx"); rec.Code != http.StatusCreated {
			t.Fatalf("seed call: %d %s", rec.Code, rec.Body)
		}

		rec := serve(ft, method, u, body)
		checkAnswer(t, rec)
		ft.CompleteCalls(3)
		ft.PriceMessages()

		sum := money.Amount{Currency: faketwilio.PriceUnit}
		for _, m := range ft.Messages() {
			segments, _ := faketwilio.Segments(m.Body)
			if m.MMS {
				segments = 1
			}
			if m.Segments != segments || segments < 1 || !m.Priced || m.Price.Micros <= 0 {
				t.Fatalf("message %+v", m)
			}
			sum, _ = sum.Add(m.Price)
		}
		for _, c := range ft.Calls() {
			if !c.Completed || c.Duration > c.TimeLimit || c.Price.Micros <= 0 {
				t.Fatalf("call %+v", c)
			}
			sum, _ = sum.Add(c.Price)
		}
		if got := ft.Spent()[faketwilio.PriceUnit]; got != sum {
			t.Fatalf("spent %v, sum %v", got, sum)
		}
		if got := ft.Billed()[faketwilio.PriceUnit]; got != sum {
			t.Fatalf("billed %v, sum %v", got, sum)
		}
	})
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if !strings.HasPrefix(rec.Header().Get("Twilio-Request-Id"), "RQ") {
		t.Fatalf("no Twilio-Request-Id: %v", rec.Header())
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d, body not JSON: %v\n%s", rec.Code, err, rec.Body)
	}
	switch rec.Code {
	case http.StatusOK, http.StatusCreated:
		if sid, _ := m["sid"].(string); len(sid) != 34 {
			t.Fatalf("%d without a SID: %s", rec.Code, rec.Body)
		}
	case 400, 401, 404, 413:
		code, _ := m["code"].(float64)
		if code < 20000 || m["status"] != float64(rec.Code) || m["message"] == "" {
			t.Fatalf("%d not in Twilio's error shape: %s", rec.Code, rec.Body)
		}
	default:
		t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
	}
}

func BenchmarkCreateMessage(b *testing.B) {
	ft := faketwilio.New()
	u, _ := url.ParseRequestURI(accountPath + "/Messages.json")
	body := "To=%2B15558675310&From=%2B15005550006&Body=" + url.QueryEscape(strings.Repeat("benchmark ", 20))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rec := serve(ft, "POST", u, body); rec.Code != http.StatusCreated {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkSegments(b *testing.B) {
	body := strings.Repeat("Your code is 123456. ", 20) + "😀"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if n, _ := faketwilio.Segments(body); n != 7 {
				b.Fatalf("%d segments", n)
			}
		}
	})
}
