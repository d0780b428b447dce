package fakefault

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Server is what Start serves: a fake's http.Handler, whose Close
// releases the requests its faults hold.
type Server interface {
	http.Handler
	Close()
}

// Start serves s on a loopback httptest.Server for the duration of the
// test and returns the server's base URL, without a trailing slash. At
// the end of the test it releases held requests (s.Close) and then
// closes the httptest.Server, whose Close waits for running handlers: in
// that order, or a held request would keep the test from ending.
func Start(t testing.TB, s Server) string {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return ts.URL
}
