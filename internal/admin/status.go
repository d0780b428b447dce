package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// Status is "is it stopped, and how much moved today": what `keybrake
// status` prints. The zero Status says nothing is known; ComputeStatus and
// Source.Status build real ones.
type Status struct {
	Time        time.Time `json:"time"`
	Day         string    `json:"day"` // the UTC day counted, "2006-01-02"
	PolicyFile  string    `json:"policy_file,omitempty"`
	PolicyHash  string    `json:"policy_hash"`            // in force; "" when none is
	PolicyError string    `json:"policy_error,omitempty"` // why no policy is in force, or why the file is not the one in force
	Halted      bool      `json:"halted"`                 // every agent stopped: halt: true, the kill switch for all, or Halt()
	// HaltedBy says what halts every agent, as the policy in force says
	// it ("Brake.Halt", "the kill switch /etc/keybrake.yaml.halt", "the
	// policy (halt: true)", a fleet stop's own words); "" when not halted,
	// or from a Brake that did not say.
	HaltedBy string   `json:"halted_by,omitempty"`
	Revoked  []string `json:"revoked"` // agents revoked by the file, the kill switch or Revoke(), sorted
	// Tripped are the agents halted by their own rate limits (halt:
	// true), with the limit and where the trip is kept; they stay halted
	// until `keybrake resume AGENT`.
	Tripped   map[string]policy.Trip `json:"tripped,omitempty"`
	RevokedBy map[string]string      `json:"revoked_by,omitempty"` // for each of Revoked, what revoked it, as HaltedBy
	Limits    []LimitStatus          `json:"limits"`               // every daily money cap and count of the policy, today
	// Customers are the grants' per-customer daily limits, today: how
	// many customers each counted and the most used of them.
	Customers []CustomerLimits `json:"customers"`
	// Spend is the money each agent moved (or still holds) today, hour by
	// hour, per vendor and currency.
	Spend []AgentSpend `json:"spend"`
	// Shadow is, per agent, what the shadow policy decided otherwise
	// today (UTC), read with Spend; empty without a shadow policy.
	Shadow []ShadowAgent `json:"shadow,omitempty"`
	Open   OpenStatus    `json:"open"` // reservations still reserved or unknown: still counted
	// Warnings are what the Brake's runner asks status to repeat, such
	// as keybrake serve listening in plain HTTP beyond loopback.
	Warnings []string `json:"warnings,omitempty"`
}

// LimitStatus is one daily limit of the policy and where its counter
// stands. Amounts are in Unit: micros of a currency, or units ("units").
// In JSON they follow the audit log's convention (audit.Hold): money is an
// exact decimal string in major units of Unit ("500.00"), a count an
// integer.
type LimitStatus struct {
	Agent    string // "" for a limit shared by every agent of the vendor
	Vendor   string
	Account  string // of one customer's counter (CustomerLimits): the connected account, "" for the platform's own
	Customer string // of one customer's counter (CustomerLimits): the customer's ID
	Rule     string // "agents.refund-bot.stripe.daily_cap"
	Key      string // the store's counter key
	Unit     string // a currency code, or "units"
	Max      int64
	Settled  int64 // moved, as the vendor confirmed
	Pending  int64 // held by calls in flight
	Unknown  int64 // held by calls whose outcome is unknown
	// Window, for a rolling window (rate:), is its length; its totals
	// are what the window holds at Status.Time.
	Window time.Duration
	// Frees is when the limit next gives room: the end of its day, week
	// or month in the policy's time zone; for a window, when its oldest
	// call leaves it (zero when it holds none).
	Frees time.Time
}

type jsonLimit struct {
	Agent    string          `json:"agent,omitempty"`
	Vendor   string          `json:"vendor"`
	Account  string          `json:"account,omitempty"`
	Customer string          `json:"customer,omitempty"`
	Rule     string          `json:"rule"`
	Key      string          `json:"key"`
	Unit     string          `json:"unit"`
	Max      json.RawMessage `json:"max"`
	Settled  json.RawMessage `json:"settled"`
	Pending  json.RawMessage `json:"pending"`
	Unknown  json.RawMessage `json:"unknown"`
	Window   string          `json:"window,omitempty"`
	Frees    time.Time       `json:"frees,omitzero"`
}

