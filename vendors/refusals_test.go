package vendors

import (
	"fmt"
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
	if NewRefusalToken() == NewRefusalToken() {
		t.Fatal("tokens repeat")
	}
}
