package twilio

import (
	"unicode"
)

// The encodings Segments reports.
const (
	GSM7 = "GSM-7" // the GSM 03.38 default alphabet and its extension table
	UCS2 = "UCS-2" // UTF-16 code units, for any body GSM-7 cannot carry
)

// What one SMS carries. A single message holds 140 octets: 160 septets of
// GSM-7 or 70 UTF-16 code units. A message split into parts spends 6
// octets of each part on the concatenation header (3GPP TS 23.040), which
// leaves 153 septets or 67 code units.
const (
	gsmSingle = 160
	gsmPart   = 153
	ucsSingle = 70
	ucsPart   = 67
)

// gsmBasic is the GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1) less
// the escape code 0x1B, which is not a character: 127 characters, one
// septet each. Greek capitals are written as escapes so that no Latin
// look-alike slips in.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅå" +
	"\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e" + // Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ
	"ÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtension is the extension table (3GPP TS 23.038 §6.2.1.1): each is
// sent as the escape 0x1B and a second septet, so it costs two.
const gsmExtension = "\f^{}\\[~]|€"

// gsmLatin is the cost in septets of each character below U+0100: 0 for
// one GSM-7 cannot carry. Above it GSM-7 has only ten Greek capitals and
// the euro sign (gsmCost).
var gsmLatin = func() (t [256]int8) {
	for _, r := range gsmBasic {
		if r < 256 {
			t[r] = 1
		}
	}
	for _, r := range gsmExtension {
		if r < 256 {
			t[r] = 2
		}
	}
	return t
}()

// gsmCost is the cost of r in septets, 0 when GSM-7 cannot carry it.
func gsmCost(r rune) int {
	if r >= 0 && r < 256 {
		return int(gsmLatin[r])
	}
	switch r {
	case '\u0394', '\u03a6', '\u0393', '\u039b', '\u03a9', '\u03a0', '\u03a8', '\u03a3', '\u0398', '\u039e':
		return 1
	case '€':
		return 2
	}
	return 0
}

// Segments returns how many SMS segments Twilio bills for body, and the
// encoding it is sent in: GSM7 or UCS2. An empty body is 0 segments.
//
// The body is GSM-7 when every character is in the GSM 03.38 default
// alphabet or its extension table, UCS-2 otherwise (one emoji, one "ç",
// one curly quote is enough). GSM-7 counts septets: one per character,
// two for the extension characters form feed ^ { } \ [ ~ ] | €. UCS-2
// counts UTF-16 code units: two for a character outside the Basic
// Multilingual Plane, such as most emoji. A body of at most 160 septets or
// 70 code units is one segment. A longer body is split into parts of at
// most 153 septets or 67 code units.
//
// A part never ends inside a unit that cannot be split, which then starts
// the next part and leaves the one before it short: the escape septet and
// the character it introduces (3GPP TS 23.038 §6.2.1.1 defines them as
// one character), the two code units of a surrogate pair, and, as Twilio's
// own segment calculator does, a user-perceived character made of several
// code points. For the last Keybrake keeps a character together more
// often than Unicode's grapheme rules (UAX #29) require, never less: a
// character is never split before a combining mark, a zero-width joiner,
// a variation selector, an emoji modifier, a tag character, a Hangul vowel
// or final consonant, nor after a zero-width joiner, a prepended
// concatenation mark or a Hangul initial consonant; regional indicators
// (flags) go in pairs; CR LF stays together. Keeping more together can
// only add parts, so the count errs on the high side, where a spending
// limit must err. A cluster longer than a whole part is split between code
// points, as it must be.
//
// Twilio's Smart Encoding (SmartEncoded=true) replaces some Unicode
// characters with GSM-7 look-alikes before counting; Segments does not, so
// it counts at least as many segments as Twilio bills. Invalid UTF-8 bytes
// count as U+FFFD each, which is UCS-2.
//
// Segments is a pure function, safe for concurrent use.
func Segments(body string) (segments int, encoding string) {
	if body == "" {
		return 0, GSM7
	}
	gsm := true
	for _, r := range body {
		if gsmCost(r) == 0 {
			gsm = false
			break
		}
	}
	if gsm {
		return pack(body, gsmSingle, gsmPart, gsmCost), GSM7
	}
	return pack(body, ucsSingle, ucsPart, utf16Cost), UCS2
}

