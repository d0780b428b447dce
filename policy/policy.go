package policy

import (
	"net/url"
	"strings"
	"time"

	"github.com/keybrake/keybrake/internal/pattern"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
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
	// HaltedBy says what halts every agent when it is not the file's
	// halt: true (WithStops): "Brake.Halt", "the kill switch <path>".
	HaltedBy string

	// Location is the time zone of every day, week and month the
	// policy counts (timezone:); UTC when the file names none.
	Location *time.Location

	Agents  map[string]*Agent
	Vendors map[string]*VendorLimits        // limits shared by every agent of a vendor account
	FX      map[money.Currency][]money.Rate // conversions from a currency, in file order

	// infos are the descriptions of the vendors the policy was parsed
	// for, by name: how a priced call counts (Cost).
	infos map[string]vendors.Info
}

// Agent is one agent's section. Grants is never nil in a parsed policy.
type Agent struct {
	Name    string
	Revoked bool
	// RevokedBy says what revoked the agent when it is not the file's
	// revoked: true (WithStops).
	RevokedBy string
	// Tripped, when set, says which of the agent's rate limits halted it
	// (WithStops): its calls are refused until a person resumes it.
	Tripped *Trip
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
	Budgets                  // weeks, months, rolling windows and runs
	Allow      []*Rule
	Line       int // where the vendor's name is written under the agent

	// Approvals (approve.go): calls moving more than ApproveAbove, and
	// calls an Approve rule matches, are held until a person approves
	// the exact request. An Approve rule admits nothing by itself: the
	// call must still match an allow rule.
	ApproveAbove *money.Amount
	Approve      []*Rule

	// Scope: against whom the agent may act, by the keys its vendor
	// declares (vendors.Info.Grant). nil or empty: no limit beyond the
	// allow rules.
	Customers *CustomerScope // a CustomersKey ("customers"): the customers it may touch
	Accounts  *AccountScope  // an AccountsKey ("accounts"): the accounts it may act for
	// Lists are the vendor's list and maximum keys set in the grant
	// ("to", "from", "recipients", "max_recipients"), in the order the
	// vendor declares them, which is the order Scope checks them in.
	Lists []*ListScope

	// rules names the grant's limits, written once by Parse: every
	// decision names them, and building them for each call was most of
	// its allocations. Empty in a Grant not made by Parse.
	rules grantRules
}

// grantRules are the dotted paths of a grant's limits.
type grantRules struct {
	base                                   string // "agents.refund-bot.stripe"
	dailyCap, dailyCount                   string // base + ".daily_cap", ...
	customersDailyCap, customersDailyCount string
	maxRefundsPerCharge                    string
}

func newGrantRules(agent, vendor string) grantRules {
	base := "agents." + agent + "." + vendor
	return grantRules{
		base:                base,
		dailyCap:            base + ".daily_cap",
		dailyCount:          base + ".daily_count",
		customersDailyCap:   base + ".customers.daily_cap",
		customersDailyCount: base + ".customers.daily_count",
		maxRefundsPerCharge: base + ".customers.max_refunds_per_charge",
	}
}

// rulesFor returns the grant's rule paths for agent and vendor, the names
// it is found under.
func (g *Grant) rulesFor(agent, vendor string) grantRules {
	if g.rules.base == "" {
		return newGrantRules(agent, vendor)
	}
	return g.rules
}

// Needs says what deciding a call of this grant needs beyond its request:
// the customer it touches, that customer's metadata, whether this agent
// created it. The transport makes only the lookups a grant needs.
type Needs struct {
	Customer bool // a customer scope is in force
	Metadata bool // it selects customers by metadata
	Created  bool // it admits the customers the agent created
}

// Needs returns what deciding the grant's calls needs; see Needs.
func (g *Grant) Needs() Needs {
	c := g.Customers
	if c == nil {
		return Needs{}
	}
	return Needs{Customer: true, Metadata: len(c.Metadata) > 0, Created: c.CreatedByAgent}
}

