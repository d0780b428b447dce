package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stall occupies the writer until release is called, so that the test can
// queue operations behind it. It returns once the writer is inside.
func stall(t *testing.T, s *Store) (release func()) {
	t.Helper()
	inside, proceed, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(*bbolt.Tx) error {
			close(inside)
			<-proceed
			return nil
		})
	}()
	<-inside
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(proceed)
			if err := <-done; err != nil {
				t.Errorf("stalling op: %v", err)
			}
		})
	}
	t.Cleanup(release) // before Close, should the test fail while stalled
	return release
}

// waitQueued waits until n operations wait in the queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.queue) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", len(s.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func records(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.Query(context.Background(), audit.Query{}, func(*audit.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCancelWhileQueuedIsNeverApplied(t *testing.T) {
	s := openTest(t)
	release := stall(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := s.Reserve(ctx, &store.Reservation{Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 5}}})
		got <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Reserve = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Reserve did not return when its context was cancelled in the queue")
	}
	release()
	// A write after it proves the writer went past the cancelled op.
	if _, err := s.Append(context.Background(), &audit.Record{Agent: "after"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Counter(context.Background(), "k"); c != (store.Counter{}) {
		t.Fatalf("cancelled reservation was applied: %+v", c)
	}
	if n := records(t, s); n != 1 {
		t.Fatalf("%d records, want only the later append", n)
	}
}

func TestCancelAfterClaimWaitsForResult(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	inside, proceed := make(chan struct{}), make(chan struct{})
	got := make(chan error, 1)
	go func() {
		got <- s.write(ctx, func(tx *bbolt.Tx) error {
			close(inside)
			<-proceed
			return tx.Bucket(bucketFacts).Put([]byte("k"), []byte("v"))
		})
	}()
	<-inside
	var once sync.Once
	release := func() { once.Do(func() { close(proceed) }) }
	t.Cleanup(release)
	cancel()
	select {
	case err := <-got:
		t.Fatalf("write returned %v while the writer was applying it", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("write = %v, want the committed result (nil) despite the cancelled context", err)
	}
	if v, ok, _ := s.Fact(context.Background(), "k"); !ok || v != "v" {
		t.Fatal("the claimed op was not committed")
	}
}

func TestGroupCommit(t *testing.T) {
	s := openTest(t)
	release := stall(t, s)
	const n = 50
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := s.Reserve(context.Background(), &store.Reservation{Holds: []audit.Hold{{Key: "k", Limit: 30, Amount: 1}}})
			errs <- err
		}()
	}
	waitQueued(t, s, n)
	commits := s.commits.Load()
	release()
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The stalling op's commit, then one for all fifty.
	if got := s.commits.Load() - commits; got != 2 {
		t.Fatalf("%d commits for %d queued reservations, want 2 (the stall and one batch)", got, n)
	}
	if c, _ := s.Counter(context.Background(), "k"); c.Pending != 30 {
		t.Fatalf("Counter = %+v, want 30 pending: the batch applies the ops in turn", c)
	}
}

func TestBatchFailureIsolated(t *testing.T) {
	s := openTest(t)
	release := stall(t, s)
	boom := errors.New("boom")
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 4)
	appendAs := func(name string) {
		go func() {
			_, err := s.Append(context.Background(), &audit.Record{Agent: name})
			results <- result{name, err}
		}()
	}
	appendAs("first")
	waitQueued(t, s, 1)
	go func() {
		results <- result{"failing", s.write(context.Background(), func(tx *bbolt.Tx) error {
			// Writes, then fails: the write must be rolled back.
			if err := tx.Bucket(bucketFacts).Put([]byte("partial"), []byte("x")); err != nil {
				return err
			}
			return boom
		})}
	}()
	waitQueued(t, s, 2)
	appendAs("third")
	waitQueued(t, s, 3)
	appendAs("fourth")
	waitQueued(t, s, 4)
	release()
	for i := 0; i < 4; i++ {
		r := <-results
		if r.name == "failing" {
			if !errors.Is(r.err, boom) {
				t.Errorf("failing op = %v, want boom", r.err)
			}
		} else if r.err != nil {
			t.Errorf("%s = %v, want success", r.name, r.err)
		}
	}
	if n := records(t, s); n != 3 {
		t.Fatalf("%d records, want the 3 appends", n)
	}
	if _, ok, _ := s.Fact(context.Background(), "partial"); ok {
		t.Fatal("the failing op's write was committed")
	}
	// A lone failing op gets its error too.
	if err := s.write(context.Background(), func(*bbolt.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("lone failing op = %v", err)
	}
}

func TestCloseFinishesQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := stall(t, s)
	type res struct {
		a   store.Admission
		err error
	}
	got := make(chan res, 1)
	go func() {
		a, err := s.Reserve(context.Background(), &store.Reservation{Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 5}}})
		got <- res{a, err}
	}()
	waitQueued(t, s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close stops accepting before it waits for the writer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.RLock()
		closing := s.closed
		s.mu.RUnlock()
		if closing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Append(context.Background(), &audit.Record{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append while closing = %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v before the queued reservation was done", err)
	default:
	}
	release()
	r := <-got
	if r.err != nil || r.a.Result != store.Admitted {
		t.Fatalf("queued Reserve = %+v, %v; want Admitted", r.a, r.err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, _ := s.Counter(context.Background(), "k"); c != (store.Counter{Unknown: 5}) {
		t.Fatalf("Counter after reopen = %+v: the reservation admitted during Close must be on disk (now unknown)", c)
	}
}

// openLinger opens a store whose writer lingers for a minute: long enough
// that nothing but another op (or Close) ends the wait in a test.
func openLinger(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "keybrake.db"), &Options{Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitLingering waits until the writer has begun its nth linger.
func waitLingering(t *testing.T, s *Store, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.lingers.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the writer began %d lingers, want %d", s.lingers.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCompletionRidesTheNextCommit: a serial caller's Complete, then its
// next Reserve, cost one commit, and Complete returns only once it is
// committed.
func TestCompletionRidesTheNextCommit(t *testing.T) {
	s := openLinger(t)
	ctx := context.Background()
	a, err := s.Reserve(ctx, &store.Reservation{Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	commits := s.commits.Load()
	done := make(chan error, 1)
	go func() {
		done <- s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Settled, Settled: []int64{5}})
	}()
	waitLingering(t, s, 1)
	select {
	case err := <-done:
		t.Fatalf("Complete returned %v before its commit", err)
	default:
	}
	if _, err := s.Reserve(ctx, &store.Reservation{Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 5}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := s.commits.Load() - commits; got != 1 {
		t.Fatalf("%d commits for a Complete and the Reserve after it, want 1", got)
	}
	if c, _ := s.Counter(ctx, "k"); c != (store.Counter{Settled: 5, Pending: 5}) {
		t.Fatalf("Counter = %+v", c)
	}
}

// TestLingerEnds: Close ends a linger at once, committing what it held;
// a reservation never lingers; a negative Linger disables it.
func TestLingerEnds(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		s := openLinger(t)
		ctx := context.Background()
		a, err := s.Reserve(ctx, &store.Reservation{Holds: []audit.Hold{{Key: "k", Limit: -1, Amount: 5}}})
		if err != nil {
			t.Fatal(err)
		}
		if s.lingers.Load() != 0 {
			t.Fatal("the writer lingered over a reservation")
		}
		done := make(chan error, 1)
		go func() { done <- s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Released}) }()
		waitLingering(t, s, 1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Complete during Close = %v", err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		s, err := Open(filepath.Join(t.TempDir(), "keybrake.db"), &Options{Linger: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		a, err := s.Reserve(ctx, &store.Reservation{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, &store.Completion{ID: a.ID, Outcome: audit.Released}); err != nil {
			t.Fatal(err)
		}
		if s.lingers.Load() != 0 {
			t.Fatal("the writer lingered with Linger negative")
		}
	})
}
