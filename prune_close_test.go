package keybrake_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// endlessPrune is a store whose Prune runs until its ctx ends, as a prune
// of a long log may for minutes: it says when it has started and what
// ended it.
type endlessPrune struct {
	store.Store
	started chan struct{}
	ended   chan error
}

func (s *endlessPrune) Prune(ctx context.Context, _ time.Time) (store.PruneReport, error) {
	s.started <- struct{}{}
	<-ctx.Done()
	s.ended <- ctx.Err()
	return store.PruneReport{}, ctx.Err()
}

// TestCloseCancelsAPruneInProgress: Close does not wait for a prune to
// finish; it cancels the prune's context and waits only for it to return.
// Nothing here is timed: with a Close that waited for the prune, the test
// would hang until the prune's own 10-minute bound (or go test's timeout).
func TestCloseCancelsAPruneInProgress(t *testing.T) {
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &endlessPrune{Store: bs, started: make(chan struct{}, 1), ended: make(chan error, 1)}
	var (
		mu       sync.Mutex
		reported []error
	)
	kb, err := keybrake.Open(keybrake.Options{
		PolicyFile:  writePolicy(t, issuePolicy),
		Store:       st,
		AdminSocket: "-",
		ErrorLog:    func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	<-st.started // Open starts a prune at once
	if err := kb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-st.ended:
		if err != context.Canceled {
			t.Fatalf("the prune ended with %v, want context.Canceled", err)
		}
	default:
		t.Fatal("Close returned before the prune it cancelled had returned")
	}
	// Close wrote the last day and closed the store after the prune.
	if _, _, err := bs.Fact(context.Background(), "keybrake/last_day"); err == nil {
		t.Error("the store is still open after Close")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 0 {
		t.Errorf("a prune cancelled by Close was reported as a failure: %v", reported)
	}
}

// TestCloseWithoutPruning: with Retention negative no prune runs, and
// Close has nothing to cancel.
func TestCloseWithoutPruning(t *testing.T) {
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &endlessPrune{Store: bs, started: make(chan struct{}, 1), ended: make(chan error, 1)}
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: writePolicy(t, issuePolicy), Store: st, AdminSocket: "-", Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := kb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-st.started:
		t.Fatal("a prune ran with Retention negative")
	default:
	}
}
