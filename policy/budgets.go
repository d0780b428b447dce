package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/money"
)

// Budgets are the limits beyond one day's: calendar weeks and months in
// the policy's time zone, rolling windows, and (in a grant) runs. A grant
// and a vendor's shared section each hold one; a zero Budgets limits
// nothing.
type Budgets struct {
	// A calendar week runs from Monday 00:00, a month from its first day
	// 00:00, in the policy's time zone (Policy.Location).
	WeeklyCap, MonthlyCap     *money.Amount
	WeeklyCount, MonthlyCount int64 // billable units, as daily_count counts them

	// Rates are rolling windows, in file order: in any interval of
	// Per, no more than Count calls or Spend money.
	Rates []*Rate

	// PerRun bounds each run (Request.Run) of the grant; nil: runs are
	// not limited. A shared section never has one.
	PerRun *RunBudget

	// AlertAt are the percentages of every cap and count of the section
	// (daily, weekly, monthly; not per customer, per run or the rolling
	// windows) at which an alert is raised, once per period, when a
	// call's reservation reaches them; ascending.
	AlertAt []int64
}

// none reports whether b limits nothing (alert levels aside: they limit
// nothing).
func (b *Budgets) none() bool {
	return b.WeeklyCap == nil && b.MonthlyCap == nil && b.WeeklyCount == 0 && b.MonthlyCount == 0 && len(b.Rates) == 0 && b.PerRun == nil
}

// Rate is one rolling window: "{count: 20, per: 1m, halt: true}".
type Rate struct {
	ID    string        // "agents.refund-bot.stripe.rate[0]"
	Count int64         // calls in any interval of Per; 0 when it limits money
	Spend *money.Amount // money in any interval of Per; nil when it counts calls
	Per   time.Duration
	// Halt trips the agent the first time this window refuses a call:
	// it is halted, everywhere its store reaches, until a person resumes
	// it.
	Halt bool
	Line int

	key string // its counter key after the agent's or vendor's prefix: "rate/1m0s/calls"
}

// What returns "20 calls" or "50.00 USD".
func (r *Rate) What() string {
	if r.Spend != nil {
		return r.Spend.String()
	}
	return fmt.Sprintf("%d calls", r.Count)
}

// Span returns Per as the policy writes it: "1m", "10m", "1h30m".
func (r *Rate) Span() string { return Span(r.Per) }

// RunBudget is a grant's per_run section.
type RunBudget struct {
	Cap   *money.Amount // money per run; nil: not limited
	Count int64         // calls per run; 0: not limited
	// AllowNoRun admits calls that name no run; by default a grant with
	// per_run refuses them.
	AllowNoRun bool
	Line       int
}

// Grant and VendorLimits hold Budgets; budgetKey decodes into either.
type budgeted interface{ budgets() *Budgets }

func (g *Grant) budgets() *Budgets        { return &g.Budgets }
func (l *VendorLimits) budgets() *Budgets { return &l.Budgets }

// budgetKeys are the keys of Budgets, for a grant (runs true) or a shared
// section.
func budgetKeys[T budgeted](keys map[string]key[T], runs bool) {
	keys["weekly_cap"] = key[T]{decode: amountKey(func(t T) **money.Amount { return &t.budgets().WeeklyCap })}
	keys["monthly_cap"] = key[T]{decode: amountKey(func(t T) **money.Amount { return &t.budgets().MonthlyCap })}
	keys["weekly_count"] = key[T]{decode: countKey(func(t T) *int64 { return &t.budgets().WeeklyCount })}
	keys["monthly_count"] = key[T]{decode: countKey(func(t T) *int64 { return &t.budgets().MonthlyCount })}
	keys["rate"] = key[T]{decode: func(d *decoder, at string, _, v *yaml.Node, t T) error {
		rates, err := d.rates(at, v)
		t.budgets().Rates = rates
		return err
	}}
	keys["alert_at"] = key[T]{decode: func(d *decoder, at string, _, v *yaml.Node, t T) error {
		pcts, err := d.percents(at, v)
		t.budgets().AlertAt = pcts
		return err
	}}
	if runs {
		keys["per_run"] = key[T]{decode: func(d *decoder, at string, k, v *yaml.Node, t T) error {
			rb := &RunBudget{Line: k.Line}
			t.budgets().PerRun = rb
			return decodeMapping(d, at, k, v, runSchema, rb)
		}}
	}
}

var runSchema = &schema[*RunBudget]{keys: map[string]key[*RunBudget]{
	"cap":          {decode: amountKey(func(r *RunBudget) **money.Amount { return &r.Cap })},
	"count":        {decode: countKey(func(r *RunBudget) *int64 { return &r.Count })},
	"allow_no_run": {decode: boolKey(func(r *RunBudget) *bool { return &r.AllowNoRun })},
}, check: func(d *decoder, at string, r *RunBudget) error {
	if r.Cap == nil && r.Count == 0 {
		return d.errAt(r.Line, "%s: want cap, count or both", at)
	}
	return nil
}}

