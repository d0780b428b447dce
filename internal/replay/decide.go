package replay

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/vendors"
)

// sim is one replay in progress: the new policy's counters, and whether
// each agent is tripped, as recorded and as simulated.
type sim struct {
	p        *policy.Policy
	counters *counters
	agents   map[string]*Agent
	since    time.Time
	// tripped: the recorded log tripped the agent (a trip event) and no
	// allowed call since says a person resumed it. simTripped: the rule
	// of the new policy that tripped it.
	tripped    map[string]bool
	simTripped map[string]string
}

func (s *sim) agent(name string) *Agent {
	a := s.agents[name]
	if a == nil {
		a = &Agent{Name: name, NotReplayed: map[string]int{}}
		s.agents[name] = a
	}
	return a
}

// record decides one record again, counts what the new policy would
// have counted, and reports it.
func (s *sim) record(r *audit.Record) {
	if r.Event != "" {
		if r.Event == "trip" && r.Agent != "" {
			s.tripped[r.Agent] = true
		}
		return
	}
	report := !r.Time.Before(s.since)
	if why := outsidePolicy(r); why != "" {
		if report {
			s.agent(r.Agent).NotReplayed[why]++
		}
		return
	}
	if r.Decision == policy.Allowed && s.tripped[r.Agent] {
		// A call went through after the recorded trip: a person resumed
		// the agent, which resumes the simulated trip too.
		s.tripped[r.Agent], s.simTripped[r.Agent] = false, ""
	}
	c, charge, why := s.decide(r)
	amounts := s.counted(r, c, charge)
	if c.To.Decision == policy.Allowed {
		s.counters.count(charge.Limits, amounts, r.Time)
	}
	if !report {
		return
	}
	a := s.agent(r.Agent)
	a.Replayed++
	if why != "" {
		c.Why = why
		a.Uncertain = append(a.Uncertain, c)
		return
	}
	old, next := r.Decision == policy.Allowed, c.To.Decision == policy.Allowed
	if old && !next {
		a.Stopped = addTo(a.Stopped, r.Moved())
	}
	if !old && next {
		a.Estimated++
		if r.MovesMoney || !r.Amount.IsZero() {
			a.LetThrough = addTo(a.LetThrough, charge.Amount)
		}
	}
	if c.From.Decision == c.To.Decision {
		if !next && (c.From.Rule != c.To.Rule || c.From.Code != c.To.Code) {
			a.Reruled = append(a.Reruled, c)
		}
		return
	}
	a.Changed = append(a.Changed, c)
	if c.To.Decision == policy.Capped && a.FirstCapped == nil {
		first := c
		a.FirstCapped = &first
	}
}

// outsidePolicy says why a recorded refusal was not the policy's to make,
// "" for a decision the policy made: what stopped it is not in the policy
// file (a stop, a trip, the store, an unknown key), it was refused before
// the policy read it (an invalid request, a cancelled one), or its
// decision is not one replay knows.
func outsidePolicy(r *audit.Record) string {
	what := string(r.Decision)
	if r.Code != "" {
		what += " (" + r.Code + ")"
	}
	switch {
	case r.Decision == policy.Revoked && r.Code == "keybrake_tripped":
		return what + ": the agent was halted by a rate limit that tripped"
	case r.Decision == policy.Revoked && r.Code == "keybrake_halted":
		return what + ": every agent was halted"
	case r.Decision == policy.Revoked && strings.HasPrefix(r.Code, "keybrake_key_"):
		return what + ": an agent key Keybrake did not accept"
	case r.Decision == policy.Revoked:
		return what + ": the agent was revoked"
	case r.Decision == policy.Error:
		return what + ": Keybrake could not decide (the store, a lookup, the call's amount)"
	case r.Code == "keybrake_approval_denied":
		return what + ": a person denied its approval"
	case r.Decision != policy.Allowed && r.Decision != policy.Blocked && r.Decision != policy.Scoped && r.Decision != policy.Capped &&
		r.Decision != policy.Held:
		return what + ": a decision replay does not know"
	case r.Rule == "request":
		return what + ": refused before the policy (the request itself)"
	case r.Code == "keybrake_idempotency_key_reused" || r.Code == "keybrake_idempotency_key_in_use":
		return what + ": refused by the store's idempotency check"
	}
	return ""
}

