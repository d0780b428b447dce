package resend

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keybrake/keybrake/vendors"
)

// maxDepth bounds how deeply arrays and objects may nest. The deepest body
// resend-go writes is a batch: array, email, template, variables (4); the
// spec's automations nest a few levels more. 16 leaves room and keeps a
// hostile body from costing more than its size.
const maxDepth = 16

// smallObject is how many members an object may have before duplicate
// keys are looked up in a map rather than compared pairwise.
const smallObject = 16

// jsonKind is the type of a JSON value.
type jsonKind uint8

const (
	jsonString jsonKind = iota + 1
	jsonNumber
	jsonBool
	jsonNull
	jsonArray
	jsonObject
)

func (k jsonKind) String() string {
	switch k {
	case jsonString:
		return "a string"
	case jsonNumber:
		return "a number"
	case jsonBool:
		return "a boolean"
	case jsonNull:
		return "null"
	case jsonArray:
		return "an array"
	case jsonObject:
		return "an object"
	}
	return "nothing"
}

// jsonValue is one decoded JSON value. Object members keep the order they
// were written in; no two of them have keys that fold to the same name.
type jsonValue struct {
	kind    jsonKind
	text    string       // a string's contents, a number as written, "true" or "false"
	items   []*jsonValue // an array's elements
	members []jsonMember // an object's members
}

type jsonMember struct {
	key   string
	value *jsonValue
}

// member returns the value under key, matched exactly, or nil.
func (v *jsonValue) member(key string) *jsonValue {
	for _, m := range v.members {
		if m.key == key {
			return m.value
		}
	}
	return nil
}

// parseJSON decodes one JSON value (RFC 8259) strictly and refuses, with a
// *vendors.Invalid, everything two readers could take differently:
//
//   - bytes that are not UTF-8, a byte order mark, control characters in
//     strings, and \u escapes that leave half a surrogate pair (Go would
//     read U+FFFD, JavaScript the lone surrogate);
//   - a key given twice in one object, or two keys that differ only in case
//     ("to" and "TO", "s" and "ſ"): encoding/json matches keys
//     case-insensitively and keeps the last, Resend's JavaScript the exact
//     one; either way what Keybrake checked might not be what is sent;
//   - anything after the value but white space;
//   - arrays and objects nested more than maxDepth deep.
//
// Numbers are kept as written: nothing here reads them as floats.
func parseJSON(b []byte) (*jsonValue, error) {
	if !utf8.Valid(b) {
		return nil, invalid(codeBadJSON, "the body is not valid UTF-8")
	}
	p := &parser{b: b}
	p.space()
	if p.i == len(b) {
		return nil, invalid(codeBadJSON, "the body is empty")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(b) {
		return nil, invalid(codeBadJSON, "data after the JSON value at byte %d", p.i)
	}
	return v, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) syntax(what string) error {
	if p.i >= len(p.b) {
		return invalid(codeBadJSON, "the body ends inside a JSON value; want %s", what)
	}
	return invalid(codeBadJSON, "invalid JSON at byte %d: want %s, found %q", p.i, what, p.b[p.i])
}

func (p *parser) value(depth int) (*jsonValue, error) {
	if p.i >= len(p.b) {
		return nil, p.syntax("a value")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: jsonString, text: s}, nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true", jsonBool)
	case c == 'f':
		return p.literal("false", jsonBool)
	case c == 'n':
		return p.literal("null", jsonNull)
	}
	return nil, p.syntax("a value")
}

func (p *parser) literal(word string, k jsonKind) (*jsonValue, error) {
	if !strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(word))]), word) {
		return nil, p.syntax(word)
	}
	p.i += len(word)
	v := &jsonValue{kind: k}
	if k == jsonBool {
		v.text = word
	}
	return v, nil
}

