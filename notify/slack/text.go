package slack

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keybrake/keybrake/notify"
)

// kinds says, for each refusal, what Keybrake did, why in general, and
// what the agent saw.
var kinds = map[string]struct {
	did, why string
	status   int
}{
	"capped":  {"capped", "a per-call maximum or a daily cap would be exceeded", 402},
	"blocked": {"blocked", "no allow rule matches the endpoint or its parameters", 403},
	"scoped":  {"refused (out of scope)", "the call touches a customer, account or recipient outside the agent's scope", 403},
	"revoked": {"refused (revoked)", "the agent is revoked, yet it keeps calling", 401},
	"error":   {"could not decide on, and refused,", "Keybrake could not decide safely and failed closed", 503},
}

// maxReason bounds the reason quoted in a message, in runes.
const maxReason = 500

// Text is the message Notify posts: what happened, to which agent, by
// which rule, how many times since when, and what to do next, written for
// a person woken at 3 a.m. It uses Slack's mrkdwn, with &, < and >
// escaped, so nothing in a record can ping a channel or forge a link. It
// never includes a credential: an Alert holds none.
func Text(a notify.Alert) string {
	var b strings.Builder
	if k, ok := kinds[a.Kind]; ok {
		refusal(&b, a, k.did, k.why, k.status)
	} else {
		event(&b, a)
	}
	if a.Dropped > 0 {
		fmt.Fprintf(&b, "\n:warning: %s %s (of any agent) came too fast to be counted in these alerts; the audit log has every one.",
			num(a.Dropped), plural(a.Dropped, "record", "records"))
	}
	return b.String()
}

func refusal(b *strings.Builder, a notify.Alert, did, why string, status int) {
	calls := func(n int64) string {
		noun := plural(n, "call", "calls")
		if a.Vendor != "" {
			noun = esc(bound(oneLine(a.Vendor), maxName)) + " " + noun
		}
		if a.Agent != "" {
			noun += " by agent " + code(a.Agent)
		}
		return noun
	}
	switch {
	case a.Final:
		fmt.Fprintf(b, ":white_check_mark: *Keybrake: no more %s %s since %s.*\n", did, calls(2), when(a.Last, a.First))
		fmt.Fprintf(b, "%s in all, from %s to %s", num(a.Total), when(a.First, a.First), when(a.Last, a.First))
		if a.Count > 0 {
			fmt.Fprintf(b, ", %s since the previous message", num(a.Count))
		}
		b.WriteString(".\n")
	case a.Count == a.Total:
		fmt.Fprintf(b, ":rotating_light: *Keybrake %s %s %s* at %s.\n", did, article(a.Total), calls(a.Total), when(a.First, time.Time{}))
	default:
		fmt.Fprintf(b, ":rotating_light: *Keybrake %s %s more %s* since %s, %s, the latest at %s. Still going.\n",
			did, num(a.Count), calls(a.Count), when(a.Since, a.First), inAll(a), when(a.Last, a.First))
	}
	if a.Reason != "" {
		b.WriteString(quote(a.Reason))
	}
	var rule []string // the line that says which rule decided
	if a.Rule != "" {
		rule = append(rule, "Rule "+code(a.Rule))
	}
	if a.Code != "" {
		rule = append(rule, "code "+code(a.Code))
	}
	if len(rule) > 0 {
		b.WriteString(strings.Join(rule, ", ") + ": ")
	}
	fmt.Fprintf(b, "the agent got a %d (%s).", status, why)
	if a.Count == a.Total && !a.Final {
		b.WriteString(" More of these are counted and summed up here, not posted one by one.")
	}
	b.WriteString("\n")
	next(b, a)
}

// next is the step to take, as commands to paste.
func next(b *strings.Builder, a notify.Alert) {
	audit := "keybrake audit"
	if a.Agent != "" {
		audit += " --agent " + shellWord(a.Agent)
	}
	audit += " --since " + a.First.UTC().Truncate(time.Second).Format(time.RFC3339)
	switch {
	case a.Kind == "revoked":
		fmt.Fprintf(b, "Next: stop the agent's runner; it is revoked and its calls go nowhere. See them: %s. Only if the revocation was a mistake: %s",
			code(audit), code("keybrake restore "+argument(a.Agent)))
	case a.Kind == "error":
		fmt.Fprintf(b, "Next: check Keybrake's error log (store, vendor lookups, policy file); calls stay refused until it can decide. See them: %s", code(audit))
	case a.Agent == "":
		fmt.Fprintf(b, "Next: see them: %s", code(audit))
	case a.Final:
		fmt.Fprintf(b, "Next: review what it tried: %s. To keep it from running again before someone has looked: %s",
			code(audit), code("keybrake revoke "+argument(a.Agent)))
	default:
		fmt.Fprintf(b, "Next: see what it is doing: %s. Stop it: %s",
			code(audit), code("keybrake revoke "+argument(a.Agent)))
	}
}