// decide is the new policy's verdict on r, the charge it counts when
// allowed, and why the verdict is uncertain ("" when the record holds
// every input it rests on).
func (s *sim) decide(r *audit.Record) (Call, policy.Charge, string) {
	c := Call{ID: r.ID, Time: r.Time, Agent: r.Agent, Vendor: r.Vendor, Method: r.Method, Path: r.Path,
		Operation: r.Operation, Amount: r.Amount,
		From: policy.Verdict{Decision: r.Decision, Rule: r.Rule, Code: r.Code, Reason: r.Reason}}
	req := request(r)
	why := redactedParam(s.p, r)
	v, rule := s.p.Authorize(req)
	if v.Decision != policy.Allowed {
		c.To = v
		return c, policy.Charge{}, why
	}
	if rule := s.simTripped[r.Agent]; rule != "" && !s.tripped[r.Agent] {
		c.To = policy.Verdict{Decision: policy.Revoked, Rule: rule, Code: "keybrake_tripped",
			Reason: "agent " + r.Agent + " is halted: its rate limit " + rule + " refused a call earlier in the replay"}
		return c, policy.Charge{}, why
	}
	g := rule.Grant()
	subject, unknown := s.subject(r, g)
	if why == "" {
		why = unknown
	}
	// A record written before Keybrake kept what replay needs has an
	// amount and no moves_money: it is decided as moving that amount.
	moves := r.MovesMoney || !r.Amount.IsZero()
	switch {
	case why != "":
	case !r.MovesMoney && !r.Amount.IsZero():
		why = "it was recorded before Keybrake kept what replay needs (whether it moves money, its count)"
	case r.MovesMoney && r.Amount.Currency == "" && r.Priced == nil:
		why = "its amount was never resolved (refused before the lookup)"
	}
	v, charge := s.p.Decide(policy.Call{Request: req, Subject: subject, MovesMoney: moves,
		Amount: r.Amount, Priced: r.Priced, Count: r.Count}, rule, s.p.Day(r.Time))
	if v.Decision == policy.Held && r.Decision == policy.Allowed && r.Approval != "" {
		// A person approved this very call: under NEW it would have
		// waited for the same approval, and gone on to its limits.
		v = policy.Verdict{Decision: policy.Allowed, Rule: rule.ID}
	}
	if v.Decision != policy.Allowed {
		c.To = v
		return c, policy.Charge{}, why
	}
	c.Amount = charge.Amount
	if !s.admittedWithoutLimits(r) {
		if i, used, frees, ok := s.counters.fit(charge.Limits, r.Time); !ok {
			l := charge.Limits[i]
			c.To = l.OverLimit(used, frees, r.Time, s.p.Zone())
			if l.Halt {
				s.simTripped[r.Agent] = l.Rule
			}
			return c, policy.Charge{}, why
		}
	}
	c.To = v
	return c, charge, why
}

// admittedWithoutLimits reports whether the store admitted r without
// checking its limits: the retry of a call whose money was already
// counted (its holds taken over), or one the vendor replays.
func (s *sim) admittedWithoutLimits(r *audit.Record) bool {
	return r.Decision == policy.Allowed && (r.RetryOf != 0 || r.Outcome == audit.Replayed)
}

// request is r as Authorize sees it. Only the parameters the record
// keeps are known: redactedParam says when a condition needs another.
func request(r *audit.Record) policy.Request {
	params := make(url.Values, len(r.Params))
	for k, v := range r.Params {
		params[k] = []string{v}
	}
	req := policy.Request{Agent: r.Agent, Vendor: r.Vendor, Method: r.Method, Path: r.Path, Params: params,
		Customer: r.Customer, Account: r.Account, RefundOf: r.RefundOf, Run: r.Run}
	if r.Uncapped {
		req.Uncapped = "recorded as moving money Keybrake does not count"
	}
	return req
}

