package vendors

import (
	"regexp"
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

// secretFormats is the union of the formats registered, as one expression
// (nil before the first registration).
var (
	secretMu      sync.Mutex
	secretSources = map[string]bool{}
	secretFormats atomic.Pointer[regexp.Regexp]
)

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
	all := make([]string, 0, len(secretSources))
	for f := range secretSources {
		all = append(all, "(?:"+f+")")
	}
	// Longest alternatives first would matter only for overlapping
	// formats; sorting keeps the expression the same for the same set.
	sort.Strings(all)
	secretFormats.Store(regexp.MustCompile(`\b(?:` + strings.Join(all, "|") + `)\b`))
}

// digitRun finds runs of 13 to 19 digits, spaces or dashes allowed between
// them, that may be card numbers.
var digitRun = regexp.MustCompile(`\d(?:[ -]?\d){12,18}`)

// sensitiveKeys are parameter names whose values are never kept: card
// security codes (PCI DSS forbids storing them), secrets and tokens.
var sensitiveKeys = []string{"cvc", "cvv", "cvv2", "cvn", "csc", "password", "secret", "token", "pin", "auth_token", "api_key"}

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
// RedactSecrets) and card numbers in free text.
func RedactText(s string) string {
	if re := secretFormats.Load(); re != nil {
		s = re.ReplaceAllString(s, "[redacted]")
	}
	return digitRun.ReplaceAllStringFunc(s, maskPAN)
}

// sensitiveName reports whether the last name in a parameter key
// ("card[cvc]", "payment_method_data[card][cvc]") is sensitive.
func sensitiveName(key string) bool {
	name := strings.ToLower(key)
	if i := strings.LastIndexByte(name, '['); i >= 0 {
		name = strings.TrimSuffix(name[i+1:], "]")
	}
	for _, s := range sensitiveKeys {
		if name == s || strings.HasSuffix(name, "_"+s) {
			return true
		}
	}
	return false
}

// maskPAN masks a digit run that passes the Luhn check, keeping the first
// six and last four digits, as PCI DSS allows.
func maskPAN(run string) string {
	d := make([]byte, 0, len(run))
	for i := 0; i < len(run); i++ {
		if run[i] >= '0' && run[i] <= '9' {
			d = append(d, run[i])
		}
	}
	if len(d) < 13 || len(d) > 19 || !luhn(d) {
		return run
	}
	return string(d[:6]) + strings.Repeat("*", len(d)-10) + string(d[len(d)-4:])
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
