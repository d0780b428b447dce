package vendors

import (
	"net/url"
	"strings"
)

// codeBadParams is the refusal code of an encoded form or query that does
// not parse strictly. The vendor packages use the same code for it.
const codeBadParams = "keybrake_bad_params"

// FormPairs decodes raw, an encoded form body or query string, strictly,
// and calls each with every name and value, unescaped, in the order they
// were sent. An empty raw has no pairs. It refuses, with an *Invalid of
// code keybrake_bad_params whose reason names the parameter, what
// url.ParseQuery refuses (";" as a separator, a bad escape), an empty pair
// ("&&", or "&" at an end) and a pair without "=": what Go's parser and a
// vendor's might read differently, Keybrake does not send.
//
// The name and value rules of each vendor (name syntax, repeated names,
// case, UTF-8) belong in each. FormPairs stops at the first error each
// returns and returns it unchanged. It calls each for a pair only when
// every pair before it was read, so a form with two faults is refused for
// the first, as a loop over the pairs would refuse it. Safe for concurrent
// use.
func FormPairs(raw string, each func(name, value string) error) error {
	if raw == "" {
		return nil
	}
	// url.ParseQuery is what policy code and net/http would use; whatever
	// it cannot read, Keybrake does not send. It fails only on a ";", a
	// "%" escape or too many pairs: without them, the map it would build
	// is not worth building.
	if mayNotParse(raw) {
		if _, err := url.ParseQuery(raw); err != nil {
			return Invalidf(codeBadParams, "parameters do not parse: %v", err)
		}
	}
	for rest, more := raw, true; more; {
		var pair string
		pair, rest, more = strings.Cut(rest, "&")
		if pair == "" {
			return Invalidf(codeBadParams, "parameters hold an empty pair (&&, or & at an end)")
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return Invalidf(codeBadParams, "parameter %q has no '='", Truncate(pair, QuoteLimit))
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			return Invalidf(codeBadParams, "parameter name %q: %v", Truncate(k, QuoteLimit), err)
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return Invalidf(codeBadParams, "parameter %q: %v", Truncate(name, QuoteLimit), err)
		}
		if err := each(name, value); err != nil {
			return err
		}
	}
	return nil
}

// mayNotParse reports whether url.ParseQuery could refuse raw: whether it
// holds a ";", a "%" or more pairs than a GODEBUG=urlmaxqueryparams
// limit that still lets a vendor's SDK work might allow (64; ParseQuery's
// own limit is 10000).
func mayNotParse(raw string) bool {
	return strings.ContainsAny(raw, ";%") || strings.Count(raw, "&") >= 63
}
