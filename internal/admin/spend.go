package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
)

// AgentSpend is what one agent moved with one vendor in one currency over
// a UTC day, hour by hour: what each settled call moved, and what each
// call still in flight or of unknown outcome holds (it is still counted).
// In JSON the hours are exact decimal strings, as the audit log writes
// money.
type AgentSpend struct {
	Agent    string
	Vendor   string
	Currency money.Currency
	Hours    [24]int64 // micros; Hours[h] covers h:00 to h:59 UTC
}

// Total is the day's sum, or false when it does not fit an int64.
func (a AgentSpend) Total() (int64, bool) {
	var t int64
	for _, h := range a.Hours {
		if h > 0 && t > 1<<63-1-h {
			return 0, false
		}
		t += h
	}
	return t, true
}

type jsonSpend struct {
	Agent    string     `json:"agent"`
	Vendor   string     `json:"vendor"`
	Currency string     `json:"currency"`
	Hours    [24]string `json:"hours"`
}

// MarshalJSON writes the hours as decimals in major units ("12.50").
func (a AgentSpend) MarshalJSON() ([]byte, error) {
	j := jsonSpend{Agent: a.Agent, Vendor: a.Vendor, Currency: string(a.Currency)}
	for h, n := range a.Hours {
		j.Hours[h] = money.Amount{Micros: n, Currency: a.Currency}.Decimal()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *AgentSpend) UnmarshalJSON(b []byte) error {
	var j jsonSpend
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	got := AgentSpend{Agent: j.Agent, Vendor: j.Vendor, Currency: money.Currency(j.Currency)}
	for h, s := range j.Hours {
		m, err := money.ParseDecimal(s, got.Currency)
		if err != nil {
			return fmt.Errorf("admin: spend of %s at hour %d: %w", j.Agent, h, err)
		}
		got.Hours[h] = m.Micros
	}
	*a = got
	return nil
}

// daySpend sums the day's records per agent, vendor and currency, hour by
// hour, sorted by agent, vendor and currency, and in the same pass what
// the shadow policy decided otherwise. It reads every record of the day
// (one Query of the time index), so it costs in proportion to them.
func daySpend(ctx context.Context, st store.Store, day string) ([]AgentSpend, []ShadowAgent, error) {
	start, err := time.Parse("2006-01-02", day)
	if err != nil {
		return nil, nil, fmt.Errorf("admin: day %q is not a date like 2006-01-02", day)
	}
	var shadow ShadowTally
	type group struct {
		agent, vendor string
		cur           money.Currency
	}
	sums := map[group]*AgentSpend{}
	err = st.Query(ctx, audit.Query{Since: start, Until: start.Add(24 * time.Hour)}, func(r *audit.Record) error {
		shadow.Add(r)
		a := r.Moved()
		if a.Micros <= 0 || a.Currency == "" {
			return nil
		}
		g := group{r.Agent, r.Vendor, a.Currency}
		s := sums[g]
		if s == nil {
			s = &AgentSpend{Agent: r.Agent, Vendor: r.Vendor, Currency: a.Currency}
			sums[g] = s
		}
		h := r.Time.UTC().Hour()
		if s.Hours[h] > 1<<63-1-a.Micros {
			return fmt.Errorf("admin: %s's spend in %s at hour %d overflows", r.Agent, a.Currency, h)
		}
		s.Hours[h] += a.Micros
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("admin: reading the day's records for its spend: %w", err)
	}
	out := make([]AgentSpend, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b AgentSpend) int {
		return cmp.Or(cmp.Compare(a.Agent, b.Agent), cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Currency, b.Currency))
	})
	return out, shadow.Agents(), nil
}
