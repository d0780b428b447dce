package policy

import (
	"fmt"
	"time"

	"github.com/keybrake/keybrake/money"
)

// OverLimit is the verdict refusing a call whose hold on l the store
// found full: used is what l's counter (or window) held before the call;
// frees, for a RateLimit, when its window will admit the call (zero:
// never, the call alone is over); now is the call's time, and zone the
// policy's, for saying when a period ends.
func (l Limit) OverLimit(used int64, frees, now time.Time, zone *time.Location) Verdict {
	v := Verdict{Decision: Capped, Rule: l.Rule}
	money := l.Unit != "units" && l.Unit != "calls"
	show := func(n int64) string {
		if money {
			return amountOf(n, l.Unit)
		}
		return fmt.Sprint(n)
	}
	kind := map[bool]string{true: "cap", false: "count"}[money]
	codes := overCodes[l.Kind]
	v.Code = codes[1]
	if money {
		v.Code = codes[0]
	}
	switch l.Kind {
	case ChargeLimit:
		v.Reason = fmt.Sprintf("count of %d for %s reached: %d used, this call %d", l.Max, l.Per, used, l.Add)
	case DailyLimit:
		v.Reason = fmt.Sprintf("daily %s of %s reached: %s used on %s, this call %s", kind, show(l.Max), show(used), l.Period, show(l.Add))
	case WeeklyLimit, MonthlyLimit:
		name, span := "weekly", ""
		if l.Kind == WeeklyLimit {
			monday, _ := weekOf(l.Period)
			span = "the week " + monday + " to " + l.Period
		} else {
			name = "monthly"
			span = l.Period[:7]
		}
		v.Reason = fmt.Sprintf("%s %s of %s reached: %s used in %s, this call %s; it starts again at %s",
			name, kind, show(l.Max), show(used), span, show(l.Add), PeriodEnd(l.Period, zone).Format(time.RFC3339))
	case RateLimit:
		what := "calls"
		if money {
			what = ""
		}
		v.Reason = fmt.Sprintf("rate of %s%s per %s reached: %s%s in the last %s, this call %s; ",
			show(l.Max), spaced(what), Span(l.Window), show(used), spaced(what), Span(l.Window), show(l.Add))
		if frees.IsZero() {
			v.Reason += "the call alone is over the limit"
		} else {
			v.Reason += fmt.Sprintf("the window admits it at %s (in %s)", frees.UTC().Format(time.RFC3339Nano), frees.Sub(now).Round(time.Millisecond))
		}
	case RunLimit:
		v.Reason = fmt.Sprintf("run %s of %s reached for run %s: %s used, this call %s", kind, show(l.Max), l.Period, show(used), show(l.Add))
	default:
		v.Decision, v.Code, v.Reason = Error, "keybrake_policy_mismatch", fmt.Sprintf("a limit of unknown kind %d", l.Kind)
	}
	return v
}

// overCodes are the codes of a full limit, by kind: of money, of a count.
var overCodes = map[LimitKind][2]string{
	DailyLimit:   {"keybrake_daily_cap", "keybrake_daily_count"},
	WeeklyLimit:  {"keybrake_weekly_cap", "keybrake_weekly_count"},
	MonthlyLimit: {"keybrake_monthly_cap", "keybrake_monthly_count"},
	RateLimit:    {"keybrake_rate_spend", "keybrake_rate_count"},
	RunLimit:     {"keybrake_run_cap", "keybrake_run_count"},
	ChargeLimit:  {"keybrake_count_reached", "keybrake_count_reached"},
}

func amountOf(micros int64, unit string) string {
	return money.Amount{Micros: micros, Currency: money.Currency(unit)}.String()
}

func spaced(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

// Span writes a window's length as a policy does: "1m", "10m", "1h30m".
func Span(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"m0s", "h0m"} {
		if len(s) > len(z) && s[len(s)-len(z):] == z {
			s = s[:len(s)-len(z)+1]
		}
	}
	return s
}
