package keys_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keybrake/keybrake/internal/keys"
)

// keys add prints the new key once; keys list shows the entries, never a
// key; the proxy looks up what an agent presents; keys revoke refuses it
// from then on, and the entry stays listed.
func ExampleAdd() {
	dir, err := os.MkdirTemp("", "keybrake")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keybrake.keys")
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

	token, e, err := keys.Add(path, "refund-bot", "stripe", now)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(token, "kb_"), len(token))

	f, err := keys.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range f.Entries() {
		fmt.Println(e.Agent, e.Vendor, e.Created.Format(time.RFC3339))
	}
	got, result := f.Lookup(token)
	fmt.Println(result, got.ID == e.ID)
	_, result = f.Lookup("kb_guessed")
	fmt.Println(result)

	if err := keys.Revoke(path, e.ID, now.Add(time.Hour)); err != nil {
		log.Fatal(err)
	}
	f, _ = keys.Load(path)
	got, result = f.Lookup(token)
	fmt.Println(result, got.Revoked.Format(time.RFC3339))
	// Output:
	// true 55
	// refund-bot stripe 2026-11-25T10:00:00Z
	// ok true
	// unknown
	// revoked 2026-11-25T11:00:00Z
}

// The proxy decides by a Set: a revocation written by keybrake keys revoke
// in another process is in force within the poll, and an invalid file
// refuses every key, with the reason for /readyz.
func ExampleOpenSet() {
	dir, err := os.MkdirTemp("", "keybrake")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keybrake.keys")
	token, e, err := keys.Add(path, "refund-bot", "stripe", time.Now())
	if err != nil {
		log.Fatal(err)
	}

	set, err := keys.OpenSet(path, keys.SetOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer set.Close()
	got, result := set.Lookup(token)
	fmt.Println(result, got.Agent, got.Vendor)

	if err := keys.Revoke(path, e.ID, time.Now()); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, result = set.Lookup(token); result != keys.OK {
			break
		}
	}
	fmt.Println(result, set.Err())
	// Output:
	// ok refund-bot stripe
	// revoked <nil>
}
