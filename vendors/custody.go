package vendors

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Custody is implemented by vendors whose calls Keybrake's proxy can make
// for an agent while holding the vendor's secret itself.
//
// The proxy (keybrake serve) receives a call from the vendor's official
// SDK, pointed at it, with a Keybrake agent key (kb_...) where the SDK
// puts the vendor's secret. It asks the vendor's Custody where the SDK put
// the key (PresentedKey), which official host the path belongs to (Host),
// and, below the brake, after every decision, sets the real secret on what
// it sends (Present). Each SDK presents a credential its own way and each
// vendor's secrets have their own form, so this is vendor knowledge, kept
// in the vendor's folder like the rest of it.
//
// Like every vendor method, Custody's are stateless and safe for
// concurrent use; the zero value of a built-in vendor implements it. They
// fail closed: a header they cannot read with certainty presents no key,
// a path they do not know belongs to no host, and a request or secret
// Present has any doubt about is refused with an error.
//
// Two vendors must never serve the same path: the proxy answers a call in
// the error format of the first vendor, in name order, whose Host serves
// its path, and refuses a key for any other vendor.
type Custody interface {
	// SecretNames are the environment variables holding the vendor's
	// secret, by its SDKs' conventions, in order: ["STRIPE_SECRET_KEY"],
	// ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"], ["RESEND_API_KEY"].
	// A fresh slice each time.
	SecretNames() []string

	// PresentedKey returns the credential an agent's SDK put on a
	// request, the way that vendor's SDKs send it. ok is false when there
	// is none or the header is malformed (two Authorization headers, a
	// scheme it does not use, bad base64).
	PresentedKey(h http.Header) (key string, ok bool)

	// LooksLikeSecret reports whether key has the form of one of the
	// vendor's own secrets (an agent holding the real secret, which the
	// proxy refuses). It is false for every Keybrake agent key (kb_...).
	LooksLikeSecret(key string) bool

	// Host returns the official host a proxied path belongs to
	// ("api.stripe.com"), ok false for a path the vendor does not serve.
	// path is the escaped path, without query; a path that more than one
	// of the vendor's hosts serves (the method would tell) is not served.
	Host(path string) (host string, ok bool)

	// Present sets the vendor's real credential on an outgoing request (a
	// clone the caller owns), replacing any credential on it, from secret
	// (values by SecretNames). It refuses, with an error, a request the
	// secret cannot be used for (Twilio: the account SID in the path is
	// not the one held) and a secret that is incomplete. Its errors wrap
	// ErrSecretMismatch or ErrNoSecret; on an error the request must not
	// be sent. It does not read or close the request's body.
	Present(req *http.Request, secret map[string]string) error
}

var (
	// ErrNoSecret is wrapped by Present's errors when the secret it is
	// given is incomplete: a name of SecretNames missing or empty, or a
	// value not of the vendor's form (so not sent anywhere).
	ErrNoSecret = errors.New("the vendor's secret is incomplete")

	// ErrSecretMismatch is wrapped by Present's errors when the request
	// cannot be made with the secret held: it names another account than
	// the one the secret is for, or carries a credential that says so.
	ErrSecretMismatch = errors.New("the request is not one the vendor's secret held can make")
)

// Fingerprint names a secret without showing it, for saying which
// vendor-format secret an agent presented: "fp_" and the first 8 hex
// digits of its SHA-256. Eight digits tell a handful of secrets apart and
// are far too few to search for one. Safe for concurrent use.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "fp_" + hex.EncodeToString(sum[:4])
}

// authorization returns a header's one Authorization value, under any
// spelling of the name (a map built by hand may hold "authorization"
// beside "Authorization"); ok is false for none or more than one.
func authorization(h http.Header) (string, bool) {
	var found []string
	for k, vs := range h {
		if http.CanonicalHeaderKey(k) == "Authorization" {
			found = append(found, vs...)
		}
	}
	if len(found) != 1 {
		return "", false
	}
	return found[0], true
}

// credentials splits an Authorization value into its scheme, compared
// without case as RFC 9110 says, and credentials: one space between them,
// the credentials visible ASCII without spaces.
func credentials(h http.Header, scheme string) (string, bool) {
	v, ok := authorization(h)
	if !ok {
		return "", false
	}
	s, cred, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(s, scheme) || cred == "" {
		return "", false
	}
	for i := 0; i < len(cred); i++ {
		if cred[i] <= ' ' || cred[i] > '~' {
			return "", false
		}
	}
	return cred, true
}

// BearerCredential returns the token of a request's Authorization header
// when it is exactly one header, "Bearer " and a token of visible ASCII
// (the scheme in any case). ok is false otherwise: no header, two, another
// scheme, an empty token, a space or control character anywhere in it.
// Safe for concurrent use.
func BearerCredential(h http.Header) (token string, ok bool) {
	return credentials(h, "Bearer")
}

// BasicCredential returns the user and password of a request's
// Authorization header when it is exactly one header, "Basic " and the
// padded standard base64 of user ":" password (RFC 7617), both valid UTF-8
// without control characters. The user is what comes before the first
// colon; either may be empty. ok is false otherwise: no header, two,
// another scheme, base64 that is not strictly standard and padded, no
// colon. Safe for concurrent use.
func BasicCredential(h http.Header) (user, password string, ok bool) {
	cred, ok := credentials(h, "Basic")
	if !ok {
		return "", "", false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(cred)
	if err != nil || !utf8.Valid(raw) {
		return "", "", false
	}
	for _, r := range string(raw) {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", "", false
		}
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return user, password, true
}

// SetCredential makes value req's one Authorization header: it removes
// every Authorization header, under any spelling of the name, and any user
// and password in req.URL (which net/http would otherwise send when no
// header is set), then sets value. req is a clone the caller owns;
// req.URL may be nil. It is how a Custody's Present replaces the agent's
// credential.
func SetCredential(req *http.Request, value string) {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	for k := range req.Header {
		if http.CanonicalHeaderKey(k) == "Authorization" {
			delete(req.Header, k)
		}
	}
	if req.URL != nil {
		req.URL.User = nil
	}
	req.Header.Set("Authorization", value)
}
