package faketwilio

// The encodings a message body is sent in.
const (
	GSM7 = "GSM-7" // the GSM 03.38 default alphabet and its extension table
	UCS2 = "UCS-2" // UTF-16 code units
)

// An SMS carries 140 octets: 160 GSM-7 septets or 70 UTF-16 code units.
// Each part of a concatenated message spends 6 octets on the
// concatenation header, leaving 153 septets or 67 code units.
const (
	gsmSingle = 160
	gsmPart   = 153
	ucsSingle = 70
	ucsPart   = 67
)

// gsmCost is the cost in septets of each character GSM-7 can carry: one
// for the default alphabet (3GPP TS 23.038 §6.2.1), two for the extension
// table, sent as the escape septet and a second one. Greek capitals are
// written as escapes so that no Latin look-alike slips in.
var gsmCost = func() map[rune]int {
	const basic = "@£$¥èéùìòÇ\nØø\rÅå" +
		"\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e" +
		"ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
		"¿abcdefghijklmnopqrstuvwxyzäöñüà"
	const extension = "\f^{}\\[~]|€"
	m := map[rune]int{}
	for _, r := range basic {
		m[r] = 1
	}
	for _, r := range extension {
		m[r] = 2
	}
	return m
}()

// Segments returns how many segments an SMS with this body is sent in,
// and its encoding, as faketwilio bills it.
//
// A body whose every character GSM-7 carries is GSM-7; any other
// character makes the whole body UCS-2. A body of at most 160 septets (70
// code units) is one segment; a longer one is split into parts of at most
// 153 septets (67 code units), and a part never ends between the escape
// septet and the character it introduces, nor between the two halves of a
// surrogate pair, so such a part carries one unit less. An empty body is
// 0 segments.
//
// Not modelled: Twilio's segment calculator also keeps user-perceived
// characters made of several code points (emoji sequences, combining
// marks) in one part; faketwilio may split them, and so may count fewer
// segments than Twilio for such bodies. Smart Encoding is not modelled
// either (SmartEncoded is refused).
//
// Segments is a pure function.
func Segments(body string) (segments int, encoding string) {
	if body == "" {
		return 0, GSM7
	}
	encoding = GSM7
	for _, r := range body {
		if gsmCost[r] == 0 {
			encoding = UCS2
			break
		}
	}
	single, part, cost := gsmSingle, gsmPart, func(r rune) int { return gsmCost[r] }
	if encoding == UCS2 {
		single, part, cost = ucsSingle, ucsPart, func(r rune) int {
			if r > 0xFFFF {
				return 2
			}
			return 1
		}
	}
	total := 0
	for _, r := range body {
		total += cost(r)
	}
	if total <= single {
		return 1, encoding
	}
	segments, used := 1, 0
	for _, r := range body {
		c := cost(r)
		if used+c > part {
			segments++
			used = 0
		}
		used += c
	}
	return segments, encoding
}