func (p *parser) object(depth int) (*jsonValue, error) {
	if depth > maxDepth {
		return nil, invalid(codeBadJSON, "JSON nests deeper than %d levels", maxDepth)
	}
	p.i++ // {
	v := &jsonValue{kind: jsonObject}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	// Small objects compare keys pairwise; large ones through a map, so a
	// hostile body of many keys costs linear time.
	var seen map[string]string // folded key -> key as written
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.syntax("a key")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		prev, dup := "", false
		if len(v.members) < smallObject {
			for _, m := range v.members {
				if strings.EqualFold(m.key, key) {
					prev, dup = m.key, true
					break
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]string, 2*smallObject)
				for _, m := range v.members {
					seen[foldKey(m.key)] = m.key
				}
			}
			f := foldKey(key)
			prev, dup = seen[f]
			seen[f] = key
		}
		if dup {
			if prev == key {
				return nil, invalid(codeDuplicateKey, "JSON key %q appears twice in one object; Resend and Go may keep different ones", vendors.Truncate(key, vendors.QuoteLimit))
			}
			return nil, invalid(codeDuplicateKey, "JSON keys %q and %q differ only in case; Go's encoding/json would read them as one", vendors.Truncate(prev, vendors.QuoteLimit), vendors.Truncate(key, vendors.QuoteLimit))
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.syntax("':'")
		}
		p.i++
		p.space()
		m, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, jsonMember{key: key, value: m})
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return v, nil
		}
		return nil, p.syntax("',' or '}'")
	}
}

func (p *parser) array(depth int) (*jsonValue, error) {
	if depth > maxDepth {
		return nil, invalid(codeBadJSON, "JSON nests deeper than %d levels", maxDepth)
	}
	p.i++ // [
	v := &jsonValue{kind: jsonArray}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		item, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.items = append(v.items, item)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return v, nil
		}
		return nil, p.syntax("',' or ']'")
	}
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (p *parser) number() (*jsonValue, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if !p.digits() {
		return nil, p.syntax("a digit")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, p.syntax("a digit")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, p.syntax("a digit")
		}
	}
	return &jsonValue{kind: jsonNumber, text: string(p.b[start:p.i])}, nil
}

func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// str reads a string starting at its opening quote.
func (p *parser) str() (string, error) {
	p.i++ // "
	start := p.i
	// The common case: no escapes, one allocation.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", invalid(codeBadJSON, "control character %q in a JSON string at byte %d", c, p.i)
		}
		p.i++
	}
	var sb strings.Builder
	sb.Write(p.b[start:p.i])
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return sb.String(), nil
		case c < 0x20:
			return "", invalid(codeBadJSON, "control character %q in a JSON string at byte %d", c, p.i)
		case c != '\\':
			sb.WriteByte(c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			break
		}
		esc := p.b[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			sb.WriteByte(esc)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", invalid(codeBadJSON, "bad \\u escape at byte %d", p.i-2)
			}
			if utf16.IsSurrogate(r) {
				// Only a high half followed by a low half is a character.
				r2, ok2 := rune(0), false
				if r < 0xDC00 && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, ok2 = p.hex4()
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok2 || dec == unicode.ReplacementChar {
					return "", invalid(codeBadJSON, "a \\u escape leaves half a surrogate pair at byte %d", p.i)
				}
				r = dec
			}
			sb.WriteRune(r)
		default:
			return "", invalid(codeBadJSON, "bad escape \\%c in a JSON string at byte %d", esc, p.i-2)
		}
	}
	return "", p.syntax("'\"'")
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// foldKey folds a key as encoding/json does when it matches keys to
// struct fields: foldKey(a) == foldKey(b) exactly when
// strings.EqualFold(a, b), which is bytes.EqualFold. ASCII to upper case, any other rune to
// the smallest rune of its case-folding orbit, so "ſ" (U+017F) and "s"
// fold alike, as do "K" (the Kelvin sign) and "k".
func foldKey(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 'a' && s[i] <= 'z' || s[i] >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			b = append(b, byte(r-'a'+'A'))
		case r < utf8.RuneSelf:
			b = append(b, byte(r))
		default:
			b = utf8.AppendRune(b, foldRune(r))
		}
	}
	return string(b)
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
