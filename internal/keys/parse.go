package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// ParseError is a problem in a keys file at a line. Every error Load
// returns for a file it could read and was allowed to read is a
// *ParseError. Msg names the key at fault and never quotes a value: a
// value may be a secret pasted into the wrong place.
type ParseError struct {
	File string // the path given to Load
	Line int    // 1-based line of the problem
	Msg  string // "keys[2].sha256: want 64 hexadecimal digits ..."
}

// Error renders the problem as compilers do: "keybrake.keys:7: ...".
func (e *ParseError) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

var (
	// agentName is the policy's agent name syntax (policy/schema.go); a
	// vendor name follows it too, as the policy's vendor keys do.
	agentName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// keyID is "kbk_" and 12 characters of lower-case base32 (what Add
	// writes) or hex (what a hand-written file may hold).
	keyID    = regexp.MustCompile(`^kbk_(?:[a-z2-7]{12}|[0-9a-f]{12})$`)
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// plainKey is what a mapping key may look like to be quoted in a
	// message; anything else is described, not shown.
	plainKey = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
)

const nameRule = "1 to 63 lower-case letters, digits, _ and -, starting with a letter or digit"

// decoder walks one document, remembering where each thing was seen.
type decoder struct {
	file string
}

func (d *decoder) errAt(line int, format string, args ...any) *ParseError {
	if line < 1 {
		line = 1
	}
	return &ParseError{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// parse reads a keys file; name is how errors and File.Path name it.
func parse(name string, data []byte) (*File, error) {
	d := &decoder{file: name}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	f := &File{path: name, hash: hex.EncodeToString(sum[:8])}
	if err := d.top(root, f); err != nil {
		return nil, err
	}
	return f, nil
}

// document checks the raw text and parses exactly one YAML document that
// reads as written (no anchors, aliases, merge keys or tags).
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	if err := d.checkText(data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errAt(1, `empty keys file; it holds at least "version: 1"`)
		}
		return nil, d.syntax(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, d.errAt(next.Line, "a second YAML document starts here; a keys file holds exactly one")
	case !errors.Is(err, io.EOF):
		return nil, d.syntax(err, data)
	}
	if err := d.readsAsWritten(&doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, d.errAt(doc.Line, `a keys file is one mapping, starting with "version: 1"`)
	}
	return doc.Content[0], nil
}

// checkText refuses bytes that are not UTF-8 text and characters that make
// the file display differently from how it parses (as policy does).
func (d *decoder) checkText(data []byte) error {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return d.errAt(line, "a byte that is not UTF-8; a keys file is UTF-8 text")
		}
		switch {
		case r == '\n':
			line++
		case r == '\t':
		case r == '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return d.errAt(line, "a carriage return without a line feed; use \\n or \\r\\n line endings")
			}
		case r == 0xFEFF && i == 0:
		case r < 0x20, r >= 0x7F && r <= 0x9F, r == 0xFFFE, r == 0xFFFF:
			return d.errAt(line, "control character %U is not allowed", r)
		case r == 0x2028, r == 0x2029:
			return d.errAt(line, "line separator %U is not allowed; use \\n", r)
		case r == 0x00AD, r == 0x061C, r == 0x180E,
			r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2060 && r <= 0x2064,
			r >= 0x2066 && r <= 0x2069, r == 0xFEFF:
			return d.errAt(line, "invisible or bidirectional character %U is not allowed; a keys file must read as written", r)
		}
		i += size
	}
	return nil
}

// parserProblems are the yaml parser's (not scanner's) messages, which it
// places on a zero-based line, with a hint where the line is where a
// collection starts rather than where it breaks (as policy/parse.go).
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

var (
	yamlLine      = regexp.MustCompile(`^yaml: line (\d+): `)
	unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// syntax turns a yaml syntax error into a *ParseError. It keeps the line
// and drops the library's text where that could quote the file: a scanner
// message names at most a character class, but "unknown anchor" names
// what follows a '*', and a value with a stray '*' may be a secret.
func (d *decoder) syntax(err error, data []byte) *ParseError {
	msg := err.Error()
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		line := 1
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line += bytes.Count(data[:i], []byte("\n"))
		}
		return d.errAt(line, "an alias (*name); aliases are not allowed, write the value out")
	}
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if hint, parser := parserProblems[msg]; parser {
		line++
		msg += hint
	}
	last := bytes.Count(data, []byte("\n")) + 1
	if bytes.HasSuffix(data, []byte("\n")) {
		last--
	}
	return d.errAt(min(line, max(last, 1)), "invalid YAML: %s", msg)
}

