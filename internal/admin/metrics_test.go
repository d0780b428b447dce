package admin_test

import (
	"net/http"
	"testing"

	"github.com/keybrake/keybrake/internal/admin"
)

type withMetrics struct {
	*admin.Local
	h http.Handler
}

func (w withMetrics) Metrics() http.Handler { return w.h }

// TestHandlerMetrics: /metrics is served only for a MetricsSource, GET
// only, with its handler.
func TestHandlerMetrics(t *testing.T) {
	f := newFixture(t)
	if w := get(admin.Handler(f.local(false)), "GET", "/metrics"); w.Code != 404 {
		t.Fatalf("/metrics without metrics: %d, want 404", w.Code)
	}
	h := admin.Handler(withMetrics{f.local(false), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("keybrake_store_up 1\n"))
	})})
	if w := get(h, "GET", "/metrics"); w.Code != 200 || w.Body.String() != "keybrake_store_up 1\n" {
		t.Fatalf("/metrics: %d %q", w.Code, w.Body)
	}
	if w := get(h, "POST", "/metrics"); w.Code != 405 {
		t.Fatalf("POST /metrics: %d, want 405", w.Code)
	}
}
