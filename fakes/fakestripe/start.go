package fakestripe

import (
	"testing"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// Start serves a new fake Stripe on a loopback httptest.Server for the
// duration of the test and returns it with the server's base URL. At the
// end of the test it releases held requests (Close) and then closes the
// httptest.Server, in that order.
func Start(t testing.TB) (*Server, string) {
	t.Helper()
	s := New()
	return s, fakefault.Start(t, s)
}
