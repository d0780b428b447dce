package stripe

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake/vendors"
)

// Secrets of Stripe's forms, built from parts so that no scanner takes
// them for real ones.
var (
	liveKey       = "sk_" + "live_" + strings.Repeat("x", 24)
	testKey       = "sk_" + "test_" + strings.Repeat("x", 24)
	restrictedKey = "rk_" + "live_" + strings.Repeat("x", 24)
	agentKey      = "kb_" + strings.Repeat("0123456789abcdef", 2)
)

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestCustodyPresentedKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		want   string
		ok     bool
	}{
		{"Bearer, as stripe-node, stripe-python and stripe-go send it", http.Header{"Authorization": {"Bearer " + agentKey}}, agentKey, true},
		{"Basic with an empty password, as curl -u key: sends it", http.Header{"Authorization": {basicAuth(agentKey, "")}}, agentKey, true},
		{"a header spelt in lower case", http.Header{"authorization": {"Bearer " + agentKey}}, agentKey, true},
		{"a real secret is still what was presented", http.Header{"Authorization": {"Bearer " + liveKey}}, liveKey, true},
		{"no header", http.Header{}, "", false},
		{"two headers", http.Header{"Authorization": {"Bearer " + agentKey, "Bearer " + liveKey}}, "", false},
		{"two spellings", http.Header{"Authorization": {"Bearer " + agentKey}, "authorization": {"Bearer " + liveKey}}, "", false},
		{"Basic with a password", http.Header{"Authorization": {basicAuth(agentKey, "x")}}, "", false},
		{"Basic with the key as the password", http.Header{"Authorization": {basicAuth("", agentKey)}}, "", false},
		{"Basic without a colon", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(agentKey))}}, "", false},
		{"bad base64", http.Header{"Authorization": {"Basic " + agentKey}}, "", false},
		{"another scheme", http.Header{"Authorization": {"Token " + agentKey}}, "", false},
		{"a bare key", http.Header{"Authorization": {agentKey}}, "", false},
		{"empty Bearer", http.Header{"Authorization": {"Bearer "}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Vendor{}.PresentedKey(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Errorf("PresentedKey = %q, %v, want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestCustodyPresentedKeyFromStripeGo reads the key off a request
// stripe-go itself built.
func TestCustodyPresentedKeyFromStripeGo(t *testing.T) {
	var got *http.Request
	capture := custodyCapture(func(req *http.Request) { got = req })
	sc := client.New(agentKey, Backends(&http.Client{Transport: capture}))
	if _, err := sc.Balance.Get(nil); err != nil {
		t.Fatal(err)
	}
	if key, ok := (Vendor{}).PresentedKey(got.Header); !ok || key != agentKey {
		t.Errorf("PresentedKey of stripe-go's request = %q, %v, want %q", key, ok, agentKey)
	}
}

type custodyCapture func(*http.Request)

func (f custodyCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	f(req)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
}

func TestCustodyLooksLikeSecret(t *testing.T) {
	for key, want := range map[string]bool{
		liveKey:       true,
		testKey:       true,
		restrictedKey: true,
		"rk_" + "test_" + strings.Repeat("x", 24): true,
		"whsec_" + strings.Repeat("x", 24):        true,

		agentKey: false,
		"kb_" + "sk_" + "live_" + strings.Repeat("x", 24): false,
		"pk_" + "live_" + strings.Repeat("x", 24):         false, // publishable, not secret
		"re_123":                    false, // a refund
		"ch_1":                      false,
		"acct_1":                    false,
		"sk_live_":                  false,
		"sk_prod_abc":               false,
		"sk_" + "live_" + "abc def": false,
		"sk_" + "live_" + "abc\n":   false,
		"x" + liveKey:               false,
		"":                          false,
	} {
		if got := (Vendor{}).LooksLikeSecret(key); got != want {
			t.Errorf("LooksLikeSecret(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestCustodyHost(t *testing.T) {
	for path, want := range map[string]string{
		"/v1/charges":                      APIHost,
		"/v1/refunds":                      APIHost,
		"/v1/refunds/re_123":               APIHost,
		"/v1/payment_intents/pi_1/capture": APIHost,
		"/v1/checkout/sessions":            APIHost,
		"/v1/customers/search":             APIHost,
		"/v1/balance":                      APIHost,
		"/v1/test_helpers/test_clocks":     APIHost,
		"/v1/files/file_1":                 APIHost, // stripe-go retrieves files on the API backend
		"/v1/quotes/qt_1":                  APIHost,
		"/v1/quotes/qt_1/pdf":              UploadsHost, // stripe-go downloads quote PDFs from files.stripe.com
		"/oauth/token":                     ConnectHost,
		"/oauth/deauthorize":               ConnectHost,

		"/v1/files":                  "", // POST uploads to files.stripe.com, GET lists on api.stripe.com
		"/v1/files/file_1/contents":  "",
		"/v1/quotes/qt_1/pdf/x":      APIHost,
		"/v1":                        "",
		"/v1/":                       "",
		"/v1/charges/":               "",
		"/v1//charges":               "",
		"/v1/charges//ch_1":          "",
		"/v1/unknown_resource":       "",
		"/v1/Services":               "", // Twilio Messaging
		"/v1/a2p/BrandRegistrations": "", // Twilio Messaging
		"/v2/core/events":            "",
		"/oauth/authorize":           "", // a page for people, not an API call
		"/oauth/grants":              "", // Resend
		"/oauth/token/x":             "",
		"/charges":                   "",
		"v1/charges":                 "",
		"/V1/charges":                "",
		"":                           "",
		"/":                          "",
	} {
		host, ok := Vendor{}.Host(path)
		if host != want || ok != (want != "") {
			t.Errorf("Host(%q) = %q, %v, want %q", path, host, ok, want)
		}
	}
}

func TestCustodyPresent(t *testing.T) {
	secret := map[string]string{SecretName: liveKey}
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
	}{
		{"Bearer agent key", "https://api.stripe.com/v1/refunds", http.Header{"Authorization": {"Bearer " + agentKey}}},
		{"Basic agent key", "https://api.stripe.com/v1/refunds", http.Header{"Authorization": {basicAuth(agentKey, "")}}},
		{"two spellings", "https://api.stripe.com/v1/refunds", http.Header{"Authorization": {"Bearer " + agentKey}, "authorization": {"Bearer x"}}},
		{"user info in the URL", "https://" + agentKey + ":@api.stripe.com/v1/refunds", http.Header{}},
		{"no credential", "https://connect.stripe.com/oauth/token", http.Header{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", tc.url, strings.NewReader("amount=100"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			req.Header.Set("Stripe-Account", "acct_1")
			if err := (Vendor{}).Present(req, secret); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+liveKey {
				t.Errorf("Authorization = %q, want the held key", got)
			}
			if len(req.Header) != 2 {
				t.Errorf("headers %q, want Authorization and Stripe-Account", vendors.SortedKeys(req.Header))
			}
			if req.URL.User != nil {
				t.Error("the URL keeps the agent's user info")
			}
			if body, _ := io.ReadAll(req.Body); string(body) != "amount=100" {
				t.Errorf("body %q changed", body)
			}
		})
	}
}

func TestCustodyPresentRefuses(t *testing.T) {
	for name, secret := range map[string]map[string]string{
		"nil":                    nil,
		"missing":                {},
		"empty":                  {SecretName: ""},
		"publishable key":        {SecretName: "pk_" + "live_" + strings.Repeat("x", 24)},
		"webhook secret":         {SecretName: "whsec_" + strings.Repeat("x", 24)},
		"a Keybrake key":         {SecretName: agentKey},
		"a header injection":     {SecretName: liveKey + "\r\nX-Evil: 1"},
		"another vendor's names": {"RESEND_API_KEY": "re_" + "a_" + strings.Repeat("y", 24)},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://api.stripe.com/v1/balance", nil)
			req.Header.Set("Authorization", "Bearer "+agentKey)
			err := Vendor{}.Present(req, secret)
			if !errors.Is(err, vendors.ErrNoSecret) {
				t.Fatalf("Present = %v, want ErrNoSecret", err)
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 24)) {
				t.Errorf("the error shows the secret: %v", err)
			}
			if got := req.Header.Get("Authorization"); got != "Bearer "+agentKey {
				t.Errorf("a refused Present set Authorization %q", got)
			}
		})
	}
}

// TestCustodyPresentThroughStripeGo checks the request stripe-go builds
// for an agent key leaves Present with the held key and nothing else of
// the agent's.
func TestCustodyPresentThroughStripeGo(t *testing.T) {
	var sent *http.Request
	capture := custodyCapture(func(req *http.Request) {
		out := req.Clone(req.Context())
		if err := (Vendor{}).Present(out, map[string]string{SecretName: testKey}); err != nil {
			t.Error(err)
		}
		sent = out
	})
	sc := client.New(agentKey, Backends(&http.Client{Transport: capture}))
	if _, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1")}); err != nil {
		t.Fatal(err)
	}
	if got := sent.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+testKey {
		t.Errorf("sent Authorization %q", got)
	}
	for k, vs := range sent.Header {
		for _, v := range vs {
			if strings.Contains(v, agentKey) {
				t.Errorf("header %s still carries the agent key", k)
			}
		}
	}
}

// TestCustodyHostOfStripeGoCalls checks Host against where stripe-go
// itself sends calls on each of its three backends.
func TestCustodyHostOfStripeGoCalls(t *testing.T) {
	var last *http.Request
	sc := client.New(agentKey, Backends(&http.Client{Transport: custodyCapture(func(req *http.Request) { last = req })}))
	for _, tc := range []struct {
		name   string
		call   func() error
		served bool
	}{
		{"balance", func() error { _, err := sc.Balance.Get(nil); return err }, true},
		{"refunds.create", func() error {
			_, err := sc.Refunds.New(&stripego.RefundParams{Charge: stripego.String("ch_1")})
			return err
		}, true},
		{"checkout.sessions.get", func() error { _, err := sc.CheckoutSessions.Get("cs_1", nil); return err }, true},
		{"files.get", func() error { _, err := sc.Files.Get("file_1", nil); return err }, true},
		{"quotes.pdf", func() error { _, err := sc.Quotes.PDF("qt_1", nil); return err }, true},
		{"oauth.deauthorize", func() error {
			_, err := sc.OAuth.Del(&stripego.DeauthorizeParams{ClientID: stripego.String("ca_1"), StripeUserID: stripego.String("acct_1")})
			return err
		}, true},
		// An upload goes to files.stripe.com at the path stripe-go lists
		// files at on api.stripe.com: Host cannot tell them apart.
		{"files.create", func() error {
			_, err := sc.Files.New(&stripego.FileParams{FileReader: strings.NewReader("evidence"), Filename: stripego.String("e.txt"),
				Purpose: stripego.String(string(stripego.FilePurposeDisputeEvidence))})
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			last = nil
			if err := tc.call(); err != nil || last == nil {
				t.Fatalf("stripe-go: %v (sent: %v)", err, last != nil)
			}
			host, ok := Vendor{}.Host(last.URL.EscapedPath())
			switch {
			case tc.served && (!ok || host != last.URL.Host):
				t.Errorf("Host(%q) = %q, %v; stripe-go sent it to %s", last.URL.EscapedPath(), host, ok, last.URL.Host)
			case !tc.served && ok:
				t.Errorf("Host(%q) = %q, for a call stripe-go sends to %s", last.URL.EscapedPath(), host, last.URL.Host)
			}
		})
	}
}