// MarshalJSON writes the limit with its money as decimal strings.
func (l LimitStatus) MarshalJSON() ([]byte, error) {
	q := func(n int64) json.RawMessage {
		if c := money.Currency(l.Unit); known(c) {
			return json.RawMessage(strconv.Quote(money.Amount{Micros: n, Currency: c}.Decimal()))
		}
		return json.RawMessage(strconv.FormatInt(n, 10))
	}
	j := jsonLimit{Agent: l.Agent, Vendor: l.Vendor, Account: l.Account, Customer: l.Customer, Rule: l.Rule, Key: l.Key, Unit: l.Unit,
		Max: q(l.Max), Settled: q(l.Settled), Pending: q(l.Pending), Unknown: q(l.Unknown), Frees: l.Frees}
	if l.Window > 0 {
		j.Window = l.Window.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, and the numbers of micros
// a Brake wrote before it.
func (l *LimitStatus) UnmarshalJSON(b []byte) error {
	var j jsonLimit
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err error
	q := func(field string, v json.RawMessage) int64 {
		var n int64
		var ferr error
		var s string
		switch {
		case len(v) == 0:
		case json.Unmarshal(v, &s) == nil:
			var a money.Amount
			a, ferr = money.ParseDecimal(s, money.Currency(j.Unit))
			n = a.Micros
		default:
			n, ferr = strconv.ParseInt(string(v), 10, 64)
		}
		if ferr != nil && err == nil {
			err = fmt.Errorf("admin: limit %s: %s %s: %w", j.Key, field, v, ferr)
		}
		return n
	}
	got := LimitStatus{Agent: j.Agent, Vendor: j.Vendor, Account: j.Account, Customer: j.Customer, Rule: j.Rule, Key: j.Key, Unit: j.Unit,
		Max: q("max", j.Max), Settled: q("settled", j.Settled), Pending: q("pending", j.Pending), Unknown: q("unknown", j.Unknown), Frees: j.Frees}
	if err != nil {
		return err
	}
	if j.Window != "" {
		if got.Window, err = time.ParseDuration(j.Window); err != nil {
			return fmt.Errorf("admin: limit %s: window %q: %w", j.Key, j.Window, err)
		}
	}
	*l = got
	return nil
}

func known(c money.Currency) bool {
	_, ok := c.Exponent()
	return ok
}

// Used is what counts against the limit: settled, pending and unknown.
func (l LimitStatus) Used() int64 {
	return store.Counter{Settled: l.Settled, Pending: l.Pending, Unknown: l.Unknown}.Total()
}

// OpenStatus counts the records whose money is still counted without
// being settled, whatever their day: Reserved (in flight) and Unknown (the
// outcome was never learnt; counted until someone reconciles it).
type OpenStatus struct {
	Reserved int `json:"reserved"`
	Unknown  int `json:"unknown"`
	// Oldest is the Time of the oldest of them; zero when there are none.
	Oldest time.Time `json:"oldest,omitzero"`
	// Amounts is what they hold, per currency code, as exact decimals in
	// major units ("12.50"). nil when they hold no money.
	Amounts map[string]string `json:"amounts,omitempty"`
}

// The sources of the policy's own stops, as HaltedBy and RevokedBy name them.
const (
	byPolicyHalt    = "the policy (halt: true)"
	byPolicyRevoked = "the policy (revoked: true)"
)

// ComputeStatus builds a Status from a store and the policy in force, for
// day (UTC, "2006-01-02"). stops are what the caller knows beyond the
// policy, each with its source (a Brake's policy in force already carries
// its kill switch, Halt, Revoke and fleet stops: policy.WithStops; the CLI
// reading files without one passes the kill switch when no policy loads).
// The sources come from the policy first (HaltedBy, Agent.RevokedBy, or
// its own halt: and revoked:), then from stops; they are printed as they
// are, whatever they name. pol may be nil, with polErr saying why no
// policy is in force; both may be set when a last valid policy is kept
// while the file is invalid. Without a policy Limits is empty: only the
// policy names them.
//
// It reads one counter per limit and the store's outstanding records
// (store.Store.Outstanding, found by index), so its cost does not grow
// with the log: a metrics scrape calls it. Customers and Spend are left
// empty (Local.Status fills them, at a cost of their own). Any store
// error is returned; a Status is never partial.
func ComputeStatus(ctx context.Context, st store.Store, pol *policy.Policy, polErr error, day string, stops policy.Stops) (*Status, error) {
	start, err := time.Parse("2006-01-02", day)
	if err != nil || start.Format("2006-01-02") != day {
		return nil, fmt.Errorf("admin: day %q is not a date like 2006-01-02", day)
	}
	s := &Status{Time: time.Now().UTC(), Day: day, Revoked: []string{}, Limits: []LimitStatus{}, Customers: []CustomerLimits{}, Spend: []AgentSpend{}}
	by := map[string]string{}
	switch {
	case polErr != nil:
		s.PolicyError = polErr.Error()
	case pol == nil:
		s.PolicyError = "no policy is in force"
	}
	if pol != nil {
		s.PolicyFile, s.PolicyHash = pol.File, pol.Hash
		if pol.Halt {
			s.Halted, s.HaltedBy = true, cmp.Or(pol.HaltedBy, byPolicyHalt)
		}
		for name, a := range pol.Agents {
			if a.Revoked {
				by[name] = cmp.Or(a.RevokedBy, byPolicyRevoked)
			}
		}
		s.Limits = limitsOf(pol, day)
		s.Limits = append(s.Limits, budgetLimitsOf(pol, day)...)
	}
	if !s.Halted && stops.Halt != "" {
		s.Halted, s.HaltedBy = true, stops.Halt
	}
	for a, src := range stops.Revoked {
		if _, ok := by[a]; !ok {
			by[a] = src
		}
	}
	s.Revoked = append(s.Revoked, slices.Sorted(maps.Keys(by))...)
	for a, src := range by {
		if src != "" {
			if s.RevokedBy == nil {
				s.RevokedBy = map[string]string{}
			}
			s.RevokedBy[a] = src
		}
	}

	for i := range s.Limits {
		l := &s.Limits[i]
		if l.Window > 0 {
			if err := readWindow(ctx, st, l, s.Time); err != nil {
				return nil, err
			}
			continue
		}
		c, err := st.Counter(ctx, l.Key)
		if err != nil {
			return nil, fmt.Errorf("admin: reading counter %s: %w", l.Key, err)
		}
		l.Settled, l.Pending, l.Unknown = c.Settled, c.Pending, c.Unknown
	}
	for a, t := range stops.Tripped {
		if s.Tripped == nil {
			s.Tripped = map[string]policy.Trip{}
		}
		s.Tripped[a] = t
	}
	if pol != nil {
		for name, a := range pol.Agents {
			if a.Tripped != nil {
				if s.Tripped == nil {
					s.Tripped = map[string]policy.Trip{}
				}
				s.Tripped[name] = *a.Tripped
			}
		}
	}
	open, err := openReservations(ctx, st)
	if err != nil {
		return nil, err
	}
	s.Open = open
	return s, nil
}

// limitsOf lists the policy's daily limits with the counter keys
// policy.Limits gives them: each agent's grants in name order, then the
// vendors' shared limits.
func limitsOf(pol *policy.Policy, day string) []LimitStatus {
	out := []LimitStatus{}
	capOf := func(agent, vendor, rule, key string, at *money.Amount) {
		if at != nil {
			cur := string(at.Currency)
			out = append(out, LimitStatus{Agent: agent, Vendor: vendor, Rule: rule, Key: key + cur, Unit: cur, Max: at.Micros})
		}
	}
	countOf := func(agent, vendor, rule, key string, n int64) {
		if n > 0 {
			out = append(out, LimitStatus{Agent: agent, Vendor: vendor, Rule: rule, Key: key + "units", Unit: "units", Max: n})
		}
	}
	for _, name := range sortedKeys(pol.Agents) {
		a := pol.Agents[name]
		for _, v := range sortedKeys(a.Grants) {
			g := a.Grants[v]
			base, key := "agents."+name+"."+v, "agent/"+name+"/"+v+"/"+day+"/"
			capOf(name, v, base+".daily_cap", key, g.DailyCap)
			countOf(name, v, base+".daily_count", key, g.DailyCount)
		}
	}
	for _, v := range sortedKeys(pol.Vendors) {
		l := pol.Vendors[v]
		base, key := "vendors."+v, "vendor/"+v+"/"+day+"/"
		capOf("", v, base+".daily_cap", key, l.DailyCap)
		countOf("", v, base+".daily_count", key, l.DailyCount)
	}
	end := policy.PeriodEnd(day, pol.Zone())
	for i := range out {
		out[i].Frees = end
	}
	return out
}

// openReservations sums the records still Reserved or Unknown. A
// reservation that holds nothing (a replay) is counted but adds no money.
func openReservations(ctx context.Context, st store.Store) (OpenStatus, error) {
	var o OpenStatus
	sums := map[money.Currency]money.Amount{}
	err := st.Outstanding(ctx, func(r *audit.Record) error {
		switch r.Outcome {
		case audit.Reserved:
			o.Reserved++
		case audit.Unknown:
			o.Unknown++
		default:
			return nil
		}
		if o.Oldest.IsZero() || r.Time.Before(o.Oldest) {
			o.Oldest = r.Time
		}
		if len(r.Holds) == 0 || r.Reserved.Currency == "" {
			return nil
		}
		sum, ok := sums[r.Reserved.Currency]
		if !ok {
			sum.Currency = r.Reserved.Currency
		}
		sum, err := sum.Add(r.Reserved)
		if err != nil {
			return fmt.Errorf("admin: summing open reservations in %s: %w", r.Reserved.Currency, err)
		}
		sums[r.Reserved.Currency] = sum
		return nil
	})
	if err != nil {
		return OpenStatus{}, fmt.Errorf("admin: reading open reservations: %w", err)
	}
	for c, a := range sums {
		if o.Amounts == nil {
			o.Amounts = map[string]string{}
		}
		o.Amounts[string(c)] = a.Decimal()
	}
	return o, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