// readsAsWritten refuses anchors, aliases, merge keys and explicit tags:
// each makes a value mean something its text does not say.
func (d *decoder) readsAsWritten(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.AliasNode:
		return d.errAt(n.Line, "an alias (*name); aliases are not allowed, write the value out")
	case n.Anchor != "":
		return d.errAt(n.Line, "an anchor (&name); anchors are not allowed, write each value out")
	case n.Tag == "!!merge":
		return d.errAt(n.Line, "<<: merge keys are not allowed; write each key out")
	case n.Style&yaml.TaggedStyle != 0:
		return d.errAt(n.Line, "an explicit tag (!name); tags are not allowed, a keys file must read as written")
	}
	for _, c := range n.Content {
		if err := d.readsAsWritten(c); err != nil {
			return err
		}
	}
	return nil
}

// keyText shows a mapping key in a message when it is a plain short name.
func keyText(name string) string {
	if plainKey.MatchString(name) {
		return name
	}
	return "a key"
}

// describe names what a node is, for "want X, got Y", without its text.
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
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		case "!!timestamp":
			return "a time"
		}
		return "a string"
	}
	return "an unexpected node"
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

// entries calls fn for each key of the mapping v (at the dotted path at)
// in order, refusing keys that are not plain strings and keys written
// twice.
func (d *decoder) entries(at string, v *yaml.Node, fn func(name string, k, val *yaml.Node) error) error {
	if v.Kind != yaml.MappingNode {
		return d.wrongKind(at, v, "a mapping")
	}
	first := make(map[string]int, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return d.errAt(k.Line, "%skeys must be plain names, not %s", prefix(at), describe(k))
		}
		if line, dup := first[k.Value]; dup {
			return d.errAt(k.Line, "%s: duplicate key (first at line %d)", join(at, keyText(k.Value)), line)
		}
		first[k.Value] = k.Line
		if err := fn(k.Value, k, val); err != nil {
			return err
		}
	}
	return nil
}

func prefix(at string) string {
	if at == "" {
		return ""
	}
	return at + ": "
}

func (d *decoder) wrongKind(at string, v *yaml.Node, want string) *ParseError {
	return d.errAt(v.Line, "%s: want %s, got %s", at, want, describe(v))
}

// str returns the text of a string value. Anything the YAML reads as
// another type (a number, a boolean, nothing) is refused rather than
// converted: 007 or a hash of digits only must be quoted.
func (d *decoder) str(at string, v *yaml.Node, want string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		err := d.wrongKind(at, v, want)
		if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			err.Msg += "; quote it if it is meant as text"
		}
		return "", err
	}
	return v.Value, nil
}

// utc decodes an RFC 3339 time in UTC ("2026-11-25T10:00:00Z"), quoted or
// not (YAML reads it unquoted as a timestamp).
func (d *decoder) utc(at string, v *yaml.Node) (time.Time, error) {
	const want = `an RFC 3339 time in UTC, such as "2026-11-25T10:00:00Z"`
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!timestamp") {
		return time.Time{}, d.wrongKind(at, v, want)
	}
	t, err := time.Parse(time.RFC3339, v.Value)
	if err != nil || !strings.HasSuffix(v.Value, "Z") {
		return time.Time{}, d.errAt(v.Line, "%s: want %s", at, want)
	}
	return t.UTC(), nil
}

// top decodes the top-level mapping.
func (d *decoder) top(root *yaml.Node, f *File) error {
	var version *yaml.Node
	err := d.entries("", root, func(name string, k, v *yaml.Node) error {
		switch name {
		case "version":
			version = k
			return d.version(v)
		case "secrets":
			return d.secrets(v, f)
		case "keys":
			return d.keys(v, f)
		}
		return d.errAt(k.Line, "%s: unknown key; want version, secrets or keys", keyText(name))
	})
	if err != nil {
		return err
	}
	if version == nil {
		return d.errAt(root.Line, `version: required key is missing; write "version: 1" first`)
	}
	return nil
}

func (d *decoder) version(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		return d.wrongKind("version", v, "the number 1")
	}
	if v.Value != "1" {
		return d.errAt(v.Line, "version: this Keybrake reads keys files of version 1; got version %s", strconv.Quote(v.Value))
	}
	return nil
}

