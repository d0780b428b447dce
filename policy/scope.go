package policy

import (
	"fmt"
	"sort"
	"strings"
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

// NeedsCustomer reports whether deciding the agent's calls on vendor needs
// to know which customer each touches, and NeedsMetadata whether that
// customer's metadata too. Callers skip lookups the policy does not need.
func (p *Policy) NeedsCustomer(agent, vendor string) bool {
	g := p.grant(agent, vendor)
	return g != nil && g.Customers != nil
}

// NeedsMetadata: see NeedsCustomer.
func (p *Policy) NeedsMetadata(agent, vendor string) bool {
	g := p.grant(agent, vendor)
	return g != nil && g.Customers != nil && len(g.Customers.Metadata) > 0
}

// AdmitsCreated reports whether the agent's customer scope admits the
// customers it created, so their IDs are worth remembering.
func (p *Policy) AdmitsCreated(agent, vendor string) bool {
	g := p.grant(agent, vendor)
	return g != nil && g.Customers != nil && g.Customers.CreatedByAgent
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
	base := "agents." + r.Agent + "." + r.Vendor
	out := func(rule, format string, args ...any) Verdict {
		return Verdict{Decision: Scoped, Rule: base + "." + rule, Code: "keybrake_out_of_scope",
			Reason: fmt.Sprintf(format, args...)}
	}
	if a := g.Accounts; a != nil {
		switch {
		case s.Account == "" && !a.Platform:
			return out("accounts", "the call acts on the platform account, and %s may act only for %s", r.Agent, setText(a.IDs))
		case s.Account != "" && !a.IDs[s.Account]:
			return out("accounts", "connected account %s is not one %s may act for (%s)", s.Account, r.Agent, setText(a.IDs))
		}
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
	if len(g.To) > 0 {
		for _, to := range s.Recipients {
			if !phoneAllowed(g.To, to) {
				return out("to", "destination %s is not in %s's allowed destinations (%s)", to, r.Agent, strings.Join(g.To, ", "))
			}
		}
	}
	if len(g.Recipients) > 0 {
		if s.RecipientsUnknown {
			return out("recipients", "the call sends to an audience Keybrake cannot see; %s may send only to %s", r.Agent, strings.Join(g.Recipients, ", "))
		}
		for _, to := range s.Recipients {
			if !addressAllowed(g.Recipients, to) {
				return out("recipients", "recipient %s is not in %s's allowed recipients (%s)", to, r.Agent, strings.Join(g.Recipients, ", "))
			}
		}
	}
	if g.MaxRecipients > 0 && s.MostRecipients > g.MaxRecipients {
		return out("max_recipients", "an email has %d recipients, more than %s's maximum of %d", s.MostRecipients, r.Agent, g.MaxRecipients)
	}
	if len(g.From) > 0 {
		if s.RecipientsUnknown {
			return out("from", "the call sends from a sender Keybrake cannot see (a broadcast); %s may send only from %s", r.Agent, strings.Join(g.From, ", "))
		}
		for _, from := range s.Senders {
			ok := false
			if r.Vendor == "twilio" {
				ok = contains(g.From, from)
			} else {
				ok = addressAllowed(g.From, from)
			}
			if !ok {
				return out("from", "sender %s is not one %s may send from (%s)", from, r.Agent, strings.Join(g.From, ", "))
			}
		}
	}
	return Verdict{Decision: Allowed}
}

// ScopeAccount is the part of Scope that needs no lookup: whether the
// call's Stripe-Account is one the agent may act for. The transport asks
// it first, so a foreign account is refused before anything is fetched
// from it.
func (p *Policy) ScopeAccount(r Request, account string) Verdict {
	g := p.grant(r.Agent, r.Vendor)
	if g == nil || g.Accounts == nil {
		return Verdict{Decision: Allowed}
	}
	return p.Scope(r, Subject{Account: account})
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

// phoneAllowed: an entry ending in * is a prefix; any other entry is one
// number, exactly.
func phoneAllowed(allowed []string, number string) bool {
	for _, a := range allowed {
		if strings.HasSuffix(a, "*") {
			if strings.HasPrefix(number, strings.TrimSuffix(a, "*")) {
				return true
			}
		} else if a == number {
			return true
		}
	}
	return false
}

// addressAllowed: an entry starting with @ is a domain, exactly (not its
// subdomains); any other entry is one address.
func addressAllowed(allowed []string, addr string) bool {
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	for _, a := range allowed {
		if strings.HasPrefix(a, "@") {
			if at >= 0 && addr[at:] == a {
				return true
			}
		} else if a == addr {
			return true
		}
	}
	return false
}
