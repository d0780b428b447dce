package stripe

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/internal/testenv"
)

func TestMain(m *testing.M) {
	// stripe-go logs every error response to stderr; the denials these
	// tests provoke are expected.
	stripego.DefaultLeveledLogger = &stripego.LeveledLogger{Level: stripego.LevelNull}
	// testenv stops the stripe-mock the scope tests start.
	testenv.Main(m)
}

// recorder answers every request with an empty JSON object and records
// where it was sent.
type recorder struct {
	mu   sync.Mutex
	urls []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	r.mu.Lock()
	r.urls = append(r.urls, req.Method+" "+req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
	r.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
}

func TestBackends(t *testing.T) {
	rec := &recorder{}
	sc := client.New("sk_test_x", Backends(&http.Client{Transport: rec}))
	if _, err := sc.Balance.Get(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.OAuth.Del(&stripego.DeauthorizeParams{ClientID: stripego.String("ca_1"), StripeUserID: stripego.String("acct_1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Files.New(&stripego.FileParams{FileReader: strings.NewReader("evidence"), Filename: stripego.String("e.txt"),
		Purpose: stripego.String(string(stripego.FilePurposeDisputeEvidence))}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET https://api.stripe.com/v1/balance",
		"POST https://connect.stripe.com/oauth/deauthorize",
		"POST https://files.stripe.com/v1/files",
	}
	if strings.Join(rec.urls, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests went to\n%s\nwant\n%s", strings.Join(rec.urls, "\n"), strings.Join(want, "\n"))
	}
}

func TestBackendsNilClientPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Backends(nil) did not panic; stripe-go would send around Keybrake")
		}
	}()
	Backends(nil)
}
