package vendors

import (
	"regexp"
	"strings"
)

// Clues is clues, for the tests of the literals RedactText looks for.
var Clues = clues

// RedactTextByRegexp is RedactText as it was written first, with the
// formats' expression run over every text and an expression for card
// numbers: the reference the scanners are tested against.
func RedactTextByRegexp(s string) string {
	secretMu.Lock()
	re := secretExpression(secretSources)
	secretMu.Unlock()
	s = re.ReplaceAllString(s, "[redacted]")
	return digitRunRE.ReplaceAllStringFunc(s, func(run string) string {
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
	})
}

var digitRunRE = regexp.MustCompile(`\d(?:[ -]?\d){12,18}`)

// SensitiveName is sensitiveName, and SensitiveNameBySuffixes the way it
// was first written, trying every sensitive name as a suffix.
var SensitiveName = sensitiveName

func SensitiveNameBySuffixes(key string) bool {
	name := strings.ToLower(key)
	if i := strings.LastIndexByte(name, '['); i >= 0 {
		name = strings.TrimSuffix(name[i+1:], "]")
	}
	for s := range sensitiveKeys {
		if name == s || strings.HasSuffix(name, "_"+s) {
			return true
		}
	}
	return false
}
