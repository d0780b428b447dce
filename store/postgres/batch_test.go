package postgres_test

import (
	"sync"
	"testing"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
)

// TestBatchRefusalsLeaveOthersAdmitted: many reservations of one Store at
// once share transactions; those over the limit and those whose key was
// used for another request are refused, and every other one in the same
// batches is admitted: the cap is met exactly, one request of the key
// wins, and the chain verifies.
func TestBatchRefusalsLeaveOthersAdmitted(t *testing.T) {
	s := open(t, testenv.PostgresSchema(t), nil)
	defer s.Close()
	const limit, capped, keyed = 10, 40, 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]map[store.Result]int{"cap": {}, "key": {}}
		ids     = map[uint64]bool{}
	)
	start := make(chan struct{})
	reserve := func(group string, r *store.Reservation) {
		defer wg.Done()
		<-start
		a, err := s.Reserve(ctx, r)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Error(err)
			return
		}
		results[group][a.Result]++
		if a.Result == store.Admitted {
			if ids[a.ID] {
				t.Errorf("record %d admitted twice", a.ID)
			}
			ids[a.ID] = true
		}
	}
	for i := 0; i < capped; i++ {
		wg.Add(1)
		go reserve("cap", &store.Reservation{Record: call(i), Holds: []audit.Hold{{Key: "cap", Unit: "units", Limit: limit, Amount: 1}}})
	}
	for i := 0; i < keyed; i++ {
		wg.Add(1)
		go reserve("key", &store.Reservation{Record: call(i), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: -1, Amount: 100}},
			Idempotency: &store.Idempotency{Key: "agent\x00stripe\x00\x00k1", Fingerprint: string(rune('a' + i))}})
	}
	close(start)
	wg.Wait()
	if got := results["cap"]; got[store.Admitted] != limit || got[store.OverLimit] != capped-limit {
		t.Errorf("capped reservations: %v; want %d admitted, %d over the limit", got, limit, capped-limit)
	}
	if got := results["key"]; got[store.Admitted] != 1 || got[store.KeyReused]+got[store.KeyInUse] != keyed-1 {
		t.Errorf("reservations of one key: %v; want 1 admitted, the rest reused or in use", got)
	}
	if c, err := s.Counter(ctx, "cap"); err != nil || c != (store.Counter{Pending: limit}) {
		t.Errorf("cap counter %+v, %v; want %d pending", c, err, limit)
	}
	if c, err := s.Counter(ctx, "usd"); err != nil || c != (store.Counter{Pending: 100}) {
		t.Errorf("usd counter %+v, %v; want 100 pending", c, err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || rep.Records != limit+1 || rep.Entries != limit+1 {
		t.Fatalf("Verify = %+v, %v; want %d records and entries", rep, err, limit+1)
	}

	// Completing them all at once, in batches, settles each once.
	var cwg sync.WaitGroup
	for id := range ids {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			if err := s.Complete(ctx, &store.Completion{ID: id, Outcome: audit.Settled, Settled: []int64{1}}); err != nil {
				t.Error(err)
			}
		}()
	}
	cwg.Wait()
	if c, _ := s.Counter(ctx, "cap"); c.Pending != 0 || c.Settled+c.Unknown > limit {
		t.Errorf("cap counter after the completions: %+v", c)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestIdempotencyKeysWithNUL: Keybrake's keys separate agent, vendor,
// account and the request's key with U+0000, which PostgreSQL's text
// cannot hold; the store escapes them, and keys that differ stay
// different after the escape.
func TestIdempotencyKeysWithNUL(t *testing.T) {
	s := open(t, testenv.PostgresSchema(t), nil)
	defer s.Close()
	tests := []struct {
		key, fp string
		want    store.Result
	}{
		{"a\x00b", "fp1", store.Admitted},
		{`a\0b`, "fp2", store.Admitted}, // what the escape of the first would be, unescaped
		{`a\\0b`, "fp3", store.Admitted},
		{"a\x00b", "fp2", store.KeyReused},
		{`a\0b`, "fp2", store.KeyInUse},
	}
	for i, tt := range tests {
		a, err := s.Reserve(ctx, &store.Reservation{Record: call(i), Holds: []audit.Hold{{Key: "usd", Unit: "USD", Limit: -1, Amount: 1}},
			Idempotency: &store.Idempotency{Key: tt.key, Fingerprint: tt.fp}})
		if err != nil || a.Result != tt.want {
			t.Errorf("Reserve with key %q, fingerprint %s = %+v, %v; want %v", tt.key, tt.fp, a, err, tt.want)
		}
	}
}
