package policy

import (
	"net/url"
	"strings"

	"github.com/keybrake/keybrake/internal/pattern"
	"github.com/keybrake/keybrake/money"
)

// Policy is a parsed, validated policy file. It is immutable once returned
// by Parse or Load and safe for concurrent use; a new file is a new Policy.
// Callers must not modify it. Vendors and FX are nil when the file has no
// such section. The zero Policy names no agent and refuses every call.
type Policy struct {
	File    string // the path it was read from, for messages
	Hash    string // hex SHA-256 of the file's bytes, first 16 characters
	Version int
	Halt    bool // every agent, every vendor refused (Revoked)

	Agents  map[string]*Agent
	Vendors map[string]*VendorLimits        // limits shared by every agent of a vendor account
	FX      map[money.Currency][]money.Rate // conversions from a currency, in file order
}

// Agent is one agent's section. Grants is never nil in a parsed policy.
type Agent struct {
	Name    string
	Revoked bool
	Grants  map[string]*Grant // by vendor name
	Line    int               // where the agent's name is written
}

// Grant is what an agent may do on one vendor. Allow is nil when the file
// has no allow key: like an empty list, it allows nothing.
type Grant struct {
	Vendor     string
	DailyCap   *money.Amount // all money the agent moves on the vendor per UTC day; nil: money-moving calls refused
	PerCallMax *money.Amount // nil: no per-call maximum beyond the daily cap
	DailyCount int64         // billable units per UTC day; 0: no count limit
	Allow      []*Rule
	Line       int // where the vendor's name is written under the agent

	// Scope: against whom the agent may act. nil or empty: no limit
	// beyond the allow rules.
	Customers *CustomerScope // Stripe: the customers it may touch
	Accounts  *AccountScope  // Stripe Connect: the accounts it may act for
	To        []string       // Twilio: destinations, "+1555..." exactly or "+44*" as a prefix
	From      []string       // Twilio numbers or messaging services; Resend sender addresses or "@domain"
	// Recipients are the Resend addresses ("ops@example.com") and
	// domains ("@example.com") every to, cc and bcc must be in.
	Recipients    []string
	MaxRecipients int64 // Resend: most to+cc+bcc addresses in one email; 0: no limit
}

// CustomerScope limits an agent to some customers of the account.
type CustomerScope struct {
	// CreatedByAgent admits customers this agent created through
	// Keybrake (their IDs are recorded from the create response).
	CreatedByAgent bool
	// IDs admits an approved cohort.
	IDs map[string]bool
	// Metadata admits customers whose metadata holds every pair
	// (looked up, and cached for a minute).
	Metadata map[string]string
	// AllowNoCustomer admits calls on objects that belong to no
	// customer; by default they are out of scope.
	AllowNoCustomer bool
	// Per customer and UTC day: money, and billable units.
	DailyCap   *money.Amount
	DailyCount int64
	// MaxRefundsPerCharge bounds the refunds of one charge; 1 unless
	// the policy raises it.
	MaxRefundsPerCharge int64
	Line                int
}

// AccountScope limits the Stripe-Account an agent may act for.
type AccountScope struct {
	IDs      map[string]bool
	Platform bool // calls without Stripe-Account, on the platform itself
	Line     int
}

// VendorLimits are limits shared by every agent on a vendor.
type VendorLimits struct {
	Vendor     string
	DailyCap   *money.Amount
	DailyCount int64
	Line       int // where the vendor's name is written under vendors

	// Prices are what the vendor charges per unit of each item ("sms",
	// "mms", "call_minute" for Twilio; "email" for Resend), by
	// destination prefix. nil: calls that need a price are refused.
	Prices map[string]*PriceTable
	// AssumeCallMinutes is how many minutes a Twilio call without a
	// TimeLimit counts; zero refuses such calls.
	AssumeCallMinutes int64
	// BillPerRecipient counts every address of to, cc and bcc as one
	// email, for Resend plans billed that way.
	BillPerRecipient bool
	// BroadcastEmails is how many emails a Resend broadcast counts; zero
	// refuses broadcasts.
	BroadcastEmails int64
}

// PriceTable is one item's price, by destination: an E.164 prefix such as
// "+44" (the longest matching prefix wins) or the default.
type PriceTable struct {
	Default  *money.Amount
	Prefixes map[string]money.Amount
	Line     int
}

// Lookup returns the price for destination, and the prefix that matched
// ("default" for the default). ok is false when nothing matches.
func (t *PriceTable) Lookup(destination string) (price money.Amount, matched string, ok bool) {
	best := ""
	for prefix := range t.Prefixes {
		if len(prefix) > len(best) && strings.HasPrefix(destination, prefix) {
			best = prefix
		}
	}
	if best != "" {
		return t.Prefixes[best], best, true
	}
	if t.Default != nil {
		return *t.Default, "default", true
	}
	return money.Amount{}, "", false
}

// Rule is one allow rule. Params is nil when the rule names no parameters.
type Rule struct {
	ID         string // "agents.refund-bot.stripe.allow[0]"
	Method     string
	Path       pattern.Pattern
	Params     map[string][]string // each named parameter must be present once and equal one of these values
	PerCallMax *money.Amount       // a stricter maximum for calls this rule allows
	// Uncapped admits calls the vendor says can move money Keybrake does
	// not count (Request.Uncapped): the operator accepts that this rule's
	// calls move money outside every cap. Without it such calls are
	// refused even when the rule matches.
	Uncapped bool
	Line     int // where the rule starts
}

// Request is what Authorize and Limits see of a call.
type Request struct {
	Agent  string
	Vendor string
	Method string
	Path   string     // escaped, already checked
	Params url.Values // decoded parameters

	// Uncapped, when not empty, says the call can move money Keybrake
	// does not count, and why: only a rule with uncapped: true allows it.
	Uncapped string

	// For per-customer and per-charge limits, once known.
	Customer string
	Account  string
	RefundOf string // the charge a refund draws on
}

// Verdict is a decision with the rule that made it. For Allowed, Rule is
// the allow rule that matched.
type Verdict struct {
	Decision Decision
	Rule     string // a dotted path into the policy: "agents.refund-bot.stripe.daily_cap", or "halt"
	Code     string // keybrake_<reason>, empty for Allowed
	Reason   string // for a person
}

// Limit is one counter a call must fit: a day's money cap or unit count.
type Limit struct {
	Key  string // counter key, unique per limit and UTC day: "agent/refund-bot/stripe/2026-11-25/USD"
	Max  int64  // the limit, in Unit
	Add  int64  // what this call adds, in Unit
	Unit string // a currency code (amounts in micros) or "units"
	Rule string // "agents.refund-bot.stripe.daily_cap"
}
