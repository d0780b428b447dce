package fakeresend

import (
	"testing"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// Start serves a new fake Resend on a loopback httptest.Server for the
// duration of the test and returns it with the server's base URL, without
// a trailing slash (resend-go's BaseURL needs one: url + "/"). At the end
// of the test it releases held requests (Close) and then closes the
// httptest.Server, in that order.
func Start(t testing.TB) (*Server, string) {
	t.Helper()
	s := New()
	return s, fakefault.Start(t, s)
}