// maxWindow bounds a rolling window: longer ones are what weekly_cap and
// monthly_cap are for, and a window's entries are kept for its length.
const maxWindow = 31 * 24 * time.Hour

var rateSchema = &schema[*Rate]{keys: map[string]key[*Rate]{
	"count": {decode: countKey(func(r *Rate) *int64 { return &r.Count })},
	"spend": {decode: amountKey(func(r *Rate) **money.Amount { return &r.Spend })},
	"per":   {decode: decodePer, required: true},
	"halt":  {decode: boolKey(func(r *Rate) *bool { return &r.Halt })},
}, check: func(d *decoder, at string, r *Rate) error {
	if (r.Count == 0) == (r.Spend == nil) {
		return d.errAt(r.Line, "%s: want exactly one of count (calls) and spend (money)", at)
	}
	return nil
}}

func decodePer(d *decoder, at string, _, v *yaml.Node, r *Rate) error {
	s, err := d.scalar(at, v, "a duration such as 1m, 10m or 1h")
	if err != nil {
		return err
	}
	per, err := time.ParseDuration(s)
	if err != nil || per < time.Second || per > maxWindow || per%time.Second != 0 {
		return d.errorf(v, at, "%q: want a whole number of seconds from 1s to %s, such as 1m, 10m or 1h", s, "744h")
	}
	r.Per = per
	return nil
}

func (d *decoder) rates(at string, v *yaml.Node) ([]*Rate, error) {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return nil, d.wrongKind(at, v, "a list of windows such as {count: 20, per: 1m}")
	}
	type kind struct {
		per   time.Duration
		money bool
	}
	seen := map[kind]int{}
	rates := make([]*Rate, 0, len(v.Content))
	for i, item := range v.Content {
		r := &Rate{ID: fmt.Sprintf("%s[%d]", at, i), Line: item.Line}
		if err := decodeMapping(d, r.ID, nil, item, rateSchema, r); err != nil {
			return nil, err
		}
		k := kind{r.Per, r.Spend != nil}
		if first, dup := seen[k]; dup {
			return nil, d.errAt(item.Line, "%s: a second window of %s on the same kind (first at line %d); keep the stricter", r.ID, r.Per, first)
		}
		seen[k] = item.Line
		r.key = "rate/" + r.Per.String() + "/calls"
		if r.Spend != nil {
			r.key = "rate/" + r.Per.String() + "/" + string(r.Spend.Currency)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

var percent = regexp.MustCompile(`^([1-9][0-9]?|100)%$`)

// percents reads "[50%, 80%]": whole percentages from 1% to 100%,
// ascending.
func (d *decoder) percents(at string, v *yaml.Node) ([]int64, error) {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return nil, d.wrongKind(at, v, "a list of percentages such as [50%, 80%]")
	}
	out := make([]int64, 0, len(v.Content))
	for _, item := range v.Content {
		s, err := d.scalar(at, item, "a percentage such as 80%")
		if err != nil {
			return nil, err
		}
		m := percent.FindStringSubmatch(s)
		if m == nil {
			return nil, d.errorf(item, at, "%q: want a whole percentage from 1%% to 100%%, such as 80%%", s)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, d.errorf(item, at, "%s: list the percentages once each, ascending", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// decodeTimezone reads the policy's time zone, an IANA name such as
// Europe/Berlin (the zone database is built in: the machine's is not
// needed).
func decodeTimezone(d *decoder, at string, _, v *yaml.Node, p *Policy) error {
	s, err := d.scalar(at, v, "an IANA time zone such as Europe/Berlin")
	if err != nil {
		return err
	}
	if s == "Local" || s == "" {
		return d.errorf(v, at, "%q: name the zone, such as Europe/Berlin or UTC: the machine's own would move with the machine", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return d.errorf(v, at, "%q is not a time zone Keybrake knows; want an IANA name such as Europe/Berlin", s)
	}
	p.Location = loc
	return nil
}

// maxRun bounds a run id's length.
const maxRun = 128

// CheckRun says what is wrong with a run id, or nil: 1 to 128 visible
// ASCII characters, no "/". Run ids are opaque otherwise; a bad one is
// refused, never truncated or cleaned.
func CheckRun(run string) error {
	if run == "" || len(run) > maxRun {
		return fmt.Errorf("a run id is 1 to %d characters, not %d", maxRun, len(run))
	}
	for i := 0; i < len(run); i++ {
		if c := run[i]; c <= ' ' || c > '~' || c == '/' {
			return fmt.Errorf("a run id is visible ASCII without \"/\"; %q has %q at %d", run, c, i)
		}
	}
	return nil
}

// maxPrincipal bounds a principal's length.
const maxPrincipal = 256

// CheckPrincipal says what is wrong with a principal (who delegated a
// run, "alice@example.com"), or nil: 1 to 256 visible ASCII characters.
func CheckPrincipal(p string) error {
	if p == "" || len(p) > maxPrincipal {
		return fmt.Errorf("a principal is 1 to %d characters, not %d", maxPrincipal, len(p))
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("a principal is visible ASCII; %q has %q at %d", p, c, i)
		}
	}
	return nil
}
