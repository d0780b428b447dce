package vendors

import (
	"cmp"
	"maps"
	"slices"
	"unicode/utf8"
)

// QuoteLimit is how many bytes of a request's own text a refusal or an
// error quotes: enough to recognise the value, short enough that a
// caller's megabyte of garbage does not end up in every log line.
const QuoteLimit = 64

// Truncate returns s if it is at most n bytes long, and otherwise the
// longest prefix of at most n bytes that ends on a rune boundary, followed
// by "..." to mark the cut; the result may so be up to n+3 bytes. A rune
// is never cut in half, so a valid UTF-8 s gives a valid result; bytes
// that are not UTF-8 are kept or dropped one at a time. n <= 0 keeps
// nothing of a non-empty s. Truncate is a pure function, safe for
// concurrent use.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for cut < n {
		_, size := utf8.DecodeRuneInString(s[cut:])
		if cut+size > n {
			break
		}
		cut += size
	}
	return s[:cut] + "..."
}

// SortedKeys returns the keys of m in ascending order, so that whatever
// is built from a map (an error naming its first bad key, an audit field)
// reads the same on every run. A nil or empty m gives an empty, non-nil
// slice.
func SortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K {
	keys := slices.AppendSeq(make([]K, 0, len(m)), maps.Keys(m))
	slices.Sort(keys)
	return keys
}