// secretPrefix is the one form a secret's source takes: a file to read.
const secretPrefix = "file:"

func (d *decoder) secrets(v *yaml.Node, f *File) error {
	f.secrets = map[string]string{}
	return d.entries("secrets", v, func(vendor string, k, val *yaml.Node) error {
		if !agentName.MatchString(vendor) {
			return d.errAt(k.Line, "secrets: a vendor name is %s", nameRule)
		}
		at := "secrets." + vendor
		s, err := d.str(at, val, `where to read the secret from, "file:/absolute/path"`)
		if err != nil {
			return err
		}
		p, ok := strings.CutPrefix(s, secretPrefix)
		if !ok {
			return d.errAt(val.Line, "%s: not file:/absolute/path; this file says where a secret is read from, never holds one (the value is not shown)", at)
		}
		if !filepath.IsAbs(p) {
			return d.errAt(val.Line, "%s: file: wants an absolute path, such as file:/etc/keybrake/%s.key", at, vendor)
		}
		f.secrets[vendor] = p
		return nil
	})
}

func (d *decoder) keys(v *yaml.Node, f *File) error {
	if v.Kind != yaml.SequenceNode {
		return d.wrongKind("keys", v, "a list")
	}
	ids := map[string]int{}
	sums := map[[32]byte]int{}
	for i, item := range v.Content {
		at := fmt.Sprintf("keys[%d]", i)
		e, err := d.entry(at, item)
		if err != nil {
			return err
		}
		if line, dup := ids[e.ID]; dup {
			return d.errAt(item.Line, "%s.id: duplicate id (first at line %d)", at, line)
		}
		ids[e.ID] = item.Line
		var sum [32]byte
		hex.Decode(sum[:], []byte(e.SHA256))
		if line, dup := sums[sum]; dup {
			return d.errAt(item.Line, "%s.sha256: the same key as the entry at line %d; a key belongs to one entry", at, line)
		}
		sums[sum] = item.Line
		f.entries = append(f.entries, e)
		f.sums = append(f.sums, sum)
	}
	return nil
}

// entry decodes one key's entry.
func (d *decoder) entry(at string, v *yaml.Node) (Entry, error) {
	var e Entry
	seen := map[string]bool{}
	err := d.entries(at, v, func(name string, k, val *yaml.Node) error {
		kat := join(at, name)
		var err error
		seen[name] = true
		switch name {
		case "id":
			if e.ID, err = d.str(kat, val, "an id"); err == nil && !keyID.MatchString(e.ID) {
				err = d.errAt(val.Line, "%s: an id is kbk_ and 12 lower-case base32 or hexadecimal characters", kat)
			}
		case "agent":
			if e.Agent, err = d.str(kat, val, "an agent name"); err == nil && !agentName.MatchString(e.Agent) {
				err = d.errAt(val.Line, "%s: an agent name is %s", kat, nameRule)
			}
		case "vendor":
			if e.Vendor, err = d.str(kat, val, "a vendor name"); err == nil && !agentName.MatchString(e.Vendor) {
				err = d.errAt(val.Line, "%s: a vendor name is %s", kat, nameRule)
			}
		case "sha256":
			if e.SHA256, err = d.str(kat, val, "64 hexadecimal digits"); err == nil && !sha256Re.MatchString(e.SHA256) {
				msg := "want the key's SHA-256, 64 lower-case hexadecimal digits"
				if strings.HasPrefix(e.SHA256, tokenPrefix) {
					msg += "; this looks like a key itself: remove it and revoke it"
				}
				err = d.errAt(val.Line, "%s: %s", kat, msg)
			}
		case "created":
			e.Created, err = d.utc(kat, val)
		case "revoked":
			if e.Revoked, err = d.utc(kat, val); err == nil && e.Revoked.IsZero() {
				err = d.errAt(val.Line, "%s: the zero time; write when the key was revoked", kat)
			}
		default:
			err = d.errAt(k.Line, "%s: unknown key; want id, agent, vendor, sha256, created or revoked", join(at, keyText(name)))
		}
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	for _, name := range []string{"id", "agent", "vendor", "sha256", "created"} {
		if !seen[name] {
			return Entry{}, d.errAt(v.Line, "%s: required key is missing", join(at, name))
		}
	}
	return e, nil
}