// redactedParam says which parameter condition of the new policy, on a
// rule for r's method and path, reads a parameter the record masks,
// drops (a secret's name) or keeps only as a summary (Twilio's Body as
// Body.chars); "" when none does. A parameter the vendor's audit leaves
// out without a trace reads as not sent.
func redactedParam(p *policy.Policy, r *audit.Record) string {
	a := p.Agents[r.Agent]
	if a == nil || a.Grants[r.Vendor] == nil {
		return ""
	}
	for _, rule := range a.Grants[r.Vendor].Allow {
		if _, ok := rule.Path.Match(r.Path); rule.Method != r.Method || !ok {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(rule.Params)) {
			v, sent := r.Params[name]
			_, keep := vendors.RedactParam(name, "x")
			masked := sent && (strings.Contains(v, "[redacted]") || strings.Contains(v, "****"))
			summarised := !sent && slices.ContainsFunc(slices.Collect(maps.Keys(r.Params)), func(k string) bool {
				return strings.HasPrefix(k, name+".")
			})
			if !keep || masked || summarised {
				return "parameter " + name + ", which " + rule.ID + " names, is redacted in the record"
			}
		}
	}
	return ""
}

// subject is whom r touches as the grant's scope sees it, and what of it
// the record cannot tell ("" when nothing the scope reads is missing).
func (s *sim) subject(r *audit.Record, g *policy.Grant) (policy.Subject, string) {
	subject := policy.Subject{Customer: r.Customer, NoCustomer: r.NoCustomer, Account: r.Account,
		Recipients: r.Recipients, Senders: r.Senders, MostRecipients: r.MostRecipients,
		RecipientsUnknown: r.AudienceUnknown}
	needs := g.Needs()
	why := ""
	if needs.Customer {
		subject.AllCustomers = r.Customer == "" && !r.NoCustomer && !r.CreatesCustomer
		switch {
		case r.CustomerUnknown:
			why = "its customer was not looked up when it was made (no customer scope was in force)"
		case r.Customer != "" && !g.Customers.IDs[r.Customer] && needs.Created:
			why = "whether the agent created customer " + r.Customer + " is not recorded"
		case r.Customer != "" && !g.Customers.IDs[r.Customer] && needs.Metadata:
			why = "the metadata of customer " + r.Customer + " is not recorded"
		}
	}
	if why == "" && r.RecipientsWithheld {
		why = s.withheld(r, g)
	}
	return subject, why
}

// withheld says which input a call whose record withholds recipients or
// senders lacks for the grant's scope and the vendor's prices: a list
// of recipients (or senders) the record holds none of, a price by
// destination prefix when the destination is not kept.
func (s *sim) withheld(r *audit.Record, g *policy.Grant) string {
	for _, l := range g.Lists {
		if (l.Subject == vendors.Recipients && len(r.Recipients) == 0) || (l.Subject == vendors.Senders && len(r.Senders) == 0) {
			return "its " + l.Match.Plural + " are not recorded (personal data the audit log never keeps), and " + l.Key + " reads them"
		}
	}
	if q := r.Priced; q != nil && q.Destination == "" {
		if v := s.p.Vendors[r.Vendor]; v != nil && v.Prices[q.Item] != nil && len(v.Prices[q.Item].Prefixes) > 0 {
			return "its destination is not recorded, and the " + q.Item + " price depends on it"
		}
	}
	return ""
}

// counted is what a call the new policy admits adds to each of its
// limits: for a call the recorded policy admitted too, what its record
// says still counts (its settlement; nothing once released; all of its
// reservation while its outcome is unknown); for a call only the new
// policy admits, its amount as decided.
func (s *sim) counted(r *audit.Record, c Call, charge policy.Charge) []int64 {
	out := make([]int64, len(charge.Limits))
	if c.To.Decision != policy.Allowed {
		return out
	}
	for i, l := range charge.Limits {
		out[i] = l.Add
		if r.Decision != policy.Allowed {
			continue
		}
		switch r.Outcome {
		case audit.Released, audit.Retried, audit.Replayed, audit.None:
			out[i] = 0
		case audit.Settled:
			out[i] = s.settled(r, l)
		}
	}
	return out
}

// settled is what a settled call counts against l, as the transport
// settles a hold (transport.SettleHolds): its money converted into l's
// currency, its units as the vendor reported them, its one call.
func (s *sim) settled(r *audit.Record, l policy.Limit) int64 {
	switch l.Unit {
	case "calls":
		return l.Add
	case "units":
		for _, h := range r.Holds {
			if h.Key == l.Key {
				return h.Settled
			}
		}
		for _, h := range r.Holds {
			if h.Unit == "units" {
				return min(h.Settled, l.Add)
			}
		}
		return l.Add
	}
	if r.Settled.IsZero() {
		return 0
	}
	a, err := s.p.Convert(r.Settled, money.Currency(l.Unit))
	if err != nil {
		return l.Add
	}
	return a.Micros
}