func utf16Cost(r rune) int {
	if r > 0xFFFF {
		return 2
	}
	return 1
}

// pack counts the parts of body: one if its whole cost fits single, else
// as many parts of at most part as a greedy fill of whole clusters needs.
// Greedy is optimal here: filling each part as far as it goes never
// leaves a later part more to carry.
func pack(body string, single, part int, cost func(rune) int) int {
	total := 0
	for _, r := range body {
		total += cost(r)
	}
	if total <= single {
		return 1
	}
	parts, free := 1, part
	place := func(n int) {
		if n > free {
			parts++
			free = part
		}
		free -= n
	}
	var c clusterer
	var cluster []rune
	flush := func() {
		n := 0
		for _, r := range cluster {
			n += cost(r)
		}
		if n <= part {
			place(n)
		} else {
			// Longer than a whole part: it cannot stay together.
			for _, r := range cluster {
				place(cost(r))
			}
		}
		cluster = cluster[:0]
	}
	for _, r := range body {
		if c.breakBefore(r) && len(cluster) > 0 {
			flush()
		}
		cluster = append(cluster, r)
	}
	flush()
	return parts
}

// clusterer decides, code point by code point, where a body may be split:
// a conservative superset of UAX #29's no-break rules (see Segments). Its
// zero value is at the start of a body.
type clusterer struct {
	prev    rune
	started bool
	riRun   int // regional indicators in a row just before, including prev
}

// breakBefore reports whether a part may end just before r, and records r.
func (c *clusterer) breakBefore(r rune) bool {
	ok := c.started && mayBreak(c.prev, r, c.riRun)
	if isRegionalIndicator(r) {
		c.riRun++
	} else {
		c.riRun = 0
	}
	c.prev, c.started = r, true
	return ok
}

const zwj = '\u200d'

// mayBreak reports whether a part may end between prev and next; riRun is
// how many regional indicators end at prev.
func mayBreak(prev, next rune, riRun int) bool {
	switch {
	case prev == '\r' && next == '\n':
		return false
	case prev == zwj || isPrepend(prev) || isHangulL(prev):
		return false
	case next == zwj || isExtend(next) || isHangulVT(next):
		return false
	case isRegionalIndicator(prev) && isRegionalIndicator(next) && riRun%2 == 1:
		return false
	}
	return true
}

// isExtend covers Grapheme_Cluster_Break Extend and SpacingMark: marks,
// variation selectors (which are marks), emoji modifiers and tags.
func isExtend(r rune) bool {
	switch {
	case r < 0x0300:
		return false // fast path: nothing below the combining diacritics extends
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc):
		return true
	case r >= 0x1F3FB && r <= 0x1F3FF: // emoji modifiers (skin tones)
		return true
	case r >= 0xE0020 && r <= 0xE007F: // tags (subdivision flags)
		return true
	case r == 0x0E33 || r == 0x0EB3: // Thai and Lao AM, spacing marks
		return true
	case r == 0x200C: // zero-width non-joiner
		return true
	}
	return false
}

func isRegionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// isPrepend covers Grapheme_Cluster_Break Prepend's characters outside the
// Indic scripts' rarer ones, and those too, generously.
func isPrepend(r rune) bool {
	switch {
	case r >= 0x0600 && r <= 0x0605, r == 0x06DD, r == 0x070F, r == 0x0890, r == 0x0891, r == 0x08E2,
		r == 0x0D4E, r == 0x110BD, r == 0x110CD, r >= 0x111C2 && r <= 0x111C3:
		return true
	}
	return false
}

func isHangulL(r rune) bool {
	return r >= 0x1100 && r <= 0x115F || r >= 0xA960 && r <= 0xA97C
}

func isHangulVT(r rune) bool {
	return r >= 0x1160 && r <= 0x11FF || r >= 0xD7B0 && r <= 0xD7FB
}
