package vendors

import (
	"fmt"
	"regexp"
	"strings"
)

// The matchers vendors share for their list keys (Key.Match): phone
// numbers, messaging senders and email addresses.

var (
	e164Number  = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	phonePrefix = regexp.MustCompile(`^\+[1-9][0-9]{0,14}\*$`)
	serviceSID  = regexp.MustCompile(`^MG[0-9a-f]{32}$`)
	// address is a bare lower-case email address or "@domain".
	address = regexp.MustCompile(`^([a-z0-9.!#$%&'*+/=?^_{|}~-]+)?@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
)

// PhoneDestinations matches E.164 numbers: an entry ending in * is a
// prefix ("+1*"); any other entry is one number, exactly.
var PhoneDestinations = &Matcher{
	Noun: "destination", Plural: "destinations",
	Check: func(s string) error {
		if e164Number.MatchString(s) || phonePrefix.MatchString(s) {
			return nil
		}
		return fmt.Errorf(`%q: want an E.164 number ("+15551234567") or a prefix ending in * ("+1*")`, s)
	},
	Match: func(entry, number string) bool {
		if prefix, ok := strings.CutSuffix(entry, "*"); ok {
			return strings.HasPrefix(number, prefix)
		}
		return entry == number
	},
}

// PhoneSenders matches senders exactly: an E.164 number or a messaging
// service SID (MG...).
var PhoneSenders = &Matcher{
	Noun: "sender", Plural: "senders",
	Check: func(s string) error {
		if e164Number.MatchString(s) || serviceSID.MatchString(s) {
			return nil
		}
		return fmt.Errorf(`%q: want an E.164 number or a messaging service SID (MG...)`, s)
	},
	Match: func(entry, value string) bool { return entry == value },
}

// EmailRecipients and EmailSenders match email addresses: an entry
// starting with @ is a domain, exactly (not its subdomains); any other
// entry is one address. Entries are written in lower case; values are
// compared in lower case.
var (
	EmailRecipients = emailMatcher("recipient", "recipients")
	EmailSenders    = emailMatcher("sender", "senders")
)

func emailMatcher(noun, plural string) *Matcher {
	return &Matcher{
		Noun: noun, Plural: plural,
		Check: func(s string) error {
			if strings.Contains(s, "*") {
				return fmt.Errorf(`%q: no wildcards; write a domain as "@example.com"`, s)
			}
			if s != strings.ToLower(s) || !address.MatchString(s) {
				return fmt.Errorf(`%q: want a lower-case address ("ops@example.com") or a domain ("@example.com")`, s)
			}
			return nil
		},
		Match: func(entry, addr string) bool {
			addr = strings.ToLower(addr)
			if strings.HasPrefix(entry, "@") {
				at := strings.LastIndexByte(addr, '@')
				return at >= 0 && addr[at:] == entry
			}
			return entry == addr
		},
	}
}
