package testenv

import (
	"net/http"

	"github.com/stripe/stripe-go/v76"
)

// StripeBackends returns stripe-go backends that send every call, whether
// the SDK means api.stripe.com, connect.stripe.com or files.stripe.com, to
// baseURL through hc (http.DefaultClient when nil), with at most maxRetries
// retries and the SDK's logging off. Use it with client.New(key, backends).
//
// The three backends are built one by one because
// stripe.NewBackendsWithConfig points all of them at api.stripe.com when
// given a config without a URL, and mutates the config it is given.
func StripeBackends(baseURL string, hc *http.Client, maxRetries int64) *stripe.Backends {
	if hc == nil {
		hc = http.DefaultClient
	}
	backend := func(t stripe.SupportedBackend) stripe.Backend {
		return stripe.GetBackendWithConfig(t, &stripe.BackendConfig{
			HTTPClient:        hc,
			URL:               stripe.String(baseURL),
			MaxNetworkRetries: stripe.Int64(maxRetries),
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
			EnableTelemetry:   stripe.Bool(false),
		})
	}
	return &stripe.Backends{
		API:     backend(stripe.APIBackend),
		Connect: backend(stripe.ConnectBackend),
		Uploads: backend(stripe.UploadsBackend),
	}
}
