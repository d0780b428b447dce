package faketwilio

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/keybrake/keybrake/fakes/fakefault"
)

// Start serves a new fake Twilio on a loopback httptest.Server for the
// duration of the test and returns it with the server's base URL. At the
// end of the test it releases held requests (Close) and then closes the
// httptest.Server, in that order.
func Start(t testing.TB) (*Server, string) {
	t.Helper()
	s := New()
	return s, fakefault.Start(t, s)
}

// Transport returns a RoundTripper that sends every request to baseURL's
// scheme and host instead of the ones it names, keeping its path and
// query, through next (http.DefaultTransport when nil). twilio-go
// hard-codes https://api.twilio.com, so this is how it reaches the fake:
// put it below anything that must see the real host, such as Keybrake's
// transport. It never modifies the caller's request, and panics on a
// baseURL without a scheme and host.
func Transport(baseURL string, next http.RoundTripper) http.RoundTripper {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		panic(fmt.Sprintf("faketwilio: base URL %q has no scheme and host", baseURL))
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &rewrite{scheme: u.Scheme, host: u.Host, next: next}
}

// HTTPClient returns a client whose Transport is Transport(baseURL, nil):
// what to give twilio-go's client.Client as its HTTPClient.
func HTTPClient(baseURL string) *http.Client {
	return &http.Client{Transport: Transport(baseURL, nil)}
}

type rewrite struct {
	scheme, host string
	next         http.RoundTripper
}

func (rw *rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	// Clone shares the body, which the next transport consumes and
	// closes in the caller's stead.
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = rw.scheme, rw.host, ""
	return rw.next.RoundTrip(out)
}