// ListScope is one of a vendor's list or maximum keys, as a grant sets it.
type ListScope struct {
	Key     string           // "to"
	Subject vendors.Subject  // what of a call it checks
	Match   *vendors.Matcher // for a list
	Entries []string         // a list's entries, in file order
	Max     int64            // a maximum's value
	order   int              // where the vendor declares the key
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
	Budgets        // weeks, months and rolling windows shared by every agent
	Line       int // where the vendor's name is written under vendors

	// Prices are what the vendor charges per unit of each item it
	// declares (vendors.Info.Prices: "sms", "email"), by destination
	// prefix. nil: calls that need a price are refused.
	Prices map[string]*PriceTable
	// Settings are the vendor's own shared keys (vendors.Info.Shared:
	// Twilio's assume_call_minutes, Resend's broadcast_emails), a count
	// or 1 for a flag set true; the vendor's Units reads them.
	Settings map[string]int64

	// dailyCapRule and dailyCountRule name the shared limits, written
	// once by Parse, as grantRules; empty in VendorLimits not made by
	// Parse.
	dailyCapRule, dailyCountRule string
}

// rulesFor returns the paths of the shared limits of vendor, the name l
// is found under.
func (l *VendorLimits) rulesFor(vendor string) (dailyCap, dailyCount string) {
	if l.dailyCapRule == "" {
		return "vendors." + vendor + ".daily_cap", "vendors." + vendor + ".daily_count"
	}
	return l.dailyCapRule, l.dailyCountRule
}

// Count returns the shared setting key, 0 when it is not set. A nil
// VendorLimits has no settings.
func (l *VendorLimits) Count(key string) int64 {
	if l == nil {
		return 0
	}
	return l.Settings[key]
}

// Flag reports whether the shared flag key is set true.
func (l *VendorLimits) Flag(key string) bool { return l.Count(key) != 0 }

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

	grant *Grant // the grant the rule is in
}

// Grant returns the grant the rule is in; nil for a Rule not made by
// Parse.
func (r *Rule) Grant() *Grant { return r.grant }

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

	// Run is the run (task) the call is made for, "" for none: per_run
	// counts each run apart.
	Run string
}

// Verdict is a decision with the rule that made it. For Allowed, Rule is
// the allow rule that matched.
type Verdict struct {
	Decision Decision
	Rule     string // a dotted path into the policy: "agents.refund-bot.stripe.daily_cap", or "halt"
	Code     string // keybrake_<reason>, empty for Allowed
	Reason   string // for a person
}

// Limit is one counter a call must fit: a day's, week's or month's money
// cap or unit count, a rolling window, a run's budget.
type Limit struct {
	// Key is the counter's key, unique per limit and period:
	// "agent/refund-bot/stripe/2026-11-25/USD". The keys of one call's
	// limits may share one string's memory (Limits allocates them
	// together): a map that keeps keys beyond the call should keep a
	// strings.Clone of each.
	Key  string
	Max  int64  // the limit, in Unit
	Add  int64  // what this call adds, in Unit
	Unit string // a currency code (amounts in micros), "units" or "calls"
	Rule string // "agents.refund-bot.stripe.daily_cap"
	// Per is what the limit counts over when it is not one UTC day: "the
	// charge ch_1" for max_refunds_per_charge, which counts for good.
	Per string

	Kind LimitKind
	// Period is the day ("2026-11-25"), the last day of the week or
	// month, or the run the limit counts; "" for a window.
	Period string
	// Window, for a RateLimit, is its length: the store counts the
	// limit over any interval of it (audit.Hold.Window).
	Window time.Duration
	// Halt, for a RateLimit, says that refusing a call trips the agent.
	Halt bool
	// AlertAt are the percentages of Max at which an alert is raised
	// (alert_at of the limit's section); nil for none. Shared with the
	// policy: do not modify.
	AlertAt []int64
}

// LimitKind says what a Limit counts over, for the refusal's code and
// words.
type LimitKind uint8

// The kinds of limit.
const (
	DailyLimit   LimitKind = iota // one day of the policy's time zone
	WeeklyLimit                   // a calendar week, Monday to Sunday
	MonthlyLimit                  // a calendar month
	RateLimit                     // any interval of Window
	RunLimit                      // one run
	ChargeLimit                   // one charge, for good (Per)
)
