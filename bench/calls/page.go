package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/internal/ui"
)

// pageBench asks the incident page's API what the page asks on load, as
// the browser would, through the handler keybrake ui serves.
type pageBench struct{ srv *ui.Server }

func newPageBench(src admin.Source, now time.Time) (*pageBench, error) {
	srv, err := ui.New(ui.Options{Source: src, Now: func() time.Time { return now }})
	if err != nil {
		return nil, err
	}
	return &pageBench{srv: srv}, nil
}

// get answers one request and returns how many records it covered (a
// timeline's "records", a records answer's "total").
func (p *pageBench) get(path string) (int, error) {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+p.srv.Token())
	rec := httptest.NewRecorder()
	p.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	var n struct {
		Records json.RawMessage // a timeline's count, or a records answer's list
		Total   int
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &n); err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	var count int
	if json.Unmarshal(n.Records, &count) != nil {
		count = n.Total
	}
	return count, nil
}

func window(since time.Time, d time.Duration) string {
	return "since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(since.Add(d).UTC().Format(time.RFC3339Nano))
}

// firstData is what the page reads before it draws: the session, now
// (the status), and the last 15 minutes' timeline and records.
func (p *pageBench) firstData(now time.Time) func() (int, error) {
	return func() (int, error) {
		w := window(now.Add(-15*time.Minute), 15*time.Minute)
		for _, path := range []string{"/api/session", "/api/now", "/api/timeline?" + w} {
			if _, err := p.get(path); err != nil {
				return 0, err
			}
		}
		return p.get("/api/records?limit=500&" + w)
	}
}

func (p *pageBench) timeline(since time.Time, d time.Duration) func() (int, error) {
	return func() (int, error) { return p.get("/api/timeline?" + window(since, d)) }
}
