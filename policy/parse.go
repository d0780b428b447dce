package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
	"github.com/keybrake/keybrake/vendors/builtin"
)

// ParseError is a problem in a policy file at a line. Every error Parse returns
// is a *ParseError; Msg starts with the key at fault where there is one.
type ParseError struct {
	File string // the name given to Parse, or the path given to Load
	Line int    // 1-based line of the problem
	Msg  string // "daily_cap: amount \"500 dollars\": ..."
}

// Error renders the problem as compilers do: "keybrake.yaml:12: daily_cap: ...".
func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// Parse reads a policy from data, YAML or JSON; file names it in errors and
// becomes Policy.File. It decodes strictly: an unknown or duplicate key, a
// value of the wrong type, an inexact amount, an anchor, alias, merge key or
// explicit tag, a second document, invisible or bidirectional control
// characters: each is a *ParseError naming the file and the line. Parse stops at
// the first problem, in document order where it can. It is safe for
// concurrent use and keeps no reference to data.
//
// Parse knows the built-in vendors (vendors/builtin); ParseFor takes the
// vendors a policy may name.
func Parse(file string, data []byte) (*Policy, error) {
	return parse(file, data, builtinSchemas())
}

// ParseFor is Parse for a policy that may name the vendors vs: each
// vendor's name is a key of agents' sections and of the vendors section,
// and its Info declares the keys its grants and shared section take. An
// Info the parser cannot follow (a key declared twice or where it means
// nothing) is an error that is not a *ParseError.
func ParseFor(file string, data []byte, vs []vendors.Vendor) (*Policy, error) {
	s, err := newVendorSchemas(vs)
	if err != nil {
		return nil, err
	}
	return parse(file, data, s)
}

// builtinSchemas are the schemas for the built-in vendors, built once.
var builtinSchemas = sync.OnceValue(func() *vendorSchemas {
	s, err := newVendorSchemas(builtin.Vendors())
	if err != nil {
		panic(err) // a built-in vendor's Info is checked by the tests
	}
	return s
})

