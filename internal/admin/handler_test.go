package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

func get(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

// lines is what the store's Query gives for q, as JSON Lines.
func lines(t *testing.T, s store.Store, q audit.Query) string {
	t.Helper()
	var b bytes.Buffer
	jl := audit.NewJSONLines(&b)
	if err := s.Query(context.Background(), q, jl.Write); err != nil {
		t.Fatal(err)
	}
	jl.Flush()
	return b.String()
}

func TestHandlerAudit(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	f.refuse(10, "other-bot", policy.Blocked)
	h := admin.Handler(f.local(false))
	at := func(d time.Duration) string { return url.QueryEscape(f.now.Add(d).Format(time.RFC3339Nano)) }

	tests := []struct {
		name  string
		query string
		want  audit.Query
	}{
		{"everything", "", audit.Query{}},
		{"one agent", "agent=other-bot", audit.Query{Agent: "other-bot"}},
		{"a decision", "decision=capped", audit.Query{Decision: policy.Capped}},
		{"a customer", "customer=cus_1", audit.Query{Customer: "cus_1"}},
		{"a vendor and a limit", "vendor=stripe&limit=2", audit.Query{Vendor: "stripe", Limit: 2}},
		{"a time range", "since=" + at(2) + "&until=" + at(5), audit.Query{Since: f.now.Add(2), Until: f.now.Add(5)}},
		{"nothing", "agent=nobody", audit.Query{Agent: "nobody"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(h, "GET", "/audit?"+tt.query)
			if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/x-ndjson") {
				t.Fatalf("status %d, type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
			want := lines(t, f.s, tt.want)
			if w.Body.String() != want {
				t.Errorf("body:\n%s\nwant:\n%s", w.Body, want)
			}
			if tt.name != "nothing" && want == "" {
				t.Error("the query selects nothing: the test proves nothing")
			}
			// Every line is an audit.Record.
			sc := bufio.NewScanner(w.Body)
			for sc.Scan() {
				var r audit.Record
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == 0 {
					t.Errorf("line %q: %v", sc.Text(), err)
				}
			}
			if e := w.Result().Trailer.Get(admin.TrailerError); e != "" {
				t.Errorf("trailer error %q", e)
			}
		})
	}
}

func TestHandlerRefuses(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	h := admin.Handler(f.local(false))
	tests := []struct {
		method, target string
		code           int
		says           string
	}{
		{"GET", "/audit?agnet=refund-bot", 400, `unknown parameter "agnet"`},
		{"GET", "/audit?agent=a&agent=b", 400, "given 2 times"},
		{"GET", "/audit?agent=", 400, "empty"},
		{"GET", "/audit?since=5m", 400, "not an RFC 3339 time"},
		{"GET", "/audit?until=yesterday", 400, "not an RFC 3339 time"},
		{"GET", "/audit?decision=maybe", 400, "not one of"},
		{"GET", "/audit?limit=-1", 400, "not a count"},
		{"GET", "/audit?limit=01", 400, "not a count"},
		{"GET", "/audit?follow=yes", 400, "not 1 or 0"},
		{"GET", "/audit?a=1;b=2", 400, "query"},
		{"GET", "/status?x=1", 400, "no parameters"},
		{"GET", "/verify?x=1", 400, "no parameters"},
		{"POST", "/audit", 405, "only GET"},
		{"DELETE", "/status", 405, "only GET"},
		{"PUT", "/verify", 405, "only GET"},
		{"GET", "/", 404, "not found"},
		{"GET", "/audit/", 404, "not found"},
		{"GET", "/prune", 404, "not found"},
	}
	for _, tt := range tests {
		w := get(h, tt.method, tt.target)
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.says) {
			t.Errorf("%s %s = %d %q, want %d saying %q", tt.method, tt.target, w.Code, w.Body, tt.code, tt.says)
		}
		if tt.code == 405 && w.Header().Get("Allow") != "GET" {
			t.Errorf("%s %s: Allow %q", tt.method, tt.target, w.Header().Get("Allow"))
		}
	}
	// Nothing was written by any of them.
	if n := strings.Count(lines(t, f.s, audit.Query{}), "\n"); n != 6 {
		t.Errorf("the store holds %d records, not the 6 written", n)
	}
}

func TestHandlerStatus(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	src := f.local(true, "refund-bot")
	w := get(admin.Handler(src), "GET", "/status")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var got admin.Status
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want, err := src.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("status over HTTP:\n%+v\nwant\n%+v", got, *want)
	}
	if !got.Halted || len(got.Limits) != 5 || got.Limits[0].Pending == 0 || len(got.Spend) == 0 {
		t.Errorf("status %+v", got)
	}

	// Glance, over the socket as in process: the same but the spend.
	w = get(admin.Handler(src), "GET", "/status?spend=false")
	var glance admin.Status
	if err := json.Unmarshal(w.Body.Bytes(), &glance); w.Code != 200 || err != nil {
		t.Fatalf("status?spend=false: %d %v %s", w.Code, err, w.Body)
	}
	glance.Time, want.Spend = time.Time{}, []admin.AgentSpend{}
	if !reflect.DeepEqual(&glance, want) {
		t.Errorf("glance over HTTP:\n%+v\nwant the status without its spend\n%+v", glance, *want)
	}
	if w := get(admin.Handler(src), "GET", "/status?spend=true"); w.Code != 400 {
		t.Errorf("status?spend=true: %d, want 400", w.Code)
	}

	f.s.Close()
	w = get(admin.Handler(src), "GET", "/status")
	if w.Code != 500 || !strings.Contains(w.Body.String(), "closed") {
		t.Errorf("closed store: %d %s", w.Code, w.Body)
	}
}

