package postgres_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
	"github.com/keybrake/keybrake/store/storetest"
)

// With a poll of an hour, only the notification can bring a change within
// storetest.StopsWithin.
func TestStopsConformance(t *testing.T) {
	opts := &postgres.Options{StopsPoll: time.Hour}
	storetest.RunStops(t, func(t *testing.T) (store.Store, storetest.Reopen) {
		dsn := testenv.PostgresSchema(t)
		return open(t, dsn, opts), func(t *testing.T) store.Store { return open(t, dsn, opts) }
	})
}

// Without LISTEN (a pooler in transaction mode), the poll alone does.
func TestStopsConformancePollOnly(t *testing.T) {
	opts := &postgres.Options{NoListen: true, StopsPoll: 200 * time.Millisecond}
	storetest.RunStops(t, func(t *testing.T) (store.Store, storetest.Reopen) {
		dsn := testenv.PostgresSchema(t)
		return open(t, dsn, opts), func(t *testing.T) store.Store { return open(t, dsn, opts) }
	})
}

// The agents' role sets and reads stops with the grants docs/fleets.md
// lists.
func TestStopsConformanceAsAgentRole(t *testing.T) {
	storetest.RunStops(t, func(t *testing.T) (store.Store, storetest.Reopen) {
		dsn := asAgent(t)
		return open(t, dsn, nil), func(t *testing.T) store.Store { return open(t, dsn, nil) }
	})
}

// listeners returns the backends listening for the stops of dsn's schema.
func listeners(t *testing.T, dsn string) []int32 {
	t.Helper()
	u, _ := url.Parse(dsn)
	sum := md5.Sum([]byte(u.Query().Get("search_path")))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = 'keybrake stops' AND query = $1`,
		`LISTEN "keybrake_stops_`+hex.EncodeToString(sum[:])+`"`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// Streams of the stops a watch delivers.
func watch(t *testing.T, s *postgres.Store) <-chan []store.Stop {
	t.Helper()
	got := make(chan []store.Stop, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		s.WatchStops(ctx, func(st []store.Stop, err error) {
			if err == nil {
				got <- st
			}
		})
	}()
	return got
}

func await(t *testing.T, got <-chan []store.Stop, within time.Duration, ok func([]store.Stop) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case st := <-got:
			if ok(st) {
				return
			}
		case <-deadline:
			t.Fatalf("the watch saw no change within %v", within)
		}
	}
}

func halted(st []store.Stop) bool  { return len(st) == 1 && st[0].Kind == store.StopHalt }
func noStops(st []store.Stop) bool { return len(st) == 0 }
func stopsOf(n int) func([]store.Stop) bool {
	return func(st []store.Stop) bool { return len(st) == n }
}

// The LISTEN connection is killed: the change made meanwhile still
// arrives within the poll, and the watch listens again, so that the next
// change arrives by notification.
func TestWatchStopsListenerKilled(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a := open(t, dsn, nil)
	defer a.Close()
	b := open(t, dsn, nil) // the default poll: 1 s
	defer b.Close()
	got := watch(t, b)
	await(t, got, 5*time.Second, noStops)
	var pids []int32
	for deadline := time.Now().Add(5 * time.Second); len(pids) == 0; time.Sleep(10 * time.Millisecond) {
		if pids = listeners(t, dsn); len(pids) == 0 && time.Now().After(deadline) {
			t.Fatal("no backend listens for the schema's stops")
		}
	}
	testenv.PostgresExec(t, dsn, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, pids)
	start := time.Now()
	if _, _, err := a.SetStop(context.Background(), store.Stop{Kind: store.StopHalt, By: "test"}); err != nil {
		t.Fatal(err)
	}
	await(t, got, time.Second+500*time.Millisecond, halted)
	t.Logf("delivered %v after the listener was killed", time.Since(start))

	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if again := listeners(t, dsn); len(again) == 1 && again[0] != pids[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch did not listen again")
		}
	}
	// A poll of an hour now: only the notification is fast enough.
	c := open(t, dsn, &postgres.Options{StopsPoll: time.Hour})
	defer c.Close()
	gc := watch(t, c)
	await(t, gc, 5*time.Second, halted)
	for i, s := range []string{"refund-bot", "texter"} {
		if _, _, err := a.SetStop(context.Background(), store.Stop{Kind: store.StopRevoke, Subject: s, By: "test"}); err != nil {
			t.Fatal(err)
		}
		await(t, got, 500*time.Millisecond, stopsOf(2+i))
		await(t, gc, 500*time.Millisecond, stopsOf(2+i))
	}
}

// A watch whose reads fail says so once, and goes on when they work
// again; it ends when its Store is closed.
func TestWatchStopsReadFailsAndStoreCloses(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	a := open(t, dsn, nil)
	defer a.Close()
	b := open(t, dsn, &postgres.Options{StopsPoll: 100 * time.Millisecond})
	errs := make(chan error, 64)
	got := make(chan []store.Stop, 64)
	ended := make(chan error, 1)
	go func() {
		ended <- b.WatchStops(context.Background(), func(st []store.Stop, err error) {
			if err != nil {
				errs <- err
				return
			}
			got <- st
		})
	}()
	await(t, got, 5*time.Second, noStops)
	testenv.PostgresExec(t, dsn, `ALTER TABLE keybrake_stops RENAME TO keybrake_stops_away`)
	select {
	case <-errs:
	case <-time.After(5 * time.Second):
		t.Fatal("a failing read was not reported")
	}
	time.Sleep(500 * time.Millisecond) // several polls, all failing
	if n := len(errs); n != 0 {
		t.Errorf("%d more errors reported for one outage, want them reported once", n)
	}
	testenv.PostgresExec(t, dsn, `ALTER TABLE keybrake_stops_away RENAME TO keybrake_stops`)
	if _, _, err := a.SetStop(context.Background(), store.Stop{Kind: store.StopHalt, By: "test"}); err != nil {
		t.Fatal(err)
	}
	await(t, got, 5*time.Second, halted)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("WatchStops ended with %v, want store.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchStops did not end when its Store closed")
	}
}

// Stores in two schemas of one database do not see each other's stops,
// nor wake each other.
func TestStopsStayInTheirSchema(t *testing.T) {
	a := open(t, testenv.PostgresSchema(t), nil)
	defer a.Close()
	b := open(t, testenv.PostgresSchema(t), nil)
	defer b.Close()
	got := watch(t, b)
	await(t, got, 5*time.Second, noStops)
	if _, _, err := a.SetStop(context.Background(), store.Stop{Kind: store.StopHalt, By: "test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-got:
		t.Fatalf("the other schema's watch saw %+v", st)
	case <-time.After(1500 * time.Millisecond):
	}
	if st, err := b.ReadStops(context.Background()); err != nil || len(st) != 0 {
		t.Fatalf("the other schema reads %+v, %v", st, err)
	}
}
