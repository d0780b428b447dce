package keys

import (
	"fmt"
	"testing"
)

// benchFile is a keys file of n entries and the last entry's key, the
// worst case for a search that stopped at a match (Lookup never does).
func benchFile(b *testing.B, n int) (*File, string) {
	path := keysFile(b)
	var tok string
	for i := range n {
		tok, _ = mustAdd(b, path, fmt.Sprintf("bot-%d", i), "stripe", t0)
	}
	return mustLoad(b, path), tok
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		f, tok := benchFile(b, n)
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, r := f.Lookup(tok); r != OK {
					b.Fatal(r)
				}
			}
		})
	}
}

func BenchmarkSetLookupParallel(b *testing.B) {
	f, tok := benchFile(b, 10)
	s := openSet(b, f.Path(), SetOptions{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, r := s.Lookup(tok); r != OK {
				b.Fatal(r)
			}
		}
	})
}
