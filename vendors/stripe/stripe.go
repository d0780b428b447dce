package stripe

import (
	"net/http"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/keybrake/keybrake/vendors"
)

// The official hosts stripe-go talks to: the API, OAuth for Connect, and
// file uploads.
const (
	APIHost     = "api.stripe.com"
	ConnectHost = "connect.stripe.com"
	UploadsHost = "files.stripe.com"
)

// Vendor is Keybrake's knowledge of Stripe. The zero value is ready to use;
// it holds no state and is safe for concurrent use.
type Vendor struct{}

var _ vendors.Vendor = Vendor{}

// Name returns "stripe", the vendor's name in policies and audit records.
func (Vendor) Name() string { return "stripe" }

// Hosts returns the three hosts stripe-go v76 calls. A fresh slice each
// time, so a caller cannot change another's.
func (Vendor) Hosts() []string { return []string{APIHost, ConnectHost, UploadsHost} }

// Backends returns complete stripe-go backends that send every request
// through hc: API on https://api.stripe.com, Connect on
// https://connect.stripe.com and Uploads on https://files.stripe.com, with
// stripe-go's default retries and logger. Wrapping an existing setup is one
// line:
//
//	sc := client.New(key, stripe.Backends(kb.HTTPClient("refund-bot", keybrake.Stripe)))
//
// Each backend gets its own BackendConfig because
// stripego.NewBackendsWithConfig writes the first backend's URL into the
// shared config and so would point all three at api.stripe.com.
//
// Backends panics if hc is nil: stripe-go would silently fall back to its
// own client and every call would go around Keybrake.
func Backends(hc *http.Client) *stripego.Backends {
	if hc == nil {
		panic("stripe: Backends needs the Keybrake *http.Client, got nil")
	}
	backend := func(t stripego.SupportedBackend, url string) stripego.Backend {
		return stripego.GetBackendWithConfig(t, &stripego.BackendConfig{
			HTTPClient: hc,
			URL:        stripego.String(url),
		})
	}
	return &stripego.Backends{
		API:     backend(stripego.APIBackend, stripego.APIURL),
		Connect: backend(stripego.ConnectBackend, stripego.ConnectURL),
		Uploads: backend(stripego.UploadsBackend, stripego.UploadsURL),
	}
}

// LookupHeader pins the API version of Keybrake's own lookups to the one
// this package reads (stripe-go v76's), whatever Stripe-Version the agent
// sends: an older version answers refunds without latest_charge, and an
// agent could otherwise shape the answers Keybrake decides by.
func (Vendor) LookupHeader() http.Header {
	return http.Header{"Stripe-Version": {stripego.APIVersion}}
}

var _ vendors.LookupHeaderer = Vendor{}
