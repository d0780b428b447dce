package stripe

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

var _ vendors.Custody = Vendor{}

// SecretName is the environment variable Stripe's SDKs and CLI read the
// secret key from.
const SecretName = "STRIPE_SECRET_KEY"

// SecretNames returns ["STRIPE_SECRET_KEY"].
func (Vendor) SecretNames() []string { return []string{SecretName} }

// PresentedKey returns the key on a request as stripe-node, stripe-python
// and stripe-go send it, "Authorization: Bearer <key>", or as Stripe also
// accepts it (curl -u key:), Basic with the key as the user and an empty
// password. ok is false for anything else (see vendors.BearerCredential
// and vendors.BasicCredential), for a Basic password that is not empty and
// for an empty key.
func (Vendor) PresentedKey(h http.Header) (string, bool) {
	if key, ok := vendors.BearerCredential(h); ok {
		return key, true
	}
	user, password, ok := vendors.BasicCredential(h)
	if !ok || user == "" || password != "" {
		return "", false
	}
	return user, true
}

// secretRE is every credential format Stripe issues (info.go's secrets),
// as a whole string.
var secretRE = regexp.MustCompile(`^(?:` + strings.Join(secrets, "|") + `)$`)

// apiKeyRE is the part of them Stripe's API takes as a key: secret and
// restricted keys, test and live. A webhook signing secret is not one.
var apiKeyRE = regexp.MustCompile(`^` + secrets[0] + `$`)

// LooksLikeSecret reports whether key is a Stripe secret or restricted
// key (sk_live_, sk_test_, rk_live_, rk_test_) or a webhook signing secret
// (whsec_): the formats audit records redact. A publishable key (pk_) is
// not secret; a kb_ key is not Stripe's.
func (Vendor) LooksLikeSecret(key string) bool { return secretRE.MatchString(key) }

// apiResources are the first segments after /v1/ of every path stripe-go
// v76 calls. The list is explicit rather than "any lower-case name"
// because other vendors' /v1/ paths have that shape too (Twilio Messaging's
// /v1/a2p), and a path must belong to one vendor only.
var apiResources = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range strings.Fields(`
		account account_links account_sessions accounts apple_pay application_fees apps
		balance balance_transactions billing billing_portal charges checkout climate
		confirmation_tokens country_specs coupons credit_notes customer_sessions customers
		disputes entitlements ephemeral_keys events file_links files financial_connections
		forwarding identity invoiceitems invoices issuing mandates payment_intents
		payment_links payment_method_configurations payment_method_domains payment_methods
		payouts plans prices products promotion_codes quotes radar refunds reporting reviews
		setup_attempts setup_intents shipping_rates sigma sources subscription_items
		subscription_schedules subscriptions tax tax_codes tax_ids tax_rates terminal
		test_helpers tokens topups transfers treasury webhook_endpoints`) {
		m[r] = true
	}
	return m
}()

// Host returns the host a path belongs to, as stripe-go v76 addresses it:
//
//	/oauth/token, /oauth/deauthorize     connect.stripe.com
//	/v1/quotes/{quote}/pdf               files.stripe.com
//	/v1/files                            not served: stripe-go uploads (POST) to files.stripe.com
//	                                     and lists (GET) on api.stripe.com, and a path cannot say which
//	/v1/files/{file}/...                 not served (file contents are downloaded from files.stripe.com)
//	/v1/{resource}, /v1/{resource}/...   api.stripe.com, for the resources stripe-go v76 calls
//	                                     (charges, refunds, files/{file}, ...)
//
// Anything else (an unknown resource, /v2/, a bare /v1/, a trailing slash
// or empty segment) is not served. Keybrake refuses multipart uploads in
// any case, so nothing an agent can send through the brake is lost to
// /v1/files.
func (Vendor) Host(path string) (string, bool) {
	switch path {
	case "/oauth/token", "/oauth/deauthorize":
		return ConnectHost, true
	}
	segs := strings.Split(path, "/")
	if len(segs) < 3 || segs[0] != "" || segs[1] != "v1" || !apiResources[segs[2]] {
		return "", false
	}
	for _, s := range segs[3:] {
		if s == "" {
			return "", false
		}
	}
	switch {
	case segs[2] == "files" && len(segs) != 4:
		return "", false
	case segs[2] == "quotes" && len(segs) == 5 && segs[4] == "pdf":
		return UploadsHost, true
	}
	return APIHost, true
}

// Present sets "Authorization: Bearer <STRIPE_SECRET_KEY>" on req,
// replacing any credential on it (vendors.SetCredential). It refuses,
// wrapping vendors.ErrNoSecret, a secret that is missing or is not a
// secret or restricted key (sk_ or rk_, test or live): a publishable key,
// a webhook secret or a Keybrake key put there by mistake is never sent.
// Stripe's keys are for one account each, named by none of its paths, so
// every request the key can make is one it may be given for.
func (Vendor) Present(req *http.Request, secret map[string]string) error {
	key := secret[SecretName]
	switch {
	case key == "":
		return fmt.Errorf("stripe: %s is not set: %w", SecretName, vendors.ErrNoSecret)
	case !apiKeyRE.MatchString(key):
		return fmt.Errorf("stripe: %s (%s) is not a secret or restricted key (sk_..., rk_...): %w", SecretName, vendors.Fingerprint(key), vendors.ErrNoSecret)
	}
	vendors.SetCredential(req, "Bearer "+key)
	return nil
}
