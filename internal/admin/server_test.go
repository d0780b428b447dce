package admin_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// serve serves h on a socket beside the fixture's database.
func serve(t *testing.T, path string, h http.Handler) *admin.Server {
	t.Helper()
	srv, err := admin.Serve(path, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func collect(t *testing.T, c *admin.Client, q audit.Query) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	if err := c.Audit(context.Background(), q, false, func(r *audit.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestServeAndDial(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	src := f.local(false, "refund-bot")
	sock := f.path + ".sock"
	srv := serve(t, sock, admin.Handler(src))

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v: %v", fi.Mode(), err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(sock), ".kb*")); len(leftovers) != 0 {
		t.Errorf("Serve left %v behind", leftovers)
	}
	c := admin.Dial(sock)
	if c.Path() != sock || srv.Path() != sock {
		t.Errorf("paths %q %q", c.Path(), srv.Path())
	}

	// The records are the store's, field for field.
	var want []*audit.Record
	f.s.Query(context.Background(), audit.Query{Agent: "refund-bot"}, func(r *audit.Record) error { want = append(want, r); return nil })
	got := collect(t, c, audit.Query{Agent: "refund-bot"})
	if len(want) != 6 || !reflect.DeepEqual(jsonOf(t, got), jsonOf(t, want)) {
		t.Errorf("records over the socket:\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
	}

	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	local, _ := src.Status(context.Background())
	st.Time, local.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(st, local) {
		t.Errorf("status over the socket:\n%+v\nwant\n%+v", st, local)
	}

	rep, err := c.Verify(context.Background())
	wantRep, _ := f.s.Verify(context.Background())
	if err != nil || rep != wantRep {
		t.Errorf("Verify = %+v, %v; want %+v", rep, err, wantRep)
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, admin.ErrNoServer) {
		t.Errorf("after Close: %v", err)
	}
}

func jsonOf(t *testing.T, recs []*audit.Record) string {
	t.Helper()
	var b strings.Builder
	jl := audit.NewJSONLines(&b)
	for _, r := range recs {
		if err := jl.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	jl.Flush()
	return b.String()
}

func TestVerifyChainErrorOverTheSocket(t *testing.T) {
	s, rec := tampered(t)
	sock := filepath.Join(t.TempDir(), "db.sock")
	serve(t, sock, admin.Handler(&admin.Local{Store: s}))
	_, err := admin.Dial(sock).Verify(context.Background())
	_, lerr := s.Verify(context.Background())
	var ce, lce *store.ChainError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrChainBroken) || !errors.As(lerr, &lce) {
		t.Fatalf("Verify = %v; want a *store.ChainError", err)
	}
	if *ce != *lce || ce.Record != rec || ce.Problem != store.ChainAltered {
		t.Errorf("chain error %+v, want %+v", *ce, *lce)
	}
}

func TestServeUnderAnOpenUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	sock := filepath.Join(t.TempDir(), "db.sock")
	serve(t, sock, http.NotFoundHandler())
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v: %v", fi.Mode(), err)
	}
}

func TestServeRefuses(t *testing.T) {
	dir := t.TempDir()

	// A regular file is never removed.
	file := filepath.Join(dir, "file.sock")
	os.WriteFile(file, []byte("precious"), 0o600)
	if _, err := admin.Serve(file, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Serve over a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("the file was changed: %q", b)
	}
	// Nor a directory.
	if _, err := admin.Serve(dir, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Serve over a directory: %v", err)
	}

	// A live server is left alone.
	live := filepath.Join(dir, "live.sock")
	serve(t, live, http.NotFoundHandler())
	if _, err := admin.Serve(live, http.NotFoundHandler()); !errors.Is(err, admin.ErrInUse) {
		t.Errorf("Serve over a live server: %v", err)
	}

	// A socket too long for the system is refused with its path.
	long := filepath.Join(dir, strings.Repeat("x", 120)+".sock")
	if _, err := admin.Serve(long, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), long) {
		t.Errorf("Serve on a long path: %v", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".kb*")); len(leftovers) != 0 {
		t.Errorf("Serve left %v behind", leftovers)
	}
}

// staleSocket leaves a socket nobody listens on, as an agent killed with
// SIGKILL does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("no stale socket: %v", err)
	}
}

