// Package pattern matches request paths against templates such as
// "/v1/charges/{id}/capture" or "/2010-04-01/Accounts/{sid}/Messages.json".
//
// The language is small on purpose. A template is "/" followed by segments
// separated by "/". A segment is literal text, placeholders, or both: a
// placeholder "{name}" matches one or more ID characters (A-Z a-z 0-9 _ -)
// and never "/", "." or anything else, so "{sid}.json" matches "SM123.json"
// and not "SM1.2.json". Literal text is matched exactly and case-sensitively
// and may hold ID characters and ".". There are no wildcards across segments,
// no optional parts and no escapes: every path a template matches is one the
// operator can read off it.
package pattern

import (
	"fmt"
	"strings"
)

// Pattern is a compiled template. The zero value matches nothing. It is
// immutable and safe for concurrent use.
type Pattern struct {
	text     string
	segments [][]part
}

type part struct {
	literal string // matched exactly when name is ""
	name    string // a placeholder
}

// Compile parses a template.
func Compile(template string) (Pattern, error) {
	if !strings.HasPrefix(template, "/") {
		return Pattern{}, fmt.Errorf("path %q must start with /", template)
	}
	if template == "/" {
		return Pattern{}, fmt.Errorf("path %q names no resource", template)
	}
	p := Pattern{text: template}
	for _, seg := range strings.Split(template[1:], "/") {
		if seg == "" {
			return Pattern{}, fmt.Errorf("path %q has an empty segment", template)
		}
		parts, err := compileSegment(seg)
		if err != nil {
			return Pattern{}, fmt.Errorf("path %q: %w", template, err)
		}
		p.segments = append(p.segments, parts)
	}
	return p, nil
}

// MustCompile is Compile for templates written in code; it panics on error.
func MustCompile(template string) Pattern {
	p, err := Compile(template)
	if err != nil {
		panic(err)
	}
	return p
}

func compileSegment(seg string) ([]part, error) {
	if seg == "." || seg == ".." {
		return nil, fmt.Errorf("dot segment %q", seg)
	}
	var parts []part
	for seg != "" {
		open := strings.IndexByte(seg, '{')
		if open < 0 {
			open = len(seg)
		}
		if open > 0 {
			lit := seg[:open]
			for i := 0; i < len(lit); i++ {
				if !isIDChar(lit[i]) && lit[i] != '.' {
					return nil, fmt.Errorf("character %q is not allowed in a path", lit[i])
				}
			}
			parts = append(parts, part{literal: lit})
			seg = seg[open:]
			continue
		}
		end := strings.IndexByte(seg, '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed placeholder in %q", seg)
		}
		name := seg[1:end]
		if name == "" {
			return nil, fmt.Errorf("placeholder {} has no name")
		}
		for i := 0; i < len(name); i++ {
			if !isIDChar(name[i]) {
				return nil, fmt.Errorf("placeholder {%s} has a bad name", name)
			}
		}
		if len(parts) > 0 && parts[len(parts)-1].name != "" {
			return nil, fmt.Errorf("placeholders {%s} and {%s} touch; their boundary is ambiguous", parts[len(parts)-1].name, name)
		}
		parts = append(parts, part{name: name})
		seg = seg[end+1:]
	}
	return parts, nil
}

// String returns the template.
func (p Pattern) String() string { return p.text }

// Match reports whether path matches, and the placeholder values by name.
// path must be an escaped path already checked for dot segments and
// escapes; Match does not clean it.
func (p Pattern) Match(path string) (vars map[string]string, ok bool) {
	if len(p.segments) == 0 || !strings.HasPrefix(path, "/") {
		return nil, false
	}
	segs := strings.Split(path[1:], "/")
	if len(segs) != len(p.segments) {
		return nil, false
	}
	for i, seg := range segs {
		if !matchSegment(p.segments[i], seg, &vars) {
			return nil, false
		}
	}
	return vars, true
}

func matchSegment(parts []part, seg string, vars *map[string]string) bool {
	for i, pt := range parts {
		if pt.name == "" {
			if !strings.HasPrefix(seg, pt.literal) {
				return false
			}
			seg = seg[len(pt.literal):]
			continue
		}
		// A placeholder takes ID characters up to the next literal (which
		// starts with "." or an ID character; IDs never hold ".").
		n := 0
		for n < len(seg) && isIDChar(seg[n]) {
			n++
		}
		if i+1 < len(parts) {
			next := parts[i+1].literal
			// Give back characters until the following literal can start.
			for n > 0 && !strings.HasPrefix(seg[n:], next) {
				n--
			}
		}
		if n == 0 {
			return false
		}
		if *vars == nil {
			*vars = make(map[string]string)
		}
		(*vars)[pt.name] = seg[:n]
		seg = seg[n:]
	}
	return seg == ""
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
