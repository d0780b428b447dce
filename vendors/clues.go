package vendors

import (
	"regexp/syntax"
	"slices"
	"unicode/utf8"
)

// The clues of a credential format: literals one of which every match of
// the format holds, so that RedactText runs the expression only on a text
// that holds one ("sk_live_" or "sk_test_" for sk_(?:live|test)_...). A
// text without a clue cannot match, so skipping it changes nothing.

// maxClues bounds how many literals a format's clues may be; a format
// needing more is always scanned.
const maxClues = 16

// clues returns the clues of a format, or nil when it cannot tell: a
// case-insensitive literal, a format that may match without one.
func clues(format string) []string {
	re, err := syntax.Parse(format, syntax.Perl)
	if err != nil {
		return nil
	}
	return required(re)
}

// required returns literals one of which every match of re holds; nil
// when it knows none.
func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if lit, ok := literal(re); ok {
			return []string{lit}
		}
	case syntax.OpCharClass:
		return exact(re)
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpAlternate:
		// Each branch holds one of its own.
		var all []string
		for _, sub := range re.Sub {
			cs := required(sub)
			if cs == nil {
				return nil
			}
			all = append(all, cs...)
		}
		return small(all)
	case syntax.OpConcat:
		// Any part's clues are the whole's; the best are the longest.
		var best []string
		for i := 0; i < len(re.Sub); i++ {
			cs := required(re.Sub[i])
			// Parts matching a few strings exactly ("sk|rk", "_")
			// join into longer clues ("sk_", "rk_").
			if run, n := exactRun(re.Sub[i:]); n > 0 {
				cs, i = better(cs, run), i+n-1
			}
			best = better(best, cs)
		}
		return best
	}
	return nil
}

// exactRun returns every string the longest run of parts at the start of
// subs can match when there are at most maxClues of them, and the run's
// length; n is 0 when the first part cannot be listed.
func exactRun(subs []*syntax.Regexp) (all []string, n int) {
	all = []string{""}
	for _, sub := range subs {
		ex := exact(sub)
		if ex == nil || len(all)*len(ex) > maxClues {
			break
		}
		joined := make([]string, 0, len(all)*len(ex))
		for _, a := range all {
			for _, e := range ex {
				joined = append(joined, a+e)
			}
		}
		all, n = joined, n+1
	}
	if n == 0 {
		return nil, 0
	}
	return small(all), n
}

// exact returns every string re matches, when they are literals and few;
// nil otherwise.
func exact(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if lit, ok := literal(re); ok {
			return []string{lit}
		}
	case syntax.OpCharClass:
		// A few characters ("[rs]", which "r|s" parses to) are a few
		// literals.
		var all []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo >= maxClues || lo <= utf8.RuneError && utf8.RuneError <= hi {
				return nil
			}
			for r := lo; r <= hi; r++ {
				all = append(all, string(r))
			}
		}
		return small(all)
	case syntax.OpCapture:
		return exact(re.Sub[0])
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			ex := exact(sub)
			if ex == nil {
				return nil
			}
			all = append(all, ex...)
		}
		return small(all)
	case syntax.OpConcat:
		if run, n := exactRun(re.Sub); n == len(re.Sub) {
			return run
		}
	}
	return nil
}

// literal returns the text of a case-sensitive literal. One holding
// U+FFFD is refused: the expression reads each invalid byte of a text as
// U+FFFD, which a text need not hold in UTF-8.
func literal(re *syntax.Regexp) (string, bool) {
	if re.Flags&syntax.FoldCase != 0 || slices.Contains(re.Rune, utf8.RuneError) {
		return "", false
	}
	return string(re.Rune), true
}

// small returns clues when they are few and none is empty (an empty clue
// is in every text), and nil otherwise.
func small(cs []string) []string {
	if len(cs) == 0 || len(cs) > maxClues || slices.Contains(cs, "") {
		return nil
	}
	return cs
}

// better returns the clues a text is least likely to hold by chance: the
// set whose shortest clue is longer, then the smaller set; nil is worst.
func better(a, b []string) []string {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	if sa, sb := shortest(a), shortest(b); sa != sb {
		if sa > sb {
			return a
		}
		return b
	}
	if len(b) < len(a) {
		return b
	}
	return a
}

func shortest(cs []string) int {
	n := len(cs[0])
	for _, c := range cs[1:] {
		n = min(n, len(c))
	}
	return n
}
