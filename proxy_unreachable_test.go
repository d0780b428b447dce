package keybrake_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
)

const unreachablePolicy = `version: 1
agents:
  reader:
    stripe:
      allow: ["GET /v1/charges/{id}"]
    resend:
      allow: ["GET /emails/{id}"]
`

// A vendor the proxy cannot reach is answered 502 in that vendor's own
// error format, so the agent's SDK reads a vendor error it knows, and the
// call's record says nothing was sent.
func TestProxyAnswersAnUnreachableVendorInItsOwnFormat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused

	stripeKey, resendKey := "kb_"+strings.Repeat("s", 40), "kb_"+strings.Repeat("e", 40)
	kb := openBrake(t, unreachablePolicy, keybrake.Options{Endpoints: map[keybrake.Vendor]string{keybrake.Stripe: gone, keybrake.Resend: gone}})
	h, err := kb.Proxy(keybrake.ProxyOptions{
		Keys: keyTable{
			stripeKey: {keybrake.AgentKey{ID: "kbk_s", Agent: "reader", Vendor: keybrake.Stripe}, keybrake.KeyFound},
			resendKey: {keybrake.AgentKey{ID: "kbk_e", Agent: "reader", Vendor: keybrake.Resend}, keybrake.KeyFound},
		},
		Secret: func(v keybrake.Vendor, _ []string) (map[string]string, error) {
			if v == keybrake.Resend {
				return map[string]string{"RESEND_API_KEY": "re_" + "abc123_" + strings.Repeat("R", 24)}, nil
			}
			return map[string]string{"STRIPE_SECRET_KEY": stripeSecret}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	t.Run("stripe-go", func(t *testing.T) {
		_, err := stripeAt(srv.URL, stripeKey).Charges.Get("ch_1", nil)
		se, ok := err.(*stripego.Error)
		if !ok || se.HTTPStatusCode != http.StatusBadGateway || string(se.Code) != "keybrake_vendor_unreachable" ||
			!strings.Contains(se.Msg, "could not be reached") {
			t.Fatalf("stripe-go got %#v, want a *stripe.Error 502 keybrake_vendor_unreachable", err)
		}
	})
	t.Run("resend", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c", nil)
		req.Header.Set("Authorization", "Bearer "+resendKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e struct {
			StatusCode int    `json:"statusCode"`
			Name       string `json:"name"`
			Message    string `json:"message"`
		}
		if resp.StatusCode != http.StatusBadGateway || json.Unmarshal(body, &e) != nil || e.StatusCode != 502 ||
			e.Name != "keybrake_vendor_unreachable" || !strings.Contains(e.Message, "could not be reached") {
			t.Fatalf("answer %d %s, want Resend's error body with statusCode 502", resp.StatusCode, body)
		}
	})

	recs := dump(t, kb, audit.Query{})
	if len(recs) != 2 {
		t.Fatalf("%d records, want one a call", len(recs))
	}
	for _, r := range recs {
		if r.Outcome != audit.Released || !strings.Contains(r.Reason, "not sent") {
			t.Errorf("record of %s %s: %s %q, want released, not sent (the dial was refused)", r.Vendor, r.Path, r.Outcome, r.Reason)
		}
	}
}
