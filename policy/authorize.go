package policy

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keybrake/keybrake/internal/pattern"
)

// Authorize decides whether the policy allows the request, before any money
// is counted. It is pure (no I/O, no clock) and safe for concurrent use. In
// order:
//
//  1. halt: true refuses everything (Revoked, rule "halt");
//  2. an agent the policy does not name is Blocked (rule "agents");
//  3. a revoked agent is Revoked (rule "agents.<a>.revoked");
//  4. an agent without a grant for the vendor is Blocked (rule "agents.<a>");
//  5. the first allow rule whose method, path and every parameter condition
//     hold allows the call: Allowed, with that rule, when the call's
//     account is one the grant's account scope admits (else Scoped, rule
//     "agents.<a>.<vendor>.accounts"); a call that can move
//     money Keybrake does not count (Request.Uncapped) needs a rule with
//     uncapped: true, and rules without it are passed over;
//  6. else, when a rule matched the call but lacked uncapped: true, the
//     first such rule blocks it (code keybrake_uncapped_money);
//  7. else, when a rule matched method and path but a parameter condition
//     failed, the first such rule blocks it with the parameter at fault;
//  8. else it is Blocked by the grant's allow list.
//
// The *Rule is returned only with Allowed, for Limits. A nil *Policy
// refuses every call with Decision Error.
func (p *Policy) Authorize(r Request) (Verdict, *Rule) {
	if p == nil {
		return Verdict{Decision: Error, Rule: "policy", Code: "keybrake_no_policy", Reason: "no policy is loaded"}, nil
	}
	if p.Halt {
		why := "the policy halts every agent (halt: true)"
		if p.HaltedBy != "" {
			why = "every agent is halted by " + p.HaltedBy
		}
		return Verdict{Decision: Revoked, Rule: "halt", Code: "keybrake_halted", Reason: why}, nil
	}
	a := p.Agents[r.Agent]
	if a == nil {
		return Verdict{Decision: Blocked, Rule: "agents", Code: "keybrake_unknown_agent",
			Reason: "agent " + quote(r.Agent) + " is not in the policy"}, nil
	}
	if a.Revoked {
		why := "agent " + a.Name + " is revoked (revoked: true in the policy)"
		if a.RevokedBy != "" {
			why = "agent " + a.Name + " is revoked by " + a.RevokedBy
		}
		return Verdict{Decision: Revoked, Rule: "agents." + a.Name + ".revoked", Code: "keybrake_revoked", Reason: why}, nil
	}
	if t := a.Tripped; t != nil {
		return Verdict{Decision: Revoked, Rule: t.Rule, Code: "keybrake_tripped",
			Reason: "agent " + a.Name + " is halted: its rate limit " + t.Rule + " refused a call (kept in " + t.By +
				"); 'keybrake resume " + a.Name + "' lets it call again"}, nil
	}
	g := a.Grants[r.Vendor]
	if g == nil {
		return Verdict{Decision: Blocked, Rule: "agents." + a.Name, Code: "keybrake_vendor_not_granted",
			Reason: "agent " + a.Name + " has no grant for " + quote(r.Vendor)}, nil
	}
	var (
		near     *Rule // the first rule that matched method and path but not parameters
		uncapped *Rule // the first rule that matched an uncapped call without admitting it
	)
	for _, rule := range g.Allow {
		if rule.Method != r.Method {
			continue
		}
		if !matchPath(rule.Path, r.Path) {
			continue
		}
		switch {
		case !rule.paramsHold(r):
			if near == nil {
				near = rule
			}
		case r.Uncapped != "" && !rule.Uncapped:
			if uncapped == nil {
				uncapped = rule
			}
		default:
			if v, ok := accountInScope(g, a.Name, r.Account); !ok {
				return v, nil
			}
			return Verdict{Decision: Allowed, Rule: rule.ID}, rule
		}
	}
	if uncapped != nil {
		return Verdict{Decision: Blocked, Rule: uncapped.ID, Code: "keybrake_uncapped_money",
			Reason: show(r.Method) + " " + show(r.Path) + " can move money Keybrake does not count (" + r.Uncapped +
				"); a rule allows it only with uncapped: true"}, nil
	}
	if near != nil {
		return Verdict{Decision: Blocked, Rule: near.ID, Code: "keybrake_param_not_allowed",
			Reason: near.paramReason(r)}, nil
	}
	return Verdict{Decision: Blocked, Rule: "agents." + a.Name + "." + g.Vendor + ".allow", Code: "keybrake_not_allowed",
		Reason: "no allow rule for " + show(r.Method) + " " + show(r.Path)}, nil
}

// paramsHold reports whether every parameter condition of the rule holds:
// the parameter is sent exactly once, its value is one of those listed, and
// it is not sent again in a nested form ("capture_method[0]") that a
// vendor's form parser might merge with it.
func (rule *Rule) paramsHold(r Request) bool {
	for name, allowed := range rule.Params {
		sent := r.Params[name]
		if len(sent) != 1 || !contains(allowed, sent[0]) || nestedKey(r, name) != "" {
			return false
		}
	}
	return true
}

// nestedKey returns a parameter of r that nests under name, if any, the
// first in key order.
func nestedKey(r Request, name string) string {
	var first string
	for k := range r.Params {
		if len(k) > len(name) && k[len(name)] == '[' && k[:len(name)] == name && (first == "" || k < first) {
			first = k
		}
	}
	return first
}

// paramReason explains the first failing condition, in name order so that
// the same request always gets the same reason.
func (rule *Rule) paramReason(r Request) string {
	names := make([]string, 0, len(rule.Params))
	for name := range rule.Params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		allowed, sent := rule.Params[name], r.Params[name]
		want := "parameter " + name + " must be " + quoteList(allowed)
		switch {
		case len(sent) == 0:
			return want + "; the call did not send it"
		case len(sent) > 1:
			return want + ", sent once; the call sent it " + strconv.Itoa(len(sent)) + " times"
		case !contains(allowed, sent[0]):
			return want + "; the call sent " + quote(sent[0])
		}
		if k := nestedKey(r, name); k != "" {
			return want + ", sent once; the call also sent " + quote(k)
		}
	}
	return "a parameter condition failed" // unreachable while paramsHold agrees
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quoteList renders `"manual"` or `one of "manual", "automatic_async"`.
func quoteList(values []string) string {
	if len(values) == 1 {
		return quote(values[0])
	}
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quote(v)
	}
	return "one of " + strings.Join(q, ", ")
}

// maxShown bounds how much of a value the agent sent a reason repeats: the
// reason is for a person, and the value is the agent's, not ours.
const maxShown = 64

// quote renders a value from a request for a reason: quoted, escaped, and
// cut short when long.
func quote(s string) string {
	if len(s) <= maxShown {
		return strconv.Quote(s)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// show renders a method or path as is when it is plain printable ASCII
// (the transport has checked it), and quoted otherwise.
func show(s string) string {
	if len(s) > 0 && len(s) <= 2*maxShown {
		plain := true
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] >= 0x7F || s[i] == '"' {
				plain = false
				break
			}
		}
		if plain {
			return s
		}
	}
	return quote(s)
}

// matchPath reports whether path matches p. A template without a
// placeholder matches only itself, and is compared as a string: Match
// would split the path for every rule tried.
func matchPath(p pattern.Pattern, path string) bool {
	if t := p.String(); !strings.Contains(t, "{") {
		return path == t
	}
	_, ok := p.Match(path)
	return ok
}
