package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

// Subject is who a call touches, as its vendor and Keybrake's lookups
// found it.
type Subject struct {
	Customer string
	// NoCustomer: the object the call acts on belongs to no customer.
	NoCustomer bool
	// AllCustomers: the call reads or acts on every customer's objects
	// (a list without a customer filter).
	AllCustomers bool
	// CreatedByAgent: this agent created Customer through Keybrake.
	CreatedByAgent bool
	// Metadata is the customer's metadata, when a scope selects by it.
	Metadata map[string]string
	Account  string

	Recipients []string // phone numbers or email addresses
	Senders    []string
	// RecipientsUnknown: the call sends to an audience Keybrake cannot
	// see (a Resend broadcast).
	RecipientsUnknown bool
	// MostRecipients is the largest number of addresses in one email.
	MostRecipients int64
}

func (p *Policy) grant(agent, vendor string) *Grant {
	if p == nil || p.Agents[agent] == nil {
		return nil
	}
	return p.Agents[agent].Grants[vendor]
}

// Scope decides whether a call allowed by Authorize acts only on whom the
// agent may touch: Allowed, or Scoped (403, keybrake_out_of_scope) with the
// scope rule and who was out of it. It is pure and safe for concurrent use.
func (p *Policy) Scope(r Request, s Subject) Verdict {
	g := p.grant(r.Agent, r.Vendor)
	if g == nil {
		return Verdict{Decision: Error, Rule: "agents", Code: "keybrake_policy_mismatch",
			Reason: "scope was asked for a call this policy did not allow"}
	}
	base := g.rulesFor(r.Agent, r.Vendor).base
	out := func(rule, format string, args ...any) Verdict {
		return Verdict{Decision: Scoped, Rule: base + "." + rule, Code: "keybrake_out_of_scope",
			Reason: fmt.Sprintf(format, args...)}
	}
	if v, ok := accountInScope(g, r.Agent, s.Account); !ok {
		return v
	}
	if c := g.Customers; c != nil {
		// A call may name a customer and act on an object that has none
		// (setting the customer of an unowned charge): both must be in
		// scope, or an agent could adopt a stranger's object.
		if s.AllCustomers {
			return out("customers", "Keybrake cannot tell which customers the call reaches (a list or search without a customer filter, or an object it cannot trace to a customer); name a customer to stay in %s's scope", r.Agent)
		}
		if s.Customer != "" && !admits(c, s) {
			return out("customers", "customer %s is not in %s's scope (%s)", s.Customer, r.Agent, customerScopeText(c))
		}
		if s.NoCustomer && !c.AllowNoCustomer {
			return out("customers", "the object belongs to no customer, and %s may act only on %s", r.Agent, customerScopeText(c))
		}
	}
	for _, ls := range g.Lists {
		if v, ok := ls.admits(r.Agent, s); !ok {
			v.Rule = base + "." + v.Rule
			return v
		}
	}
	return Verdict{Decision: Allowed}
}

// accountInScope is the part of Scope that needs no lookup: whether the
// call's account is one the agent may act for. Authorize asks it too, so
// a foreign account is refused before anything is fetched from it.
func accountInScope(g *Grant, agent, account string) (Verdict, bool) {
	a := g.Accounts
	if a == nil {
		return Verdict{}, true
	}
	out := func(format string, args ...any) (Verdict, bool) {
		return Verdict{Decision: Scoped, Rule: "agents." + agent + "." + g.Vendor + ".accounts", Code: "keybrake_out_of_scope",
			Reason: fmt.Sprintf(format, args...)}, false
	}
	switch {
	case account == "" && !a.Platform:
		return out("the call acts on the platform account, and %s may act only for %s", agent, setText(a.IDs))
	case account != "" && !a.IDs[account]:
		return out("connected account %s is not one %s may act for (%s)", account, agent, setText(a.IDs))
	}
	return Verdict{}, true
}

// admits checks one of the vendor's list or maximum keys; the verdict's
// Rule is the key, for Scope to prefix.
func (ls *ListScope) admits(agent string, s Subject) (Verdict, bool) {
	out := func(format string, args ...any) (Verdict, bool) {
		return Verdict{Decision: Scoped, Rule: ls.Key, Code: "keybrake_out_of_scope", Reason: fmt.Sprintf(format, args...)}, false
	}
	var values []string
	switch ls.Subject {
	case vendors.RecipientsPerEmail:
		if ls.Max > 0 && s.MostRecipients > ls.Max {
			return out("an email has %d recipients, more than %s's maximum of %d", s.MostRecipients, agent, ls.Max)
		}
		return Verdict{}, true
	case vendors.Recipients:
		values = s.Recipients
	case vendors.Senders:
		values = s.Senders
	}
	list := strings.Join(ls.Entries, ", ")
	if s.RecipientsUnknown {
		return out("the call sends to an audience Keybrake cannot see (a broadcast); %s's %s are only %s", agent, ls.Match.Plural, list)
	}
	for _, v := range values {
		if !ls.matches(v) {
			return out("%s %s is not one of %s's allowed %s (%s)", ls.Match.Noun, v, agent, ls.Match.Plural, list)
		}
	}
	return Verdict{}, true
}

func (ls *ListScope) matches(value string) bool {
	for _, e := range ls.Entries {
		if ls.Match.Match(e, value) {
			return true
		}
	}
	return false
}

func admits(c *CustomerScope, s Subject) bool {
	if c.IDs[s.Customer] || (c.CreatedByAgent && s.CreatedByAgent) {
		return true
	}
	if len(c.Metadata) == 0 || s.Metadata == nil {
		return false
	}
	for k, v := range c.Metadata {
		if got, ok := s.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func customerScopeText(c *CustomerScope) string {
	var parts []string
	if c.CreatedByAgent {
		parts = append(parts, "customers it created")
	}
	if len(c.IDs) > 0 {
		parts = append(parts, setText(c.IDs))
	}
	if len(c.Metadata) > 0 {
		var kv []string
		for k, v := range c.Metadata {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		parts = append(parts, "customers with metadata "+strings.Join(kv, ", "))
	}
	if len(parts) == 0 {
		return "objects with no customer"
	}
	return strings.Join(parts, "; ")
}

// setText lists a set, at most five names, for a reason a person reads.
func setText(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
