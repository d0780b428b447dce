package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/keybrake/keybrake/money"
)

// Limits returns the counters an allowed call must fit, or the verdict that
// refuses it. r and rule are the request and the rule Authorize allowed it
// by, on this same policy; amount is the most money the call can move (zero
// Micros when it moves none, a known Currency otherwise); count is its
// billable units; day is the UTC day "2006-01-02" the call counts against.
//
// Limits checks what needs no counter: the amount's sign and currency, the
// per-call maxima (rule's and grant's, each in its own currency), that a
// money-moving call has a daily cap, and that the amount converts into every
// cap's currency. It returns, in this order and only where they apply: the
// agent's daily money cap, the vendor's shared daily money cap, the agent's
// daily unit count and the vendor's. It does not compare Add with Max: the
// store does that atomically against the day's counters.
//
// On success the verdict is Allowed with the rule's ID. On refusal the
// limits are nil. It is pure and safe for concurrent use.
func (p *Policy) Limits(r Request, rule *Rule, amount money.Amount, count int64, day string) ([]Limit, Verdict) {
	g, v := p.grantFor(r, rule)
	if g == nil {
		return nil, v
	}
	if !validDay(day) {
		return nil, badDay(day)
	}
	rules := g.rulesFor(r.Agent, r.Vendor)
	base := rules.base
	if amount.Micros < 0 {
		return nil, Verdict{Decision: Blocked, Rule: base, Code: "keybrake_bad_amount",
			Reason: "the call's amount " + amount.String() + " is negative"}
	}
	if count < 0 {
		return nil, Verdict{Decision: Blocked, Rule: base, Code: "keybrake_bad_count",
			Reason: "the call's unit count is negative"}
	}
	moves := amount.Micros > 0
	if _, known := amount.Currency.Exponent(); moves && !known {
		return nil, Verdict{Decision: Blocked, Rule: base, Code: "keybrake_bad_amount",
			Reason: "the call's amount has no currency Keybrake knows (" + quote(string(amount.Currency)) + ")"}
	}

	cv := converter{p: p, amount: amount}
	if moves {
		if v, ok := cv.perCallMax(rule, g, base); !ok {
			return nil, v
		}
		if g.DailyCap == nil {
			return nil, Verdict{Decision: Blocked, Rule: base, Code: "keybrake_no_cap",
				Reason: "agent " + r.Agent + " has no daily_cap on " + r.Vendor + "; calls that move money need one"}
		}
	}

	// The keys, and the charge limit's Per, are written into one buffer,
	// made one string at the end (dayLimits).
	var room [256]byte
	buf := room[:0]
	text := func(parts ...string) [2]int {
		from := len(buf)
		for _, p := range parts {
			buf = append(buf, p...)
		}
		return [2]int{from, len(buf)}
	}
	var d dayLimits
	if moves {
		rid := rules.dailyCap
		add, v, ok := cv.counted(*g.DailyCap, rid)
		if !ok {
			return nil, v
		}
		cur := string(g.DailyCap.Currency)
		d.add(Limit{Max: g.DailyCap.Micros, Add: add, Unit: cur, Rule: rid, Period: day, AlertAt: g.AlertAt},
			text("agent/", r.Agent, "/", r.Vendor, "/", day, "/", cur))
	}
	shared := p.Vendors[r.Vendor]
	var sharedCapRule, sharedCountRule string
	if shared != nil {
		sharedCapRule, sharedCountRule = shared.rulesFor(r.Vendor)
	}
	if moves && shared != nil && shared.DailyCap != nil {
		rid := sharedCapRule
		add, v, ok := cv.counted(*shared.DailyCap, rid)
		if !ok {
			return nil, v
		}
		cur := string(shared.DailyCap.Currency)
		d.add(Limit{Max: shared.DailyCap.Micros, Add: add, Unit: cur, Rule: rid, Period: day, AlertAt: shared.AlertAt},
			text("vendor/", r.Vendor, "/", day, "/", cur))
	}
	if count > 0 && g.DailyCount > 0 {
		d.add(Limit{Max: g.DailyCount, Add: count, Unit: "units", Rule: rules.dailyCount, Period: day, AlertAt: g.AlertAt},
			text("agent/", r.Agent, "/", r.Vendor, "/", day, "/units"))
	}
	if count > 0 && shared != nil && shared.DailyCount > 0 {
		d.add(Limit{Max: shared.DailyCount, Add: count, Unit: "units", Rule: sharedCountRule, Period: day, AlertAt: shared.AlertAt},
			text("vendor/", r.Vendor, "/", day, "/units"))
	}
	if cs := g.Customers; cs != nil {
		// Per customer, per UTC day; and per charge, for good: a
		// charge refunded once is not refunded again tomorrow.
		if moves && r.Customer != "" && cs.DailyCap != nil {
			rid := rules.customersDailyCap
			add, v, ok := cv.counted(*cs.DailyCap, rid)
			if !ok {
				return nil, v
			}
			cur := string(cs.DailyCap.Currency)
			d.add(Limit{Max: cs.DailyCap.Micros, Add: add, Unit: cur, Rule: rid, Period: day},
				text("customer/", r.Agent, "/", r.Vendor, "/", r.Account, "/", r.Customer, "/", day, "/", cur))
		}
		if count > 0 && r.Customer != "" && cs.DailyCount > 0 {
			d.add(Limit{Max: cs.DailyCount, Add: count, Unit: "units", Rule: rules.customersDailyCount, Period: day},
				text("customer/", r.Agent, "/", r.Vendor, "/", r.Account, "/", r.Customer, "/", day, "/units"))
		}
		if r.RefundOf != "" {
			d.add(Limit{Max: cs.MaxRefundsPerCharge, Add: 1, Unit: "units", Rule: rules.maxRefundsPerCharge, Kind: ChargeLimit},
				text("refunds/", r.Agent, "/", r.Vendor, "/", r.Account, "/", r.RefundOf))
			d.perAt = text("the charge ", r.RefundOf)
		}
	}
	limits := d.limits(buf)
	limits, v, ok := p.budgetLimits(limits, r, g, shared, &cv, moves, count, day)
	if !ok {
		return nil, v
	}
	if len(limits) == 0 {
		limits = nil
	}
	return limits, Verdict{Decision: Allowed, Rule: rule.ID}
}

