package vendors

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// What the audit log may keep of a request. A vendor's Classify fills
// Call.Audit with RedactParam and RedactText; the credential formats they
// mask are those every vendor declares in Info.Secrets, gathered by
// RedactSecrets, so a Stripe key pasted into a Resend email's subject is
// masked too.

// secretFormats is the union of the formats registered (nil before the
// first registration).
var (
	secretMu      sync.Mutex
	secretSources = map[string]bool{}
	secretFormats atomic.Pointer[secretSet]
)

// secretSet is the formats registered, as one expression, and clues: the
// literals one of which every match of it holds (nil when some format
// promises none, and every text is then scanned).
type secretSet struct {
	re    *regexp.Regexp
	clues []string
	// starts marks the bytes a clue starts with, so that a text is
	// looked through once for all the clues.
	starts [256]bool
}

func newSecretSet(re *regexp.Regexp, clues []string) *secretSet {
	s := &secretSet{re: re, clues: clues}
	for _, c := range clues {
		s.starts[c[0]] = true
	}
	return s
}

// RedactSecrets adds credential formats (regular expressions, matched as
// whole words) that RedactText replaces with "[redacted]" from now on,
// process-wide. A vendor package registers its Info.Secrets when it is
// loaded, and keybrake.Open registers those of the vendors it is given.
// Registration only ever adds formats: redacting more is never unsafe, so
// a process-wide set needs no owner. It is safe for concurrent use; adding
// a format twice changes nothing. It panics on a format that does not
// compile, as regexp.MustCompile does.
func RedactSecrets(formats ...string) {
	secretMu.Lock()
	defer secretMu.Unlock()
	added := false
	for _, f := range formats {
		regexp.MustCompile(f)
		if !secretSources[f] {
			secretSources[f] = true
			added = true
		}
	}
	if !added {
		return
	}
	secretFormats.Store(newSecretSet(secretExpression(secretSources), formatClues(secretSources)))
}

// secretExpression is the union of the formats as one expression.
func secretExpression(sources map[string]bool) *regexp.Regexp {
	all := make([]string, 0, len(sources))
	for f := range sources {
		all = append(all, "(?:"+f+")")
	}
	// Longest alternatives first would matter only for overlapping
	// formats; sorting keeps the expression the same for the same set.
	sort.Strings(all)
	return regexp.MustCompile(`\b(?:` + strings.Join(all, "|") + `)\b`)
}

// formatClues gathers the clues of every format; nil when one has none.
func formatClues(sources map[string]bool) []string {
	var all []string
	for f := range sources {
		cs := clues(f)
		if cs == nil {
			return nil
		}
		all = append(all, cs...)
	}
	sort.Strings(all)
	return slices.Compact(all)
}

// redact replaces every credential in text.
func (s *secretSet) redact(text string) string {
	if s.clues != nil && !s.hasClue(text) {
		// No match is possible: most parameters hold no credential,
		// and the expression would scan and copy every one of them.
		return text
	}
	return s.re.ReplaceAllString(text, "[redacted]")
}

// hasClue reports whether text holds a clue, in one pass.
func (s *secretSet) hasClue(text string) bool {
	for i := 0; i < len(text); i++ {
		if !s.starts[text[i]] {
			continue
		}
		for _, c := range s.clues {
			if strings.HasPrefix(text[i:], c) {
				return true
			}
		}
	}
	return false
}

// sensitiveKeys are parameter names whose values are never kept: card
// security codes (PCI DSS forbids storing them), secrets and tokens.
var sensitiveKeys = map[string]bool{"cvc": true, "cvv": true, "cvv2": true, "cvn": true, "csc": true, "password": true,
	"secret": true, "token": true, "pin": true, "auth_token": true, "api_key": true}

// RedactParam returns what the audit log may keep of one request parameter:
// keep is false when the parameter must be dropped outright (a card's
// security code, a secret); otherwise value has every credential replaced by
// "[redacted]" and every card number masked to its first six and last four
// digits.
func RedactParam(key, value string) (redacted string, keep bool) {
	if sensitiveName(key) {
		return "", false
	}
	return RedactText(value), true
}

// RedactText masks credentials (every format registered with
// RedactSecrets) and card numbers in free text. It returns s itself when
// there is nothing to mask.
func RedactText(s string) string {
	if set := secretFormats.Load(); set != nil {
		s = set.redact(s)
	}
	return maskPANs(s)
}

// sensitiveName reports whether the last name in a parameter key
// ("card[cvc]", "payment_method_data[card][cvc]") is sensitive.
func sensitiveName(key string) bool {
	name := strings.ToLower(key)
	if i := strings.LastIndexByte(name, '['); i >= 0 {
		name = strings.TrimSuffix(name[i+1:], "]")
	}
	// The name is one of them, or ends in "_" and one of them: look up
	// the name and what follows each "_" in it, rather than try every
	// suffix on every parameter.
	for {
		if sensitiveKeys[name] {
			return true
		}
		i := strings.IndexByte(name, '_')
		if i < 0 {
			return false
		}
		name = name[i+1:]
	}
}

// maskPANs masks every card number in s: each run of 13 to 19 digits,
// single spaces or dashes allowed between them, that passes the Luhn
// check, keeping its first six and last four digits, as PCI DSS allows. A
// run is read from its first digit as far as it goes, up to 19 digits, and
// masked or kept whole; the next run starts after it. One pass, and no
// copy of a text that holds none.
func maskPANs(s string) string {
	var out []byte // nil until a number is masked
	kept := 0      // s[:kept] is in out
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		end, digits := digitRun(s, i)
		if digits >= 13 {
			if masked, ok := maskPAN(s[i:end]); ok {
				out = append(append(out, s[kept:i]...), masked...)
				kept = end
			}
		}
		i = end
	}
	if out == nil {
		return s
	}
	return string(append(out, s[kept:]...))
}

// digitRun reads the digit run starting at s[i], a digit: it ends where
// neither a digit nor a space or dash followed by a digit comes next, or
// at its 19th digit.
func digitRun(s string, i int) (end, digits int) {
	end, digits = i+1, 1
	for digits < 19 {
		switch {
		case end < len(s) && isDigit(s[end]):
			end++
		case end+1 < len(s) && (s[end] == ' ' || s[end] == '-') && isDigit(s[end+1]):
			end += 2
		default:
			return end, digits
		}
		digits++
	}
	return end, digits
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// maskPAN masks a digit run of 13 to 19 digits that passes the Luhn
// check; ok is false for one that does not.
func maskPAN(run string) (masked []byte, ok bool) {
	var buf [19]byte
	d := buf[:0]
	for i := 0; i < len(run); i++ {
		if isDigit(run[i]) {
			d = append(d, run[i])
		}
	}
	if len(d) < 13 || len(d) > 19 || !luhn(d) {
		return nil, false
	}
	masked = append(masked, d[:6]...)
	for range len(d) - 10 {
		masked = append(masked, '*')
	}
	return append(masked, d[len(d)-4:]...), true
}

func luhn(d []byte) bool {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if (len(d)-1-i)%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return sum%10 == 0
}
