package resend

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

var _ vendors.Custody = Vendor{}

// SecretName is the environment variable Resend's SDKs read the API key
// from.
const SecretName = "RESEND_API_KEY"

// SecretNames returns ["RESEND_API_KEY"].
func (Vendor) SecretNames() []string { return []string{SecretName} }

// PresentedKey returns the key on a request as resend-node and resend-go
// send it, "Authorization: Bearer <key>". ok is false for anything else
// (see vendors.BearerCredential).
func (Vendor) PresentedKey(h http.Header) (string, bool) {
	return vendors.BearerCredential(h)
}

// keyRE is a Resend API key (info.go's secrets) as a whole string: re_, an
// ID, _, a secret. A Stripe refund ID (re_123) has no second part.
var keyRE = regexp.MustCompile(`^(?:` + strings.Join(secrets, "|") + `)$`)

// LooksLikeSecret reports whether key is a Resend API key,
// re_<id>_<secret>. A Stripe refund ID (re_3Mtw...) and a kb_ key are not.
func (Vendor) LooksLikeSecret(key string) bool { return keyRE.MatchString(key) }

// shapes are the distinct paths of the endpoint table, a "{id}" segment
// standing for any one segment.
var shapes = func() [][]string {
	var out [][]string
	for _, e := range endpoints {
		if !slices.ContainsFunc(out, func(s []string) bool { return slices.Equal(s, e.segments) }) {
			out = append(out, e.segments)
		}
	}
	return out
}()

// Host returns api.resend.com, Resend's one host, for a path of the shape
// of one of the endpoint table's (every path resend-go v2.28 calls and
// every path of Resend's OpenAPI spec 1.5.0: /emails, /emails/{id},
// /emails/batch, /broadcasts/{id}/send, /domains, /api-keys,
// /oauth/grants, /audiences/{id}/contacts, ...), an ID standing for any
// non-empty segment: Classify checks IDs. Any other path is not served,
// so none of Resend's unknown paths can take another vendor's (Stripe
// OAuth's /oauth/token beside Resend's /oauth/grants).
func (Vendor) Host(path string) (string, bool) {
	segs := strings.Split(path, "/")
	if len(segs) < 2 || segs[0] != "" {
		return "", false
	}
	segs = segs[1:]
	for _, shape := range shapes {
		if fits(shape, segs) {
			return APIHost, true
		}
	}
	return "", false
}

func fits(shape, segs []string) bool {
	if len(shape) != len(segs) {
		return false
	}
	for i, s := range segs {
		if s == "" || shape[i] != "{id}" && shape[i] != s {
			return false
		}
	}
	return true
}

// Present sets "Authorization: Bearer <RESEND_API_KEY>" on req, replacing
// any credential on it (vendors.SetCredential). It refuses, wrapping
// vendors.ErrNoSecret, a key that is missing or not of Resend's form
// (re_<id>_<secret>), so that a Keybrake key or a Stripe ID put there by
// mistake is never sent. Every path takes the one key, so no request is
// refused for what it asks.
func (Vendor) Present(req *http.Request, secret map[string]string) error {
	key := secret[SecretName]
	switch {
	case key == "":
		return fmt.Errorf("resend: %s is not set: %w", SecretName, vendors.ErrNoSecret)
	case !keyRE.MatchString(key):
		return fmt.Errorf("resend: %s (%s) is not a Resend API key (re_..._...): %w", SecretName, vendors.Fingerprint(key), vendors.ErrNoSecret)
	}
	vendors.SetCredential(req, "Bearer "+key)
	return nil
}