func parse(file string, data []byte, s *vendorSchemas) (*Policy, error) {
	d := &decoder{file: file, lines: make(map[*money.Amount]int), schemas: s}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	p := &Policy{File: file, Hash: hex.EncodeToString(sum[:])[:16], infos: s.infos}
	if err := decodeMapping(d, "", nil, root, policySchema, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Load reads and parses the file at path. A file that cannot be read
// returns the *fs.PathError of os.ReadFile, so errors.Is(err,
// fs.ErrNotExist) works; a file that does not parse returns a *ParseError.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// decoder carries what every part of the walk needs to report a problem.
type decoder struct {
	file string
	// lines remembers where each amount was written, so that checks made
	// after a whole mapping is read (per_call_max above daily_cap) point at
	// the amount at fault rather than at its mapping.
	lines map[*money.Amount]int
	// schemas are the keys the vendors add.
	schemas *vendorSchemas
}

func (d *decoder) errAt(line int, format string, args ...any) *ParseError {
	if line < 1 {
		line = 1
	}
	return &ParseError{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// errorf reports a problem with the value at n, naming the key at (the last
// element of a dotted path).
func (d *decoder) errorf(n *yaml.Node, at string, format string, args ...any) *ParseError {
	msg := fmt.Sprintf(format, args...)
	if name := lastKey(at); name != "" {
		msg = name + ": " + msg
	}
	return d.errAt(n.Line, "%s", msg)
}

// plainKey is what a key may look like in a message without quotes.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_\-\[\]<>.]{1,64}$`)

// keyText renders a key as written, quoted when it holds anything that
// could confuse a reader of the message.
func keyText(name string) string {
	if plainKey.MatchString(name) {
		return name
	}
	return strconv.Quote(name)
}

func lastKey(at string) string {
	return at[strings.LastIndexByte(at, '.')+1:]
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

// document checks the raw text, parses exactly one YAML document and
// refuses every construct that makes a policy read differently from what
// it does.
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	if err := d.checkText(data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errAt(1, `empty policy; a policy holds at least "version: 1" and agents`)
		}
		return nil, d.syntax(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, d.errAt(next.Line, "a second YAML document starts here; a policy file holds exactly one")
	case !errors.Is(err, io.EOF):
		return nil, d.syntax(err, data)
	}
	if err := d.readsAsWritten(&doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, d.errAt(doc.Line, "a policy is one mapping, starting with \"version: 1\"")
	}
	return doc.Content[0], nil
}

// checkText refuses bytes that are not plain UTF-8 text, and characters that
// make a file display differently from how it parses: control characters
// (a lone carriage return can overwrite a line on a terminal), C1 and
// Unicode line separators, bidirectional overrides and zero-width
// characters (an agent or value that looks like another).
func (d *decoder) checkText(data []byte) error {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return d.errAt(line, "byte 0x%02x is not UTF-8; a policy is UTF-8 text", data[i])
		}
		switch {
		case r == '\n':
			line++
		case r == '\t':
		case r == '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return d.errAt(line, "a carriage return without a line feed; use \\n or \\r\\n line endings")
			}
		case r == 0xFEFF && i == 0: // a byte order mark is harmless at the start
		case r < 0x20, r >= 0x7F && r <= 0x9F, r == 0xFFFE, r == 0xFFFF:
			return d.errAt(line, "control character %U is not allowed", r)
		case r == 0x2028, r == 0x2029:
			return d.errAt(line, "line separator %U is not allowed; use \\n", r)
		case r == 0x00AD, r == 0x061C, r == 0x180E,
			r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2060 && r <= 0x2064,
			r >= 0x2066 && r <= 0x2069, r == 0xFEFF:
			return d.errAt(line, "invisible or bidirectional character %U is not allowed; a policy must read as written", r)
		}
		i += size
	}
	return nil
}

// yamlLine is how go.yaml.in/yaml/v3 places a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the yaml parser's (not scanner's) messages, with a
// hint where the library drops the context that would place the problem.
// The library reports a parser error's line zero-based (and omits it on the
// first line), a scanner error's one-based; see (*parser).fail in its
// decode.go. For the block and flow collections the line is where the
// collection starts, not where it breaks: the hint says so.
var parserProblems = map[string]string{
	"did not find expected <stream-start>":   "",
	"did not find expected <document start>": "",
	"found undefined tag handle":             "",
	"did not find expected node content":     "",
	"did not find expected '-' indicator":    "; check the indentation of the list that starts here",
	"did not find expected key":              "; check the indentation of the mapping that starts here",
	"did not find expected ',' or ']'":       "; check the [list] that starts here",
	"did not find expected ',' or '}'":       "; check the {mapping} that starts here",
	"found duplicate %YAML directive":        "",
	"found incompatible YAML document":       "",
	"found duplicate %TAG directive":         "",
}

var unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// syntax turns a yaml syntax error into a *ParseError with the best line the
// library lets us recover.
func (d *decoder) syntax(err error, data []byte) *ParseError {
	msg := err.Error()
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		// Aliases are refused anyway; say so, where the alias is written.
		line := 1
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line += bytes.Count(data[:i], []byte("\n"))
		}
		return d.errAt(line, "*%s: aliases are not allowed; write the value out", m[1])
	}
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if hint, parser := parserProblems[msg]; parser {
		line++
		msg += hint
	}
	// A problem at the end of the stream can be placed past the last line.
	last := bytes.Count(data, []byte("\n")) + 1
	if bytes.HasSuffix(data, []byte("\n")) {
		last--
	}
	line = min(line, last)
	return d.errAt(line, "invalid YAML: %s", msg)
}

// readsAsWritten refuses anchors, aliases, merge keys and explicit tags, in
// document order: each makes a value mean something its text does not say.
func (d *decoder) readsAsWritten(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.AliasNode:
		return d.errAt(n.Line, "*%s: aliases are not allowed; write the value out", n.Value)
	case n.Anchor != "":
		return d.errAt(n.Line, "&%s: anchors are not allowed; write each value out", n.Anchor)
	case n.Tag == "!!merge":
		return d.errAt(n.Line, "<<: merge keys are not allowed; write each key out")
	case n.Style&yaml.TaggedStyle != 0:
		return d.errAt(n.Line, "%s: explicit tags are not allowed; a policy must read as written", n.Tag)
	}
	for _, c := range n.Content {
		if err := d.readsAsWritten(c); err != nil {
			return err
		}
	}
	return nil
}

// A key is one key a mapping may hold: how to decode its value into T, and
// whether it must be present.
type key[T any] struct {
	decode   func(d *decoder, at string, k, v *yaml.Node, into T) error
	required bool
}

