package faketwilio_test

import (
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keybrake/keybrake/fakes/faketwilio"
)

func TestSegments(t *testing.T) {
	a := strings.Repeat
	tests := []struct {
		name     string
		body     string
		segments int
		encoding string
	}{
		{"empty", "", 0, faketwilio.GSM7},
		{"one character", "a", 1, faketwilio.GSM7},
		{"160 septets", a("a", 160), 1, faketwilio.GSM7},
		{"161 septets", a("a", 161), 2, faketwilio.GSM7},
		{"306 septets", a("a", 306), 2, faketwilio.GSM7},
		{"307 septets", a("a", 307), 3, faketwilio.GSM7},
		{"the whole default alphabet", "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà", 1, faketwilio.GSM7},
		{"80 extension characters are 160 septets", a("€", 80), 1, faketwilio.GSM7},
		{"81 extension characters are 162 septets", a("€", 81), 2, faketwilio.GSM7},
		{"every extension character", a("\f^{}\\[~]|€", 16), 3, faketwilio.GSM7}, // 320 septets: 76 pairs a part
		{"159 septets and an escape", a("a", 159) + "^", 2, faketwilio.GSM7},
		// 306 septets split naively into two full parts, but the escape
		// at the boundary cannot be cut from its character.
		{"an escape is never split", a("a", 152) + "€" + a("a", 152), 3, faketwilio.GSM7},
		{"an escape that fits", a("a", 151) + "€" + a("a", 153), 2, faketwilio.GSM7},
		{"one ç makes UCS-2", a("a", 69) + "ç", 1, faketwilio.UCS2},
		{"71 code units", a("a", 70) + "ç", 2, faketwilio.UCS2},
		{"134 code units", a("ç", 134), 2, faketwilio.UCS2},
		{"135 code units", a("ç", 135), 3, faketwilio.UCS2},
		{"35 emoji are 70 code units", a("😀", 35), 1, faketwilio.UCS2},
		{"36 emoji", a("😀", 36), 2, faketwilio.UCS2},
		{"a surrogate pair is never split", a("ç", 66) + "😀" + a("ç", 66), 3, faketwilio.UCS2},
		{"Greek capital alpha is not A", "Α", 1, faketwilio.UCS2},
		{"curly quote", "it’s", 1, faketwilio.UCS2},
		{"lower-case c cedilla is not in the alphabet, capital is", "Ç", 1, faketwilio.GSM7},
		{"tab is not GSM-7", "a\tb", 1, faketwilio.UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, enc := faketwilio.Segments(tt.body)
			if n != tt.segments || enc != tt.encoding {
				t.Fatalf("Segments = %d %s, want %d %s", n, enc, tt.segments, tt.encoding)
			}
		})
	}
}

// FuzzSegments checks what must hold for any body: the parts hold the
// body, each part but the last is nearly full, and the encoding is GSM-7
// exactly when every character is in the alphabet.
func FuzzSegments(f *testing.F) {
	f.Add("hello")
	f.Add(strings.Repeat("€", 100))
	f.Add(strings.Repeat("😀", 40))
	f.Add(strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152))
	f.Fuzz(func(t *testing.T, body string) {
		if !utf8.ValidString(body) {
			return
		}
		n, enc := faketwilio.Segments(body)
		if body == "" {
			if n != 0 {
				t.Fatalf("empty body: %d", n)
			}
			return
		}
		var units, single, part, maxUnit int
		switch enc {
		case faketwilio.GSM7:
			single, part, maxUnit = 160, 153, 2
			for _, r := range body {
				switch {
				case strings.ContainsRune("\f^{}\\[~]|€", r):
					units += 2
				case r < 0x80 && r != '\t' && r != '`' && !(r < 0x20 && r != '\n' && r != '\r') && r != 0x7f:
					units++
				case strings.ContainsRune("£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", r):
					units++
				default:
					t.Fatalf("GSM-7 for a body with %q", r)
				}
			}
		case faketwilio.UCS2:
			single, part, maxUnit = 70, 67, 2
			units = len(utf16.Encode([]rune(body)))
		default:
			t.Fatalf("encoding %q", enc)
		}
		if units <= single {
			if n != 1 {
				t.Fatalf("%d units in %d segments", units, n)
			}
			return
		}
		if n*part < units || (n-1)*(part-maxUnit+1) >= units {
			t.Fatalf("%d %s units in %d segments", units, enc, n)
		}
	})
}
