package resend

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	resendgo "github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake/vendors"
)

// Keys of Resend's form, built from parts so that no scanner takes them
// for real ones.
var (
	heldKey    = "re_" + "AbC123" + "_" + strings.Repeat("y", 24)
	custodyKey = "kb_" + strings.Repeat("0123456789abcdef", 2)
)

func TestCustodyPresentedKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		want   string
		ok     bool
	}{
		{"Bearer, as resend-node and resend-go send it", http.Header{"Authorization": {"Bearer " + custodyKey}}, custodyKey, true},
		{"a real key is still what was presented", http.Header{"Authorization": {"Bearer " + heldKey}}, heldKey, true},
		{"a header spelt in lower case", http.Header{"authorization": {"Bearer " + custodyKey}}, custodyKey, true},
		{"no header", http.Header{}, "", false},
		{"two headers", http.Header{"Authorization": {"Bearer " + custodyKey, "Bearer " + heldKey}}, "", false},
		{"Basic", http.Header{"Authorization": {"Basic a2JfMTo="}}, "", false},
		{"a bare key", http.Header{"Authorization": {custodyKey}}, "", false},
		{"empty Bearer", http.Header{"Authorization": {"Bearer "}}, "", false},
		{"a space in the key", http.Header{"Authorization": {"Bearer kb_1 kb_2"}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Vendor{}.PresentedKey(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Errorf("PresentedKey = %q, %v, want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

type custodyCapture func(*http.Request)

func (f custodyCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	f(req)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}`)), Request: req}, nil
}

// TestCustodyWithResendGo reads the key off a request resend-go built and
// has Present replace it.
func TestCustodyWithResendGo(t *testing.T) {
	var sent *http.Request
	rc := resendgo.NewCustomClient(&http.Client{Transport: custodyCapture(func(req *http.Request) {
		if key, ok := (Vendor{}).PresentedKey(req.Header); !ok || key != custodyKey {
			t.Errorf("PresentedKey of resend-go's request = %q, %v, want %q", key, ok, custodyKey)
		}
		if host, ok := (Vendor{}).Host(req.URL.EscapedPath()); !ok || host != req.URL.Host {
			t.Errorf("Host(%q) = %q, %v, want %q", req.URL.EscapedPath(), host, ok, req.URL.Host)
		}
		sent = req.Clone(req.Context())
		if err := (Vendor{}).Present(sent, map[string]string{SecretName: heldKey}); err != nil {
			t.Error(err)
		}
	})}, custodyKey)
	if _, err := rc.Emails.Send(&resendgo.SendEmailRequest{From: "a@example.com", To: []string{"b@example.com"}, Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	if got := sent.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+heldKey {
		t.Errorf("sent Authorization %q", got)
	}
}

func TestCustodyLooksLikeSecret(t *testing.T) {
	for key, want := range map[string]bool{
		heldKey:                 true,
		"re_" + "a" + "_" + "b": true,

		"re_123":                      false, // a Stripe refund
		"re_3MtwBwLkdIwHu7ix28a3tqPa": false, // a Stripe refund, as Stripe writes them
		"pyr_1":                       false,
		custodyKey:                    false,
		"kb_re_" + "a_" + strings.Repeat("b", 24): false,
		"re_":      false,
		"re__x":    false,
		"re_x_":    false,
		"re_x_y_z": false,
		"re_x_y-z": false,
		"Re_x_y":   false,
		"":         false,
	} {
		if got := (Vendor{}).LooksLikeSecret(key); got != want {
			t.Errorf("LooksLikeSecret(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestCustodyHost(t *testing.T) {
	id := "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
	for path, want := range map[string]string{
		"/emails":                              APIHost,
		"/emails/batch":                        APIHost,
		"/emails/" + id:                        APIHost,
		"/emails/" + id + "/cancel":            APIHost,
		"/emails/receiving/" + id:              APIHost,
		"/broadcasts":                          APIHost,
		"/broadcasts/" + id + "/send":          APIHost,
		"/domains/" + id + "/verify":           APIHost,
		"/api-keys":                            APIHost,
		"/audiences/" + id + "/contacts/" + id: APIHost,
		"/contacts/imports":                    APIHost,
		"/oauth/grants":                        APIHost,
		"/oauth/grants/" + id:                  APIHost,
		"/events":                              APIHost,
		"/suppressions/batch/add":              APIHost,
		"/emails/not-a-uuid":                   APIHost, // an ID's form is Classify's to check

		"/oauth/token":                  "", // Stripe Connect
		"/oauth/deauthorize":            "",
		"/v1/charges":                   "",
		"/v1/Services":                  "",
		"/2010-04-01/Accounts.json":     "",
		"/emails/":                      "",
		"/emails//send":                 "",
		"/broadcasts/" + id + "/send/x": "",
		"/Emails":                       "",
		"/unknown":                      "",
		"/emails/" + id + "/attachments/" + id + "/x": "",
		"emails": "",
		"":       "",
		"/":      "",
	} {
		host, ok := Vendor{}.Host(path)
		if host != want || ok != (want != "") {
			t.Errorf("Host(%q) = %q, %v, want %q", path, host, ok, want)
		}
	}
	for _, e := range endpoints {
		path := strings.ReplaceAll(e.template, "{id}", id)
		if host, ok := (Vendor{}).Host(path); !ok || host != APIHost {
			t.Errorf("Host(%q), a path of the endpoint table, = %q, %v", path, host, ok)
		}
	}
}

func TestCustodyPresent(t *testing.T) {
	req, err := http.NewRequest("POST", "https://"+custodyKey+"@api.resend.com/emails", strings.NewReader(`{"to":"b@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+custodyKey)
	req.Header["authorization"] = []string{"Bearer x"}
	req.Header.Set("Idempotency-Key", "k1")
	if err := (Vendor{}).Present(req, map[string]string{SecretName: heldKey}); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+heldKey {
		t.Errorf("Authorization = %q", got)
	}
	if len(req.Header) != 2 || req.URL.User != nil {
		t.Errorf("headers %q, user info %v: an agent credential survived", vendors.SortedKeys(req.Header), req.URL.User)
	}
	if req.Header.Get("Idempotency-Key") != "k1" {
		t.Error("Present removed another header")
	}
	if body, _ := io.ReadAll(req.Body); string(body) != `{"to":"b@example.com"}` {
		t.Errorf("body %q changed", body)
	}
}

func TestCustodyPresentRefuses(t *testing.T) {
	for name, secret := range map[string]map[string]string{
		"nil":                nil,
		"missing":            {},
		"empty":              {SecretName: ""},
		"a Stripe refund ID": {SecretName: "re_123"},
		"a Keybrake key":     {SecretName: custodyKey},
		"a header injection": {SecretName: heldKey + "\r\nX: y"},
		"a Stripe key":       {"STRIPE_SECRET_KEY": "sk_" + "test_" + strings.Repeat("y", 24)},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://api.resend.com/emails", nil)
			req.Header.Set("Authorization", "Bearer "+custodyKey)
			err := Vendor{}.Present(req, secret)
			if !errors.Is(err, vendors.ErrNoSecret) {
				t.Fatalf("Present = %v, want ErrNoSecret", err)
			}
			if strings.Contains(err.Error(), strings.Repeat("y", 24)) {
				t.Errorf("the error shows the key: %v", err)
			}
			if got := req.Header.Get("Authorization"); got != "Bearer "+custodyKey {
				t.Errorf("a refused Present set Authorization %q", got)
			}
		})
	}
}
