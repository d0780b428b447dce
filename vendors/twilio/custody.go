package twilio

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

var _ vendors.Custody = Vendor{}

// The environment variables Twilio's SDKs and CLI read the account's
// credentials from.
const (
	AccountSIDName = "TWILIO_ACCOUNT_SID"
	AuthTokenName  = "TWILIO_AUTH_TOKEN"
)

// SecretNames returns ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"].
func (Vendor) SecretNames() []string { return []string{AccountSIDName, AuthTokenName} }

// PresentedKey returns the password of the request's Basic credential:
// Twilio's SDKs send Basic AccountSid:AuthToken (or ApiKeySid:ApiKeySecret),
// and an agent puts its Keybrake key where the token goes, leaving the
// account SID as the user for Present to check. ok is false for anything
// but one well-formed Basic header (vendors.BasicCredential) with a user
// and a password.
func (Vendor) PresentedKey(h http.Header) (string, bool) {
	user, password, ok := vendors.BasicCredential(h)
	if !ok || user == "" || password == "" {
		return "", false
	}
	return password, true
}

var (
	// apiKeySecretRE is an API key's secret, 32 letters and digits, which
	// also covers an auth token (32 hex digits); apiKeySIDRE is an API
	// key's SID, which twilio-go's users pass where the account SID goes.
	// Case is not checked: a secret spelt in upper case is still the
	// agent holding one.
	apiKeySecretRE = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)
	apiKeySIDRE    = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	// tokenRE is what Present sends as a token: letters and digits, as
	// twilio-go requires of credentials.
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// LooksLikeSecret reports whether key has the form of a Twilio credential:
// an auth token (32 hex digits), an API key's secret (32 letters and
// digits) or an API key SID (SK and 32 hex digits). A kb_ key has an
// underscore, which none of them has.
func (Vendor) LooksLikeSecret(key string) bool {
	return apiKeySecretRE.MatchString(key) || apiKeySIDRE.MatchString(key)
}

// productPaths says which product serves a path, by its version and
// first collection, as twilio-go v1.31 addresses the products whose hosts
// Keybrake accepts. A collection under Services takes a service SID of
// its product next (MG for Messaging, VA for Verify) or one of its
// literals: Chat, Conversations, Notify, Sync, Proxy, Serverless and
// Intelligence also have /v1/Services or /v2/Services, with SIDs of their
// own (IS, KS, ZS, GA), and their calls must not reach another product.
var productPaths = map[string]struct {
	host     string
	sid      *regexp.Regexp // the segment after the collection, when set
	literals []string       // or one of these
}{
	"v1/Services":       {host: MessagingHost, sid: regexp.MustCompile(`^MG[0-9a-f]{32}$`), literals: []string{"PreregisteredUsa2p", "Usecases"}},
	"v1/Deactivations":  {host: MessagingHost},
	"v1/LinkShortening": {host: MessagingHost},
	"v1/Tollfree":       {host: MessagingHost},
	"v1/a2p":            {host: MessagingHost},
	"v2/Channels":       {host: MessagingHost},
	"v2/Indicators":     {host: MessagingHost},
	"v2/LinkShortening": {host: MessagingHost},
	"v3/Indicators":     {host: MessagingHost},
	"v2/Services":       {host: VerifyHost, sid: sidPatterns["verify_service"]},
	"v2/Attempts":       {host: VerifyHost},
	"v2/Forms":          {host: VerifyHost},
	"v2/SafeList":       {host: VerifyHost},
	"v2/Templates":      {host: VerifyHost},
}

