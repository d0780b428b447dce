package vendors_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/builtin"
)

// agentKeys are Keybrake agent keys of every shape a key file might hold;
// no vendor may take one for its own secret.
var agentKeys = []string{
	"kb_" + strings.Repeat("abcdefghijklmnopqrstuvwxyz234567", 2)[:52], // as internal/keys makes them
	"kb_" + strings.Repeat("0123456789abcdef", 2),
	"kb_" + strings.Repeat("A1b2", 8),
	"kb_" + strings.Repeat("Zz9-_", 9),
	"kb_live_" + strings.Repeat("x", 24),
	"kb_test_" + strings.Repeat("x", 24),
	"kb_" + strings.Repeat("x", 8) + "_" + strings.Repeat("y", 24),
	"kb_1",
}

// custodyFixture is, per built-in vendor, a secret of its form (built from
// parts, so no scanner takes it for a real one), a request an SDK of the
// vendor sends with an agent key in place of the secret, and the part of
// the secret PresentedKey finds once Present has set it.
type custodyFixture struct {
	secret    map[string]string
	request   func(agentKey string) *http.Request
	presented string
}

var (
	testAccount = "AC" + strings.Repeat("0123456789abcdef", 2)
	testToken   = strings.Repeat("fedcba9876543210", 2)
	stripeKey   = "sk_" + "test_" + strings.Repeat("x", 24)
	resendKey   = "re_" + "abc123" + "_" + strings.Repeat("y", 24)
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func sdkRequest(rawURL, auth string) *http.Request {
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", auth)
	return req
}

var custodyFixtures = map[string]custodyFixture{
	"resend": {
		secret: map[string]string{"RESEND_API_KEY": resendKey},
		request: func(k string) *http.Request {
			return sdkRequest("https://api.resend.com/emails", "Bearer "+k)
		},
		presented: resendKey,
	},
	"stripe": {
		secret: map[string]string{"STRIPE_SECRET_KEY": stripeKey},
		request: func(k string) *http.Request {
			return sdkRequest("https://api.stripe.com/v1/refunds", "Bearer "+k)
		},
		presented: stripeKey,
	},
	"twilio": {
		secret: map[string]string{"TWILIO_ACCOUNT_SID": testAccount, "TWILIO_AUTH_TOKEN": testToken},
		request: func(k string) *http.Request {
			return sdkRequest("https://api.twilio.com/2010-04-01/Accounts/"+testAccount+"/Messages.json", basic(testAccount, k))
		},
		presented: testToken,
	},
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// TestBuiltinCustody checks that every built-in vendor can be proxied, and
// that what the proxy relies on holds for each without naming it: the
// agent's key is found where its SDK puts it and is never taken for a
// vendor secret; Present replaces it by the secret, which is then the one
// credential on the request and has the vendor's form; an incomplete
// secret is refused and the request left alone.
func TestBuiltinCustody(t *testing.T) {
	for _, v := range builtin.Vendors() {
		t.Run(v.Name(), func(t *testing.T) {
			c, ok := v.(vendors.Custody)
			if !ok {
				t.Fatalf("%T does not implement vendors.Custody", v)
			}
			fx, ok := custodyFixtures[v.Name()]
			if !ok {
				t.Fatalf("no custody fixture for %s: add one", v.Name())
			}

			names := c.SecretNames()
			if len(names) == 0 {
				t.Fatal("no SecretNames")
			}
			for _, n := range names {
				if !envName.MatchString(n) {
					t.Errorf("secret name %q is not an environment variable name", n)
				}
			}
			names[0] = "CHANGED"
			if c.SecretNames()[0] == "CHANGED" {
				t.Error("SecretNames returns a shared slice")
			}
			if got, want := vendors.SortedKeys(fx.secret), slices.Sorted(slices.Values(c.SecretNames())); !slices.Equal(got, want) {
				t.Fatalf("fixture secret has %q, SecretNames %q", got, want)
			}

			for _, k := range agentKeys {
				if c.LooksLikeSecret(k) {
					t.Errorf("LooksLikeSecret(%q) = true for a Keybrake key", k)
				}
				req := fx.request(k)
				got, ok := c.PresentedKey(req.Header)
				if !ok || got != k {
					t.Errorf("PresentedKey of %q as the SDK sends it = %q, %v", k, got, ok)
				}

				out := req.Clone(req.Context())
				if err := c.Present(out, fx.secret); err != nil {
					t.Fatalf("Present: %v", err)
				}
				if n := len(out.Header.Values("Authorization")); n != 1 {
					t.Fatalf("after Present, %d Authorization headers", n)
				}
				got, ok = c.PresentedKey(out.Header)
				if !ok || got != fx.presented || !c.LooksLikeSecret(got) {
					t.Errorf("after Present, PresentedKey = %q, %v (LooksLikeSecret %v), want %q", got, ok, c.LooksLikeSecret(got), fx.presented)
				}
				if req.Header.Get("Authorization") == out.Header.Get("Authorization") {
					t.Error("Present changed the original request, not only the clone")
				}
			}

			for _, n := range c.SecretNames() {
				partial := map[string]string{}
				for k, val := range fx.secret {
					partial[k] = val
				}
				for _, missing := range []bool{true, false} {
					if missing {
						delete(partial, n)
					} else {
						partial[n] = ""
					}
					req := fx.request(agentKeys[0])
					before := req.Header.Get("Authorization")
					err := c.Present(req, partial)
					if !errors.Is(err, vendors.ErrNoSecret) {
						t.Errorf("Present without %s (missing %v) = %v, want ErrNoSecret", n, missing, err)
					}
					if req.Header.Get("Authorization") != before {
						t.Errorf("Present without %s changed the request", n)
					}
				}
			}
			if err := c.Present(fx.request(agentKeys[0]), nil); !errors.Is(err, vendors.ErrNoSecret) {
				t.Errorf("Present(nil secret) = %v, want ErrNoSecret", err)
			}
		})
	}
}

// TestBuiltinHostsDisjoint checks that each path the SDKs call is served
// by exactly the vendor it belongs to, on one of that vendor's Hosts: the
// proxy answers a path in the error format of the first vendor that
// serves it and takes only that vendor's keys, so a path two vendors
// claim would lock the second out.
func TestBuiltinHostsDisjoint(t *testing.T) {
	account := "/2010-04-01/Accounts/" + testAccount
	verify := "/v2/Services/VA" + strings.Repeat("0", 32)
	messaging := "/v1/Services/MG" + strings.Repeat("0", 32)
	id := "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
	paths := map[string]string{
		"/v1/charges": "stripe", "/v1/refunds/re_123": "stripe", "/v1/payment_intents/pi_1/capture": "stripe",
		"/v1/customers/search": "stripe", "/v1/checkout/sessions": "stripe", "/v1/files/file_1": "stripe",
		"/v1/quotes/qt_1/pdf": "stripe", "/v1/events": "stripe", "/oauth/token": "stripe", "/oauth/deauthorize": "stripe",

		account + "/Messages.json": "twilio", account + ".json": "twilio", "/2010-04-01/Accounts.json": "twilio",
		account + "/Calls/CA" + strings.Repeat("1", 32) + ".json": "twilio",
		messaging: "twilio", messaging + "/PhoneNumbers": "twilio", "/v1/Services": "twilio", "/v1/a2p/BrandRegistrations": "twilio",
		"/v1/Tollfree/Verifications": "twilio", "/v2/Channels/Senders": "twilio", "/v3/Indicators/Typing.json": "twilio",
		verify + "/Verifications": "twilio", verify + "/VerificationCheck": "twilio", "/v2/SafeList/Numbers": "twilio",

		"/emails": "resend", "/emails/batch": "resend", "/emails/" + id: "resend", "/broadcasts/" + id + "/send": "resend",
		"/oauth/grants": "resend", "/oauth/grants/" + id: "resend", "/events": "resend", "/events/send": "resend",
		"/audiences/" + id + "/contacts/" + id: "resend", "/api-keys": "resend",

		// Nobody's: unknown, malformed, or another product's.
		"": "", "/": "", "/v1": "", "/v1/": "", "/v1/charges/": "", "/v1/files": "", "/v2/core/events": "",
		"/v1/Services/IS" + strings.Repeat("0", 32): "", "/v2/Services/IS" + strings.Repeat("0", 32): "",
		"/v2/PhoneNumbers/+15005550006": "", "/2010-04-01": "", "/oauth/authorize": "", "/emails/": "",
		"/emails//send": "", "v1/charges": "", "/Emails": "",
	}
	vs := builtin.Vendors()
	for _, path := range vendors.SortedKeys(paths) {
		want := paths[path]
		var owners []string
		for _, v := range vs {
			c := v.(vendors.Custody)
			host, ok := c.Host(path)
			if !ok {
				if host != "" {
					t.Errorf("%s.Host(%q) = %q with ok false", v.Name(), path, host)
				}
				continue
			}
			owners = append(owners, v.Name())
			if !slices.Contains(v.Hosts(), host) {
				t.Errorf("%s.Host(%q) = %q, not one of its Hosts", v.Name(), path, host)
			}
		}
		switch {
		case want == "" && len(owners) != 0:
			t.Errorf("%q served by %q, want nobody", path, owners)
		case want != "" && !slices.Equal(owners, []string{want}):
			t.Errorf("%q served by %q, want only %s", path, owners, want)
		}
	}
}

func TestBearerCredential(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		want   string
		ok     bool
	}{
		{"as the SDKs send it", http.Header{"Authorization": {"Bearer kb_1"}}, "kb_1", true},
		{"scheme in lower case", http.Header{"Authorization": {"bearer kb_1"}}, "kb_1", true},
		{"visible ASCII", http.Header{"Authorization": {"Bearer a.b-c~d+e/f=="}}, "a.b-c~d+e/f==", true},
		{"none", http.Header{}, "", false},
		{"nil", nil, "", false},
		{"empty value", http.Header{"Authorization": {""}}, "", false},
		{"two values", http.Header{"Authorization": {"Bearer kb_1", "Bearer kb_2"}}, "", false},
		{"two spellings", http.Header{"Authorization": {"Bearer kb_1"}, "authorization": {"Bearer kb_2"}}, "", false},
		{"a spelling alone", http.Header{"authorization": {"Bearer kb_1"}}, "kb_1", true},
		{"same value twice", http.Header{"Authorization": {"Bearer kb_1", "Bearer kb_1"}}, "", false},
		{"Basic", http.Header{"Authorization": {basic("kb_1", "")}}, "", false},
		{"scheme alone", http.Header{"Authorization": {"Bearer"}}, "", false},
		{"empty token", http.Header{"Authorization": {"Bearer "}}, "", false},
		{"two spaces", http.Header{"Authorization": {"Bearer  kb_1"}}, "", false},
		{"trailing space", http.Header{"Authorization": {"Bearer kb_1 "}}, "", false},
		{"two tokens", http.Header{"Authorization": {"Bearer kb_1 kb_2"}}, "", false},
		{"tab", http.Header{"Authorization": {"Bearer\tkb_1"}}, "", false},
		{"newline", http.Header{"Authorization": {"Bearer kb_1\r\nX: y"}}, "", false},
		{"non-ASCII", http.Header{"Authorization": {"Bearer kb_é"}}, "", false},
		{"DEL", http.Header{"Authorization": {"Bearer kb_\x7f"}}, "", false},
		{"scheme prefix", http.Header{"Authorization": {"Bearerx kb_1"}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := vendors.BearerCredential(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Errorf("BearerCredential = %q, %v, want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestBasicCredential(t *testing.T) {
	b64 := func(s string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(s))}}
	}
	for _, tc := range []struct {
		name           string
		header         http.Header
		user, password string
		ok             bool
	}{
		{"user and password", b64("AC1:kb_1"), "AC1", "kb_1", true},
		{"empty password", b64("kb_1:"), "kb_1", "", true},
		{"empty user", b64(":kb_1"), "", "kb_1", true},
		{"colon in the password", b64("AC1:kb:1"), "AC1", "kb:1", true},
		{"UTF-8", b64("é:ü"), "é", "ü", true},
		{"scheme in upper case", http.Header{"Authorization": {"BASIC " + base64.StdEncoding.EncodeToString([]byte("a:b"))}}, "a", "b", true},
		{"no colon", b64("kb_1"), "", "", false},
		{"none", http.Header{}, "", "", false},
		{"Bearer", http.Header{"Authorization": {"Bearer kb_1"}}, "", "", false},
		{"two headers", http.Header{"Authorization": {basic("a", "b"), basic("a", "b")}}, "", "", false},
		{"not base64", http.Header{"Authorization": {"Basic !!!!"}}, "", "", false},
		{"unpadded", http.Header{"Authorization": {"Basic " + base64.RawStdEncoding.EncodeToString([]byte("a:bc"))}}, "", "", false},
		{"URL alphabet", http.Header{"Authorization": {"Basic " + base64.URLEncoding.EncodeToString([]byte("a:\xfb\xff"))}}, "", "", false},
		{"trailing bits", http.Header{"Authorization": {"Basic YTpiZB=="}}, "", "", false},
		{"newline inside base64", http.Header{"Authorization": {"Basic YTpi\nYw=="}}, "", "", false},
		{"control character decoded", b64("a:b\r\nc"), "", "", false},
		{"NUL decoded", b64("a\x00:b"), "", "", false},
		{"C1 control decoded", b64("a:\u0085"), "", "", false},
		{"not UTF-8", b64("a:\xff"), "", "", false},
		{"empty", http.Header{"Authorization": {"Basic "}}, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, password, ok := vendors.BasicCredential(tc.header)
			if user != tc.user || password != tc.password || ok != tc.ok {
				t.Errorf("BasicCredential = %q, %q, %v, want %q, %q, %v", user, password, ok, tc.user, tc.password, tc.ok)
			}
		})
	}
}

func TestSetCredential(t *testing.T) {
	req := sdkRequest("https://kb_1:pw@api.example.com/x", "Bearer kb_1")
	req.Header["authorization"] = []string{"Bearer kb_2"}
	req.Header.Set("Stripe-Account", "acct_1")
	vendors.SetCredential(req, "Bearer secret")
	if got := req.Header["Authorization"]; !slices.Equal(got, []string{"Bearer secret"}) {
		t.Errorf("Authorization = %q", got)
	}
	if len(req.Header) != 2 {
		t.Errorf("headers %q, want Authorization and Stripe-Account: another spelling survived", vendors.SortedKeys(req.Header))
	}
	if req.URL.User != nil {
		t.Errorf("URL user %v survived", req.URL.User)
	}
	if req.Header.Get("Stripe-Account") != "acct_1" {
		t.Error("another header was removed")
	}

	bare := &http.Request{}
	vendors.SetCredential(bare, "Bearer secret")
	if bare.Header.Get("Authorization") != "Bearer secret" {
		t.Error("no header set on a request without Header or URL")
	}
}

func TestFingerprint(t *testing.T) {
	fp := regexp.MustCompile(`^fp_[0-9a-f]{8}$`)
	a := vendors.Fingerprint("sk_" + "live_" + strings.Repeat("x", 24))
	b := vendors.Fingerprint("sk_" + "live_" + strings.Repeat("x", 23) + "y")
	if !fp.MatchString(a) || !fp.MatchString(b) {
		t.Fatalf("fingerprints %q, %q, want fp_ and 8 hex digits", a, b)
	}
	if a == b {
		t.Error("two secrets have one fingerprint")
	}
	if vendors.Fingerprint("") != "fp_e3b0c442" {
		t.Errorf("Fingerprint(\"\") = %q, want the SHA-256 of nothing", vendors.Fingerprint(""))
	}
	if strings.Contains(a, "xxxx") {
		t.Error("the fingerprint shows the secret")
	}
}

func ExampleFingerprint() {
	presented := "sk_" + "test_" + strings.Repeat("x", 24)
	fmt.Println(vendors.Fingerprint(presented))
	// Output: fp_e863c590
}

func FuzzBasicCredential(f *testing.F) {
	f.Add(basic("AC1", "kb_1"))
	f.Add("Basic YTpi")
	f.Add("Bearer kb_1")
	f.Add("basic Og==")
	f.Add("Basic YTpi\r\nYw==")
	f.Fuzz(func(t *testing.T, value string) {
		h := http.Header{"Authorization": {value}}
		if user, password, ok := vendors.BasicCredential(h); ok {
			// What was read must be what an SDK would have sent.
			again := http.Header{"Authorization": {basic(user, password)}}
			u2, p2, ok2 := vendors.BasicCredential(again)
			if !ok2 || u2 != user || p2 != password || strings.Contains(user, ":") {
				t.Errorf("%q read as %q, %q, which does not round-trip", value, user, password)
			}
		}
		if token, ok := vendors.BearerCredential(h); ok {
			if token == "" || strings.ContainsAny(token, " \t\r\n") || !strings.HasSuffix(value, token) {
				t.Errorf("%q read as token %q", value, token)
			}
		}
		// The request the proxy builds from any value must not panic.
		req := &http.Request{Header: h, URL: &url.URL{Path: "/"}}
		vendors.SetCredential(req, "Bearer x")
	})
}