// A schema is the keys of one kind of mapping, and the checks that span
// several of them, run once every key is decoded.
type schema[T any] struct {
	keys  map[string]key[T]
	check func(d *decoder, at string, into T) error
}

// decodeMapping decodes the mapping v (the value of the key owner, nil for a
// list item or the document, at the dotted path at) into into by s.
func decodeMapping[T any](d *decoder, at string, owner, v *yaml.Node, s *schema[T], into T) error {
	if v.Kind != yaml.MappingNode {
		return d.wrongKind(at, v, "a mapping")
	}
	seen := make(map[string]bool, len(s.keys))
	err := d.entries(at, v, func(name string, k, val *yaml.Node) error {
		f, ok := s.keys[name]
		if !ok {
			return d.errAt(k.Line, "%s: unknown key; want %s", keyText(name), oneOf(sortedKeys(s.keys)))
		}
		seen[name] = true
		return f.decode(d, join(at, name), k, val, into)
	})
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(s.keys) {
		if s.keys[name].required && !seen[name] {
			line := v.Line
			if owner != nil {
				line = owner.Line
			}
			return d.errAt(line, "%s: required key is missing", name)
		}
	}
	if s.check != nil {
		return s.check(d, at, into)
	}
	return nil
}

// entries calls fn for each key of the mapping v in order, refusing keys
// that are not plain scalars and keys written twice.
func (d *decoder) entries(at string, v *yaml.Node, fn func(name string, k, val *yaml.Node) error) error {
	if v.Kind != yaml.MappingNode {
		return d.wrongKind(at, v, "a mapping")
	}
	first := make(map[string]int, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			return d.errorf(k, at, "keys must be plain names, not %s", describe(k))
		}
		if line, dup := first[k.Value]; dup {
			return d.errAt(k.Line, "%s: duplicate key (first at line %d)", keyText(k.Value), line)
		}
		first[k.Value] = k.Line
		if err := fn(k.Value, k, val); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) wrongKind(at string, v *yaml.Node, want string) *ParseError {
	return d.errorf(v, at, "want %s, got %s", want, describe(v))
}

// describe names what a node is, for "want X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected node"
}

func sortedKeys[T any](m map[string]key[T]) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// oneOf renders "a", "a or b", "a, b or c".
func oneOf(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// scalar returns the literal text of a scalar value; null is refused.
func (d *decoder) scalar(at string, v *yaml.Node, want string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", d.wrongKind(at, v, want)
	}
	return v.Value, nil
}

// boolKey decodes true or false, written exactly so: a policy that says
// "revoked: yes" or "True" is refused rather than guessed at.
func boolKey[T any](field func(T) *bool) func(*decoder, string, *yaml.Node, *yaml.Node, T) error {
	return func(d *decoder, at string, _, v *yaml.Node, into T) error {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || (v.Value != "true" && v.Value != "false") {
			return d.wrongKind(at, v, "true or false")
		}
		*field(into) = v.Value == "true"
		return nil
	}
}

var positiveInt = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// countKey decodes a positive decimal integer.
func countKey[T any](field func(T) *int64) func(*decoder, string, *yaml.Node, *yaml.Node, T) error {
	return func(d *decoder, at string, _, v *yaml.Node, into T) error {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || !positiveInt.MatchString(v.Value) {
			return d.wrongKind(at, v, "a positive whole number")
		}
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return d.errorf(v, at, "%s is too large", v.Value)
		}
		*field(into) = n
		return nil
	}
}

// amountKey decodes a limit written "500.00 USD" with the precision of a
// price (money.ParsePrice: exact, up to six decimals), so that a cap can be
// set in the units a vendor charges: "0.0020 USD" of Resend's emails.
func amountKey[T any](field func(T) **money.Amount) func(*decoder, string, *yaml.Node, *yaml.Node, T) error {
	return func(d *decoder, at string, _, v *yaml.Node, into T) error {
		s, err := d.scalar(at, v, `an amount such as "500.00 USD"`)
		if err != nil {
			return err
		}
		a, err := money.ParsePrice(s)
		if err != nil {
			return d.errorf(v, at, "%v", err)
		}
		*field(into) = &a
		d.lines[&a] = v.Line
		return nil
	}
}

func (d *decoder) lineOf(a *money.Amount, fallback int) int {
	if line, ok := d.lines[a]; ok {
		return line
	}
	return fallback
}