// Host returns the product host a path belongs to, as twilio-go v1.31
// addresses them:
//
//	/2010-04-01/Accounts.json, /2010-04-01/Accounts/...           api.twilio.com
//	/v1/Services (then an MG SID, PreregisteredUsa2p or Usecases)  messaging.twilio.com
//	/v1/Deactivations, /v1/LinkShortening, /v1/Tollfree, /v1/a2p   messaging.twilio.com
//	/v2/Channels, /v2/Indicators, /v2/LinkShortening               messaging.twilio.com
//	/v3/Indicators                                                 messaging.twilio.com
//	/v2/Services (then a VA SID)                                   verify.twilio.com
//	/v2/Attempts, /v2/Forms, /v2/SafeList, /v2/Templates           verify.twilio.com
//
// Each collection is served as itself and every path under it. Anything
// else is not served: another product's paths (a Chat service IS...
// under /v1/Services, Lookups' /v2/PhoneNumbers), a collection in
// another case, an empty segment. The host is the product's own, without
// edge or region.
//
// The bare collections /v1/Services and /v2/Services are also where
// Chat, Conversations, Notify, Sync, Proxy, Serverless and Intelligence
// list and create their services; of the products Keybrake accepts only
// Messaging and Verify have them, so they are served as theirs, and such
// a call from another product's SDK lists or creates a Messaging or
// Verify service instead.
func (Vendor) Host(path string) (string, bool) {
	segs := strings.Split(path, "/")
	if len(segs) < 3 || segs[0] != "" {
		return "", false
	}
	for _, s := range segs[1:] {
		if s == "" {
			return "", false
		}
	}
	if segs[1] == "2010-04-01" {
		if segs[2] == "Accounts.json" && len(segs) == 3 || segs[2] == "Accounts" && len(segs) > 3 {
			return APIHost, true
		}
		return "", false
	}
	p, ok := productPaths[segs[1]+"/"+segs[2]]
	if !ok {
		return "", false
	}
	if p.sid != nil && len(segs) > 3 && !p.sid.MatchString(segs[3]) && !contains(p.literals, segs[3]) {
		return "", false
	}
	return p.host, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Present sets Basic TWILIO_ACCOUNT_SID:TWILIO_AUTH_TOKEN on req,
// replacing any credential on it (vendors.SetCredential). An auth token
// also opens the account's subaccounts, so Present first refuses,
// wrapping vendors.ErrSecretMismatch, a request for any other account
// than the one held:
//
//   - a /2010-04-01/Accounts/{Sid} path whose Sid is not
//     TWILIO_ACCOUNT_SID ("Accounts" read in any case, the Sid exactly,
//     without its ".json"); a /2010-04-01 path with an escape, or a dot or
//     empty segment, which Twilio might resolve to another account;
//   - a Basic credential the agent sent (still on req until Present
//     replaces it) whose user is not TWILIO_ACCOUNT_SID nor an API key
//     SID (SK...), or an Authorization header that is not one Basic
//     credential. A request without one (the caller removed it) is
//     judged by its path alone.
//
// It refuses, wrapping vendors.ErrNoSecret, a TWILIO_ACCOUNT_SID that is
// not AC and 32 lower-case hex digits and a TWILIO_AUTH_TOKEN that is
// empty or not letters and digits.
func (Vendor) Present(req *http.Request, secret map[string]string) error {
	sid, token := secret[AccountSIDName], secret[AuthTokenName]
	switch {
	case sid == "":
		return fmt.Errorf("twilio: %s is not set: %w", AccountSIDName, vendors.ErrNoSecret)
	case !sidPatterns["account"].MatchString(sid):
		return fmt.Errorf("twilio: %s %q is not an account SID (AC and 32 hex digits): %w", AccountSIDName, vendors.Truncate(sid, vendors.QuoteLimit), vendors.ErrNoSecret)
	case token == "":
		return fmt.Errorf("twilio: %s is not set: %w", AuthTokenName, vendors.ErrNoSecret)
	case !tokenRE.MatchString(token):
		return fmt.Errorf("twilio: %s (%s) is not letters and digits: %w", AuthTokenName, vendors.Fingerprint(token), vendors.ErrNoSecret)
	}
	if req.URL == nil {
		return fmt.Errorf("twilio: a request without a URL: %w", vendors.ErrSecretMismatch)
	}
	if err := checkAccountPath(req.URL.EscapedPath(), req.URL.Path, sid); err != nil {
		return err
	}
	if err := checkPresentedUser(req.Header, sid); err != nil {
		return err
	}
	vendors.SetCredential(req, "Basic "+base64.StdEncoding.EncodeToString([]byte(sid+":"+token)))
	return nil
}

// checkAccountPath refuses a /2010-04-01 path for another account than
// sid, or one Twilio might read as another's.
func checkAccountPath(escaped, decoded, sid string) error {
	segs := strings.Split(escaped, "/")
	if len(segs) < 2 || segs[1] != "2010-04-01" {
		return nil
	}
	if escaped != decoded {
		return fmt.Errorf("twilio: path %q has an escape; Keybrake cannot be sure which account it names: %w", vendors.Truncate(escaped, vendors.QuoteLimit), vendors.ErrSecretMismatch)
	}
	for _, s := range segs[1:] {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("twilio: path %q has an empty or dot segment; Keybrake cannot be sure which account it names: %w", vendors.Truncate(escaped, vendors.QuoteLimit), vendors.ErrSecretMismatch)
		}
	}
	if len(segs) < 4 || !strings.EqualFold(segs[2], "Accounts") {
		return nil
	}
	if got := strings.TrimSuffix(segs[3], ".json"); got != sid {
		return fmt.Errorf("twilio: the path names account %q, and the proxy holds the token of %s: %w", vendors.Truncate(got, vendors.QuoteLimit), sid, vendors.ErrSecretMismatch)
	}
	return nil
}

// checkPresentedUser refuses a credential the agent sent for another
// account than sid.
func checkPresentedUser(h http.Header, sid string) error {
	present := false
	for k := range h {
		if http.CanonicalHeaderKey(k) == "Authorization" {
			present = true
		}
	}
	if !present {
		return nil
	}
	user, _, ok := vendors.BasicCredential(h)
	switch {
	case !ok:
		return fmt.Errorf("twilio: the request's Authorization is not one Basic credential, so its account is unknown: %w", vendors.ErrSecretMismatch)
	case user == sid || apiKeySIDRE.MatchString(user):
		return nil
	}
	if sidPatterns["account"].MatchString(user) {
		return fmt.Errorf("twilio: the agent's SDK sent account %s, and the proxy holds the token of %s: %w", user, sid, vendors.ErrSecretMismatch)
	}
	// Not a SID: it may be a secret in the wrong place, so it is named by
	// its fingerprint only.
	return fmt.Errorf("twilio: the agent's SDK sent a user (%s) that is neither the account SID held, %s, nor an API key SID: %w", vendors.Fingerprint(user), sid, vendors.ErrSecretMismatch)
}