// tampered returns a database whose record 2's settled amount was edited
// behind the store's back, opened read-only.
func tampered(t *testing.T) (*bolt.Store, uint64) {
	t.Helper()
	f := newFixture(t)
	writeDay(f)
	f.s.Close()
	db, err := bbolt.Open(f.path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, 2}
		// One bit of the stored record flipped, as someone with write
		// access to the file could.
		v := append([]byte(nil), b.Get(k)...)
		if len(v) == 0 {
			return errors.New("no record 2")
		}
		v[len(v)-1] ^= 1
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(f.path, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, 2
}

func TestHandlerVerify(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	w := get(admin.Handler(f.local(false)), "GET", "/verify")
	want, err := f.s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Report struct {
			Entries  int    `json:"entries"`
			Records  int    `json:"records"`
			Head     uint64 `json:"head"`
			HeadHash string `json:"head_hash"`
		} `json:"report"`
		ChainError *json.RawMessage `json:"chain_error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	if res.Report.Entries != want.Entries || res.Report.Records != 6 || res.Report.Head != want.Head ||
		res.Report.HeadHash != want.HeadHash || len(want.HeadHash) != 64 || res.ChainError != nil {
		t.Errorf("verify = %s, want %+v", w.Body, want)
	}

	s, rec := tampered(t)
	w = get(admin.Handler(&admin.Local{Store: s}), "GET", "/verify")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"chain_error":{"problem":"altered"`) ||
		!strings.Contains(w.Body.String(), `"record":2`) || rec != 2 {
		t.Errorf("tampered verify = %d %s", w.Code, w.Body)
	}
}

// failing is a Source whose Query fails after passing on some records.
type failing struct {
	admin.Source
	after int
}

func (s failing) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	n := 0
	err := s.Source.Query(ctx, q, func(r *audit.Record) error {
		if n == s.after {
			return errors.New("disk on fire\nreally")
		}
		n++
		return fn(r)
	})
	return err
}

func TestHandlerErrorAfterStreaming(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	srv := httptest.NewServer(admin.Handler(failing{Source: f.local(false), after: 2}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || strings.Count(b.String(), "\n") != 2 {
		t.Fatalf("%d %q", resp.StatusCode, b.String())
	}
	if got := resp.Trailer.Get(admin.TrailerError); got != "disk on fire really" {
		t.Errorf("trailer %q", got)
	}
}

func TestParseQueryRoundTrip(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	q := audit.Query{Since: since, Until: since.Add(time.Hour), Agent: "refund-bot", Vendor: "stripe",
		Decision: policy.Scoped, Customer: "cus_1&x=y", Limit: 7}
	raw := admin.EncodeQuery(q, true)
	got, follow, err := admin.ParseQuery(raw)
	if err != nil || !follow || !got.Since.Equal(q.Since) || !got.Until.Equal(q.Until) {
		t.Fatalf("ParseQuery(%q) = %+v, %v, %v", raw, got, follow, err)
	}
	got.Since, got.Until = q.Since, q.Until
	if got != q {
		t.Errorf("round trip %+v, want %+v", got, q)
	}
	if raw := admin.EncodeQuery(audit.Query{}, false); raw != "" {
		t.Errorf("zero query encodes as %q", raw)
	}
}
