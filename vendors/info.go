package vendors

import (
	"fmt"
)

// Info is everything the shared code needs to know about a vendor beyond
// the Vendor methods, as the vendor declares it: the policy keys its grants
// and its shared section take, the items its prices list, how a priced call
// counts, where its responses carry a request ID, what its credentials look
// like, and a line of help. The policy parser, the scope and price checks,
// the transport and the redaction read it; none of them names a vendor.
// The help texts are for people (documentation and tools; the CLI lists
// the vendors by name today). A zero Info is valid: a vendor whose grants hold only the common
// keys (daily_cap, per_call_max, daily_count, allow) and whose calls are
// never priced by the policy.
type Info struct {
	// Help is one line for people: what the vendor is and what a policy
	// can say of it beyond the common keys.
	Help string

	// Grant are the keys an agent's grant for the vendor may hold beyond
	// the common ones, in the order their checks run.
	Grant []Key

	// Shared are the keys the vendor's section under vendors: may hold
	// beyond daily_cap, daily_count and prices: settings that Units reads
	// (Kind CountSetting or FlagSetting).
	Shared []Key

	// Prices are the items a policy may price under vendors.NAME.prices,
	// by destination prefix: "sms", "email". A call the vendor classifies
	// as Priced names one of them (or an item Units turns into one).
	Prices []string

	// Units turns a priced call into the item and the quantity its price
	// counts, by the policy's shared settings for the vendor: a Twilio
	// call without TimeLimit counts assume_call_minutes minutes, a Resend
	// broadcast broadcast_emails emails. It must be pure. An error it
	// returns, an *Unpriced, refuses the call. nil: the call's own item
	// and quantity, and an unbounded quantity is refused.
	Units func(p Priced, s Settings) (item string, quantity int64, err error)

	// RequestIDHeaders are the response headers that carry the vendor's
	// request ID, tried in order, for the audit record.
	RequestIDHeaders []string

	// ReplayHeader is the response header a vendor sets to "true" on a
	// 2xx answer it replays from an earlier request with the same
	// idempotency key ("Idempotent-Replayed" for Stripe): such an answer
	// moved nothing new, whatever its body says. "" for a vendor that does
	// not say. Keybrake replays what it knows to be a retry without
	// counting it, and settles the retry of an attempt it recorded (an
	// Unknown one it takes over) from the replayed body, which is that
	// attempt's money; the header settles at nothing only a call it
	// reserved as new: a key it has forgotten (a retry after
	// store.ReplayWindow) that the vendor still remembers.
	ReplayHeader string

	// Secrets are regular expressions matching, as whole words, the
	// credentials the vendor issues ("sk_live_..."), so that no audit
	// record keeps one (RedactSecrets). Credentials without a format
	// (Twilio's auth token) are dropped by header name instead.
	Secrets []string
}

// Key is one policy key a vendor declares.
type Key struct {
	Name string  // as written in the policy: "to"
	Kind KeyKind // what its value is and what the policy does with it
	// Subject is what a ListKey or MaxKey checks of a call.
	Subject Subject
	// Match checks and matches the entries of a ListKey.
	Match *Matcher
	// Help is one line for people.
	Help string
}

// KeyKind says what a key's value is and how the policy uses it.
type KeyKind int

const (
	// ListKey is a non-empty list of entries (checked by Match.Check);
	// every value of the call's Subject must match one (Match.Match), or
	// the call is Scoped. A call whose audience the vendor cannot see
	// (Call.AudienceUnknown) is Scoped by any ListKey on Recipients or
	// Senders.
	ListKey KeyKind = iota + 1
	// MaxKey is a positive count; the call's Subject (a count) must not
	// exceed it, or the call is Scoped.
	MaxKey
	// CustomersKey is a customer scope (created_by_agent, ids, metadata,
	// allow_no_customer, per-customer caps, max_refunds_per_charge) on
	// Call.Customer.
	CustomersKey
	// AccountsKey is an account scope (ids, platform) on Call.Account.
	AccountsKey
	// CountSetting is a positive count in the shared section, for Units.
	CountSetting
	// FlagSetting is a boolean in the shared section, for Units.
	FlagSetting
)

// Subject is the part of a call a ListKey or MaxKey checks.
type Subject int

const (
	Recipients         Subject = iota + 1 // Call.Recipients
	Senders                               // Call.Senders
	RecipientsPerEmail                    // Call.MostRecipients, for a MaxKey
)

// Matcher checks the entries of a list key and matches a call's values
// against them. Both functions must be pure.
type Matcher struct {
	Noun   string // one value, for messages: "destination", "sender"
	Plural string // "destinations"
	// Check refuses an entry that is not well-formed, saying what is
	// wanted.
	Check func(entry string) error
	// Match reports whether entry admits value.
	Match func(entry, value string) bool
}

// Settings are the policy's shared settings for a vendor, as Units reads
// them: a key not set is 0 or false.
type Settings interface {
	Count(key string) int64
	Flag(key string) bool
}

// Unpriced is a priced call the policy cannot count, returned by Units:
// the policy refuses it (Blocked) with Code and Reason, naming the shared
// key (Key, such as "assume_call_minutes") that would let it count.
type Unpriced struct {
	Key    string
	Code   string // keybrake_<reason>
	Reason string
}

func (e *Unpriced) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Reason) }

// Need is what deciding a call needs to know beyond what its request says,
// for Resolve.
type Need struct {
	// Customer: a customer scope is in force, so Resolve must find the
	// customer of the object the call acts on (Call.SubjectLookup) and
	// fill Customer or NoCustomer.
	Customer bool
}

// Fact is something a vendor learned that never changes (the currency and
// customer of a charge), returned by Resolve for the transport to keep.
type Fact struct {
	Key, Value string
}