// dayLimits gathers the limits Limits builds before the budgets' (at most
// seven: the agent's and the vendor's money and units, the customer's money
// and units, the charge's refunds) in an array, each key a span of one
// buffer, which limits makes one string: every call builds its keys with
// one allocation, not one a key. (Each key is a substring of that string,
// so a key kept keeps the call's others alive with it: a few hundred
// bytes.)
type dayLimits struct {
	l     [7]Limit
	key   [7][2]int // the spans of the buffer that are the keys
	perAt [2]int    // the span that is l[n-1]'s Per, when its end > 0
	n     int
}

func (d *dayLimits) add(l Limit, key [2]int) {
	d.l[d.n], d.key[d.n] = l, key
	d.n++
}

// limits returns the limits gathered, their keys (and Per) cut from buf,
// in a slice of their own; nil when there are none.
func (d *dayLimits) limits(buf []byte) []Limit {
	if d.n == 0 {
		return nil
	}
	s := string(buf)
	out := make([]Limit, d.n)
	for i := range out {
		out[i] = d.l[i]
		out[i].Key = s[d.key[i][0]:d.key[i][1]]
	}
	if d.perAt[1] > 0 {
		out[d.n-1].Per = s[d.perAt[0]:d.perAt[1]]
	}
	return out
}

// grantFor finds the grant a call was allowed under. Not finding it means
// Limits was called for a call Authorize did not allow on this policy: a
// bug, refused as an Error rather than counted against the wrong limits.
func (p *Policy) grantFor(r Request, rule *Rule) (*Grant, Verdict) {
	mismatch := Verdict{Decision: Error, Rule: "agents", Code: "keybrake_policy_mismatch",
		Reason: "limits were asked for a call this policy did not allow"}
	if p == nil {
		return nil, Verdict{Decision: Error, Rule: "policy", Code: "keybrake_no_policy", Reason: "no policy is loaded"}
	}
	if rule == nil {
		return nil, mismatch
	}
	a := p.Agents[r.Agent]
	if a == nil {
		return nil, mismatch
	}
	g := a.Grants[r.Vendor]
	if g == nil {
		return nil, mismatch
	}
	return g, Verdict{}
}