func TestServeReplacesAStaleSocket(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	sock := f.path + ".sock"
	staleSocket(t, sock)

	start := time.Now()
	_, err := admin.Dial(sock).Status(context.Background())
	if !errors.Is(err, admin.ErrNoServer) || time.Since(start) > time.Second {
		t.Fatalf("a stale socket: %v after %v", err, time.Since(start))
	}
	serve(t, sock, admin.Handler(f.local(false)))
	if got := collect(t, admin.Dial(sock), audit.Query{}); len(got) != 6 {
		t.Errorf("%d records", len(got))
	}
}

func TestCloseLeavesAnotherSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "db.sock")
	srv, err := admin.Serve(sock, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	// Someone moved ours away and put another in its place.
	os.Rename(sock, filepath.Join(dir, "moved.sock"))
	staleSocket(t, sock)
	theirs, _ := os.Lstat(sock)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(sock); err != nil || !os.SameFile(fi, theirs) {
		t.Errorf("Close removed a socket it did not make: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNoServer(t *testing.T) {
	c := admin.Dial(filepath.Join(t.TempDir(), "nothing.sock"))
	if _, err := c.Status(context.Background()); !errors.Is(err, admin.ErrNoServer) {
		t.Errorf("Status: %v", err)
	}
	if _, err := c.Verify(context.Background()); !errors.Is(err, admin.ErrNoServer) {
		t.Errorf("Verify: %v", err)
	}
	err := c.Audit(context.Background(), audit.Query{}, true, func(*audit.Record) error { return nil })
	if !errors.Is(err, admin.ErrNoServer) || !strings.Contains(err.Error(), "nothing.sock") {
		t.Errorf("Audit: %v", err)
	}
}

func TestStuckServer(t *testing.T) {
	// A server that accepts and never answers.
	sock := filepath.Join(t.TempDir(), "stuck.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := admin.Dial(sock)
	admin.SetHeaderTimeout(c, 100*time.Millisecond)
	start := time.Now()
	_, err = c.Status(context.Background())
	if err == nil || errors.Is(err, admin.ErrNoServer) || !strings.Contains(err.Error(), "did not answer within 100ms") {
		t.Errorf("Status of a stuck server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// watched signals when its handler returns.
type watched struct {
	h       http.Handler
	running atomic.Int32
	done    chan string
}

func (w *watched) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.running.Add(1)
	defer func() {
		w.running.Add(-1)
		w.done <- r.URL.Path
	}()
	w.h.ServeHTTP(rw, r)
}

func TestFollowOverTheSocket(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	h := &watched{h: admin.Handler(f.local(false)), done: make(chan string, 10)}
	sock := f.path + ".sock"
	serve(t, sock, h)
	c := admin.Dial(sock)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan *audit.Record, 100)
	ended := make(chan error, 1)
	go func() {
		ended <- c.Audit(ctx, audit.Query{Agent: "refund-bot", Since: f.now.Add(-time.Minute)}, true, func(r *audit.Record) error {
			got <- r
			return nil
		})
	}()
	inFlight := 0 // record 4, still reserved: passed on once, after SettleWait
	next := func(what string) *audit.Record {
		t.Helper()
		for {
			select {
			case r := <-got:
				if r.ID == 4 {
					if inFlight++; r.Outcome != audit.Reserved || inFlight > 1 {
						t.Errorf("record 4 came %d times, the last %s", inFlight, r.Outcome)
					}
					continue
				}
				return r
			case err := <-ended:
				t.Fatalf("%s: the follow ended: %v", what, err)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: nothing within 5s", what)
			}
		}
	}
	// The backlog comes first, in the order written: the call in flight
	// (record 4) after SettleWait, as still reserved, and the records
	// written after it behind it.
	last := uint64(0)
	for range 5 {
		r := next("backlog")
		if r.Outcome == audit.Reserved {
			t.Errorf("record %d came still reserved", r.ID)
		}
		if r.ID <= last || (r.ID > 4 && inFlight != 1) {
			t.Errorf("record %d came after %d, with record 4 passed %d times", r.ID, last, inFlight)
		}
		last = r.ID
	}

	// A record appended after the request started streams.
	id := f.refuse(time.Second, "refund-bot", policy.Revoked)
	if r := next("refusal"); r.ID != id || r.Decision != policy.Revoked {
		t.Errorf("got record %d %s, want the refusal %d", r.ID, r.Decision, id)
	}
	// Another agent's does not.
	f.refuse(time.Second, "other-bot", policy.Revoked)

	// A call reserved and settled quickly is streamed once, settled.
	a, err := f.s.Reserve(context.Background(), &store.Reservation{Record: f.call(time.Second, usd("1.00")), Holds: f.holds(usd("1.00"))})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * admin.FollowInterval)
	if err := f.s.Complete(context.Background(), &store.Completion{ID: a.ID, Outcome: audit.Settled,
		Settled: []int64{usd("1.00").Micros, usd("1.00").Micros, 1}, Moved: usd("1.00"), Status: 200}); err != nil {
		t.Fatal(err)
	}
	if r := next("settled call"); r.ID != a.ID || r.Outcome != audit.Settled || r.Settled != usd("1.00") {
		t.Fatalf("got record %d %s %v, want %d settled", r.ID, r.Outcome, r.Settled, a.ID)
	}
	if inFlight == 0 {
		select {
		case r := <-got:
			if inFlight++; r.ID != 4 || r.Outcome != audit.Reserved {
				t.Errorf("got record %d %s, want the call in flight, 4, reserved", r.ID, r.Outcome)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the call in flight never came")
		}
	}
	select {
	case r := <-got:
		t.Errorf("unexpected record %d %s", r.ID, r.Outcome)
	case <-time.After(3 * admin.FollowInterval):
	}

	// The client goes: the server's follow ends.
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("Audit after cancel: %v", err)
	}
	select {
	case p := <-h.done:
		if p != "/audit" {
			t.Errorf("handler %s ended", p)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the follow handler still runs after the client went")
	}
}

func TestCloseEndsFollow(t *testing.T) {
	f := newFixture(t)
	sock := f.path + ".sock"
	h := &watched{h: admin.Handler(f.local(false)), done: make(chan string, 10)}
	srv := serve(t, sock, h)
	ended := make(chan error, 1)
	go func() {
		ended <- admin.Dial(sock).Audit(context.Background(), audit.Query{}, true, func(*audit.Record) error { return nil })
	}()
	for h.running.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if h.running.Load() != 0 {
		t.Error("Close returned with a handler running")
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Error("a follow cut by Close ended without an error: a short answer taken for a whole one")
		}
		t.Logf("follow ended: %v (Close took %v)", err, time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("the client's follow did not end")
	}
}

func TestAbortedStreamIsAnError(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "db.sock")
	serve(t, sock, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Write([]byte(`{"id":1,"time":"2026-01-02T03:04:05Z","agent":"a","vendor":"stripe","method":"POST","path":"/v1/refunds","decision":"allowed","rule":"","reason":"","status":200,"amount":"0","reserved":"0","settled":"0","outcome":"none","duration_ms":0,"policy":""}` + "\n"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the process died mid-stream
	}))
	n := 0
	err := admin.Dial(sock).Audit(context.Background(), audit.Query{}, false, func(*audit.Record) error { n++; return nil })
	if err == nil || n != 1 {
		t.Errorf("aborted stream: %d records, %v", n, err)
	}
}

// The records' money survives the socket exactly.
func TestMoneyOverTheSocket(t *testing.T) {
	f := newFixture(t)
	price, _ := money.ParsePrice("0.0079 USD")
	f.reserve(0, price, price, audit.Settled)
	sock := f.path + ".sock"
	serve(t, sock, admin.Handler(f.local(false)))
	got := collect(t, admin.Dial(sock), audit.Query{})
	if len(got) != 1 || got[0].Settled != price || got[0].Amount != price {
		t.Errorf("got %+v", got)
	}
}

// slow is a Source whose Query takes a while to find its first record.
type slow struct {
	admin.Source
	delay time.Duration
}

func (s slow) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	time.Sleep(s.delay)
	return s.Source.Query(ctx, q, fn)
}

func TestSlowQueryIsNotAStuckServer(t *testing.T) {
	f := newFixture(t)
	writeDay(f)
	sock := f.path + ".sock"
	serve(t, sock, admin.Handler(slow{Source: f.local(false), delay: 300 * time.Millisecond}))
	c := admin.Dial(sock)
	admin.SetHeaderTimeout(c, 100*time.Millisecond)
	n := 0
	if err := c.Audit(context.Background(), audit.Query{}, false, func(*audit.Record) error { n++; return nil }); err != nil || n != 6 {
		t.Errorf("a query slower than the header timeout: %d records, %v", n, err)
	}
}
