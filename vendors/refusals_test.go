package vendors

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestRefusalMemory(t *testing.T) {
	first := NewRefusalToken()
	if !strings.HasPrefix(first, "kbr_") || len(first) != 20 {
		t.Fatalf("token %q", first)
	}
	RememberRefusal(first, []byte(`{"decision":"capped"}`))
	if d, ok := RecallRefusal(first); !ok || string(d) != `{"decision":"capped"}` {
		t.Fatalf("recall = %s, %v", d, ok)
	}
	for i := 0; i < refusalMemory; i++ {
		RememberRefusal(fmt.Sprintf("t%d", i), []byte("x"))
	}
	if _, ok := RecallRefusal(first); ok {
		t.Fatal("the oldest refusal was not forgotten")
	}
	if _, ok := RecallRefusal(fmt.Sprintf("t%d", refusalMemory-1)); !ok {
		t.Fatal("the newest refusal was forgotten")
	}
}

// TestRefusalToken: every token has the documented form, and none repeats
// in a thousand (64 random bits each: a repeat means they are not random).
func TestRefusalToken(t *testing.T) {
	form := regexp.MustCompile(`^kbr_[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		tok := NewRefusalToken()
		if !form.MatchString(tok) {
			t.Fatalf("token %q is not kbr_ and 16 hex digits", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeats after %d tokens", tok, i)
		}
		seen[tok] = true
	}
}