// validDay reports whether day is a date as time.Parse("2006-01-02")
// reads one, written out: every decision checks its day, and time.Parse
// was a tenth of deciding.
func validDay(day string) bool {
	if len(day) != len("2006-01-02") || day[4] != '-' || day[7] != '-' {
		return false
	}
	y, m, d := number(day[0:4]), number(day[5:7]), number(day[8:10])
	if y < 0 || m < 1 || m > 12 || d < 1 {
		return false
	}
	// Day 0 of the next month is the last of this one.
	return d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// number reads decimal digits; -1 when s holds anything else.
func number(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func badDay(day string) Verdict {
	return Verdict{Decision: Error, Rule: "agents", Code: "keybrake_bad_day",
		Reason: "day " + quote(day) + " is not a date like 2006-01-02"}
}

// converter counts one call's amount against limits, converting it into
// each limit's currency at most once.
type converter struct {
	p      *Policy
	amount money.Amount
	last   money.Amount // the last conversion, reused for the next limit in that currency
}

// perCallMax checks the amount against the rule's and the grant's per-call
// maxima, each in its own currency. When both are exceeded and comparable
// (one currency), the stricter one is named.
func (c *converter) perCallMax(rule *Rule, g *Grant, base string) (Verdict, bool) {
	type max struct {
		at       *money.Amount
		fromRule bool
	}
	maxima := [2]max{{rule.PerCallMax, true}, {g.PerCallMax, false}}
	if a, b := maxima[0].at, maxima[1].at; a != nil && b != nil && a.Currency == b.Currency && b.Micros < a.Micros {
		maxima[0], maxima[1] = maxima[1], maxima[0]
	}
	for _, m := range maxima {
		if m.at == nil {
			continue
		}
		// The rule's name is built only on refusal: the allowed path
		// builds no strings here.
		name := func() string {
			if m.fromRule {
				return rule.ID + ".per_call_max"
			}
			return base + ".per_call_max"
		}
		add, v, ok := c.counted(*m.at, "")
		if !ok {
			v.Rule = name()
			return v, false
		}
		if add > m.at.Micros {
			return Verdict{Decision: Capped, Rule: name(), Code: "keybrake_per_call_max",
				Reason: showAmount(c.amount, add, m.at.Currency) + " exceeds the per-call maximum of " + m.at.String()}, false
		}
	}
	return Verdict{}, true
}

// counted converts the amount into the currency of limit, rounding up, or
// returns the verdict refusing a call that cannot be counted against it.
func (c *converter) counted(limit money.Amount, rule string) (int64, Verdict, bool) {
	a := c.amount
	if a.Currency == limit.Currency {
		return a.Micros, Verdict{}, true
	}
	if c.last.Currency == limit.Currency {
		return c.last.Micros, Verdict{}, true
	}
	conv, err := c.p.Convert(a, limit.Currency)
	switch {
	case errors.Is(err, ErrNoRate):
		return 0, Verdict{Decision: Blocked, Rule: rule, Code: "keybrake_currency_not_capped",
			Reason: "a call in " + string(a.Currency) + " cannot count against " + limit.String() +
				": fx has no rate from " + string(a.Currency) + " to " + string(limit.Currency)}, false
	case err != nil:
		return 0, Verdict{Decision: Blocked, Rule: rule, Code: "keybrake_bad_amount",
			Reason: "the call's amount " + a.String() + " is too large to convert to " + string(limit.Currency)}, false
	}
	c.last = conv
	return conv.Micros, Verdict{}, true
}

// ErrNoRate is returned, wrapped, by Convert when fx has no direct rate
// between two currencies.
var ErrNoRate = errors.New("policy: fx has no rate")

// Convert returns a in currency to, as Limits counts it: unchanged when a is
// already in to, else by fx's direct rate from a's currency to to, rounded
// up to the micro, so that a converted amount never understates a call.
// Rates are never inverted or chained: the operator wrote each conversion
// that counts. It returns an error wrapping ErrNoRate when there is no such
// rate, or money.ErrOverflow when the result does not fit. It is pure and
// safe for concurrent use; a nil policy converts nothing but identity.
func (p *Policy) Convert(a money.Amount, to money.Currency) (money.Amount, error) {
	if a.Currency == to {
		return a, nil
	}
	if p != nil {
		for _, r := range p.FX[a.Currency] {
			if r.Per.Currency == to {
				return r.Convert(a)
			}
		}
	}
	return money.Amount{}, fmt.Errorf("%w from %s to %s", ErrNoRate, a.Currency, to)
}

// showAmount renders "10.00 USD", or "10.00 EUR (10.85 USD)" when converted.
func showAmount(amount money.Amount, micros int64, cur money.Currency) string {
	if amount.Currency == cur {
		return amount.String()
	}
	return amount.String() + " (" + money.Amount{Micros: micros, Currency: cur}.String() + ")"
}