// event is a Keybrake event rather than a call: above all a policy file
// that failed to load.
func event(b *strings.Builder, a notify.Alert) {
	what := "Keybrake event " + code(a.Kind)
	if a.Kind == "policy_invalid" {
		what = "Keybrake could not load its policy file"
	}
	times := plural(a.Total, "time", "times")
	switch {
	case a.Final:
		fmt.Fprintf(b, ":white_check_mark: *%s: no more since %s.* %s %s in all from %s to %s",
			what, when(a.Last, a.First), num(a.Total), times, when(a.First, a.First), when(a.Last, a.First))
		if a.Count > 0 {
			fmt.Fprintf(b, ", %s since the previous message", num(a.Count))
		}
		b.WriteString(".\n")
	case a.Count == a.Total:
		fmt.Fprintf(b, ":rotating_light: *%s* at %s.\n", what, when(a.First, time.Time{}))
	default:
		fmt.Fprintf(b, ":rotating_light: *%s: %s more %s* since %s, %s, the latest at %s.\n",
			what, num(a.Count), plural(a.Count, "time", "times"), when(a.Since, a.First), inAll(a), when(a.Last, a.First))
	}
	if a.Reason != "" {
		b.WriteString(quote(a.Reason))
	}
	audit := "keybrake audit --since " + a.First.UTC().Truncate(time.Second).Format(time.RFC3339)
	if a.Kind == "policy_invalid" {
		fmt.Fprintf(b, "Next: fix the file and check it with %s; the kill switch (%s) works whatever the file says. History: %s",
			code("keybrake policy check FILE"), code("keybrake halt"), code(audit))
		return
	}
	fmt.Fprintf(b, "Next: see %s", code(audit))
}

// inAll is the running total, with its start when that is not the start
// of the count just given.
func inAll(a notify.Alert) string {
	if a.Since.Equal(a.First) {
		return num(a.Total) + " in all"
	}
	return num(a.Total) + " in all since " + when(a.First, a.First)
}

// when is t in UTC, without its date when it falls on the same UTC day as
// ref.
func when(t, ref time.Time) string {
	t, ref = t.UTC(), ref.UTC()
	if !ref.IsZero() && t.YearDay() == ref.YearDay() && t.Year() == ref.Year() {
		return t.Format("15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04:05 UTC")
}

// num writes n with thousands separators: 3,999.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func article(n int64) string {
	if n == 1 {
		return "a"
	}
	return num(n)
}

// esc escapes what Slack's mrkdwn gives meaning to: &, < and > (links,
// @channel and user mentions are all written <...>).
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// maxName bounds a name (agent, rule, code) set in a message, in runes.
const maxName = 200

// code sets s in a code span. A backquote in s would end the span early.
func code(s string) string {
	return "`" + esc(strings.ReplaceAll(bound(oneLine(s), maxName), "`", "'")) + "`"
}

// quote is the reason as a block quote line, bounded.
func quote(s string) string {
	return "> " + esc(bound(oneLine(s), maxReason)) + "\n"
}

// bound cuts s to n runes.
func bound(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "..."
}

func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// argument is s as a command's positional argument: a name starting with
// "-" would read as a flag, so it goes after "--".
func argument(s string) string {
	if strings.HasPrefix(s, "-") {
		return "-- " + shellWord(s)
	}
	return shellWord(s)
}

// shellWord is s as one shell word when it needs no quoting, and the
// placeholder AGENT otherwise: a command a half-awake person pastes must
// do exactly what it says, and a name with quotes, spaces or backquotes
// (which a code span cannot even show) is better typed by hand from the
// audit log.
func shellWord(s string) string {
	if s == "" || utf8.RuneCountInString(s) > maxName {
		return "AGENT"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:@/+=", r)) {
			return "AGENT"
		}
	}
	return s
}
