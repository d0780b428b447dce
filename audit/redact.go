package audit

import (
	"regexp"
	"strings"
)

// secretKey matches credentials vendors issue: Stripe secret and restricted
// keys, Twilio API keys, Resend keys, and webhook signing secrets.
var secretKey = regexp.MustCompile(`\b(?:(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+|whsec_[A-Za-z0-9]+|SK[0-9a-fA-F]{32}|re_[A-Za-z0-9]+_[A-Za-z0-9]+)\b`)

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

// RedactText masks credentials and card numbers in free text.
func RedactText(s string) string {
	s = secretKey.ReplaceAllString(s, "[redacted]")
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
