package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybrake/keybrake/store"
)

// Sentinel errors of this package.
var (
	// ErrSchema is returned by Open for a database this package cannot
	// use: one migrated by a newer Keybrake, or a search_path with no
	// schema in it.
	ErrSchema = errors.New("store/postgres: unsupported database schema")
	// ErrInvalid is wrapped by the errors of calls whose arguments the
	// store refuses; nothing is written.
	ErrInvalid = errors.New("store/postgres: invalid argument")
	// ErrUnavailable is wrapped by Open's error when PostgreSQL cannot be
	// reached or refuses the connection; the error names the host, port,
	// database and user, never the password.
	ErrUnavailable = errors.New("store/postgres: database unavailable")
)

// errCorrupt marks data that breaks the store's own invariants.
var errCorrupt = errors.New("store/postgres: corrupt data")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// errRetry asks the transaction loop to run the transaction again: it saw
// a state another transaction was changing (a counter pruned under it).
var errRetry = errors.New("store/postgres: retry")

// errSessionGone: this Store's session was closed under it (its heartbeat
// expired and another process recovered its reservations). The
// transaction loop opens a new session and runs the transaction again.
var errSessionGone = errors.New("store/postgres: session expired")

// SchemaVersion is the newest migration this package has. Open applies
// the missing ones and refuses a database migrated further.
var SchemaVersion = len(mustMigrations())

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func mustMigrations() []migration {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return ms
}

// migrations reads migrations/NNNN_name.sql, numbered 1, 2, 3 ... with no
// gap.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []migration
	for i, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("store/postgres: migration %s is out of sequence", base)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{v, base, string(b)})
	}
	return out, nil
}

// Defaults of Options.
const (
	DefaultHeartbeat      = time.Second
	DefaultSessionTimeout = 15 * time.Second
	DefaultCommitTimeout  = 10 * time.Second
)

// Options configures Open. The zero value (and a nil *Options) means the
// defaults.
type Options struct {
	// Heartbeat is how often the Store marks its session alive and looks
	// for expired sessions of other processes to recover; zero means
	// DefaultHeartbeat (1 second).
	Heartbeat time.Duration

	// SessionTimeout is how long this Store's session may go without a
	// heartbeat before another process declares it dead: it turns the
	// session's Reserved records Unknown (their money still counted) and
	// closes the session. Zero means DefaultSessionTimeout (15 seconds).
	// The timeout is written in the session's row, so each process is
	// judged by its own setting, against the database's clock. A Store
	// whose session expired while it was alive (a pause longer than the
	// timeout, the database unreachable) opens a new session on its next
	// write; its own calls in flight then find their records Unknown and
	// Complete returns store.ErrNotReserved: the money stays counted.
	SessionTimeout time.Duration

	// MaxConns bounds the pool; zero means pgxpool's default (the larger
	// of 4 and the number of CPUs) or pool_max_conns in the DSN.
	MaxConns int32

	// CommitTimeout bounds the wait for a COMMIT, which runs without the
	// caller's context so that a reservation the database committed is
	// never reported as failed because the caller gave up in the last
	// round trip. Zero means DefaultCommitTimeout (10 seconds).
	CommitTimeout time.Duration

	// Now is the clock Prune uses to keep idempotency keys for 24 hours,
	// and the time of a fleet stop set with none; nil means time.Now.
	// Heartbeats and expiry use the database's clock.
	Now func() time.Time

	// StopsPoll is how often WatchStops reads the fleet's stops whatever
	// its notifications say: the backstop when the LISTEN connection is
	// lost. Zero means DefaultStopsPoll (1 second).
	StopsPoll time.Duration

	// NoListen turns LISTEN/NOTIFY off for WatchStops, which then learns
	// of stops by the poll alone: for a connection pooler that cannot
	// hold a LISTEN (PgBouncer in transaction mode).
	NoListen bool
}

// Store is a store.Store in a PostgreSQL database, shared by any number of
// processes. It is safe for concurrent use. Each Store holds one session
// (see doc.go) from Open to Close. There is no useful zero value.
type Store struct {
	pool     *pgxpool.Pool
	where    string // host, port, database, user: for errors
	password string // scrubbed from every error
	opts     Options
	now      func() time.Time

	session atomic.Int64
	batch   *batcher   // group commit of Reserve, Complete and Append (batch.go)
	facts   factCache  // facts read or written once (facts.go)
	renewMu sync.Mutex // one renewal of an expired session at a time

	mu     sync.Mutex
	closed bool
	ops    sync.WaitGroup

	stop chan struct{}
	done chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn names (a postgres:// URL or key=value
// string, as pgx parses it; TLS and timeouts as the DSN says), applies the
// missing migrations under an advisory lock, starts a session and recovers
// the reservations of sessions whose heartbeat expired. nil opts means the
// defaults. ctx bounds the connection and the migration.
//
// When PostgreSQL cannot be reached Open returns an error wrapping
// ErrUnavailable that names the host, port, database and user; the
// password never appears in an error of this package.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	password := dsnPassword(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, scrub(fmt.Errorf("store/postgres: the database DSN does not parse: %w", err), password)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if cfg.ConnConfig.Password != "" {
		password = cfg.ConnConfig.Password
	}
	cc := cfg.ConnConfig
	where := fmt.Sprintf("host %s port %d database %q user %q", cc.Host, cc.Port, cc.Database, cc.User)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("%w: %s: %w", ErrUnavailable, where, err), password)
	}
	s := &Store{pool: pool, where: where, password: password, opts: o, now: o.Now,
		batch: newBatcher(), stop: make(chan struct{}), done: make(chan struct{})}
	fail := func(err error) (*Store, error) {
		pool.Close()
		return nil, s.scrub(err)
	}
	if err := pool.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("store/postgres: connecting to %s: %w", where, err))
		}
		return fail(fmt.Errorf("%w: cannot connect to %s: %w", ErrUnavailable, where, err))
	}
	if err := s.migrate(ctx); err != nil {
		return fail(err)
	}
	id, err := s.newSession(ctx)
	if err != nil {
		return fail(err)
	}
	s.session.Store(id)
	if err := s.recoverExpired(ctx); err != nil {
		return fail(err)
	}
	go s.heartbeat()
	return s, nil
}

// dsnPassword finds the password in a DSN that may not parse, so that no
// error can show it.
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			return p
		}
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// scrubbedError is an error whose message had the password removed; it
// still unwraps to the original, for errors.Is.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrub(err error, password string) error {
	if err == nil || password == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, password) && !strings.Contains(msg, url.QueryEscape(password)) {
		return err
	}
	msg = strings.ReplaceAll(msg, password, "xxxxx")
	msg = strings.ReplaceAll(msg, url.QueryEscape(password), "xxxxx")
	return &scrubbedError{msg, err}
}

func (s *Store) scrub(err error) error { return scrub(err, s.password) }

// lockKey is the advisory lock of one purpose in the current schema:
// stores in different schemas of one database do not wait on each other.
const lockKey = `hashtextextended('keybrake/' || $1 || '/' || current_schema(), 0)`

// migrate applies the missing migrations in one transaction that holds an
// advisory lock, so two processes starting together migrate once.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", s.where, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("store/postgres: %s: %w", s.where, err)
	}
	if schema == nil {
		return fmt.Errorf("%w: no schema of the search_path exists in %s; create one or set search_path", ErrSchema, s.where)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+lockKey+`)`, "migrate"); err != nil {
		return fmt.Errorf("store/postgres: waiting for the migration lock: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('keybrake_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE TABLE keybrake_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("store/postgres: creating keybrake_migrations in schema %s: %w", *schema, err)
		}
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM keybrake_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(ms) {
		return fmt.Errorf("%w: schema %s of %s is at version %d, newer than version %d this Keybrake knows; use the Keybrake that migrated it",
			ErrSchema, *schema, s.where, have, len(ms))
	}
	if have == len(ms) {
		return tx.Commit(ctx)
	}
	for _, m := range ms[have:] {
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("store/postgres: migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO keybrake_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// newSession numbers a new session from the meta row, so that session
// numbers have no gap and a session removed behind the store's back shows.
func (s *Store) newSession(ctx context.Context) (int64, error) {
	host, _ := os.Hostname()
	var id int64
	err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		if err := tx.QueryRow(ctx, `UPDATE keybrake_meta SET last_session = last_session + 1 RETURNING last_session`).Scan(&id); err != nil {
			return false, err
		}
		_, err := tx.Exec(ctx, `INSERT INTO keybrake_sessions (id, host, pid, ttl) VALUES ($1, $2, $3, $4)`,
			id, host, os.Getpid(), s.opts.SessionTimeout)
		return true, err
	})
	if err != nil {
		return 0, fmt.Errorf("store/postgres: starting a session in %s: %w", s.where, err)
	}
	return id, nil
}

// renew replaces a session that expired under this Store.
func (s *Store) renew(ctx context.Context, gone int64) error {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	if s.session.Load() != gone {
		return nil
	}
	id, err := s.newSession(ctx)
	if err != nil {
		return err
	}
	s.session.Store(id)
	return nil
}

// heartbeat keeps the session alive and recovers expired ones until Close.
func (s *Store) heartbeat() {
	defer close(s.done)
	t := time.NewTicker(s.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.SessionTimeout)
		id := s.session.Load()
		tag, err := s.pool.Exec(ctx, `UPDATE keybrake_sessions SET heartbeat = now() WHERE id = $1 AND closed IS NULL`, id)
		if err == nil && tag.RowsAffected() == 0 {
			err = s.renew(ctx, id)
		}
		if err == nil {
			// Errors here are retried on the next beat; a write that
			// needs the database sees its own error.
			_ = s.recoverExpired(ctx)
		}
		cancel()
	}
}

// enter admits a call, or says why not; leave must follow.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.ops.Add(1)
	return nil
}

func (s *Store) leave() { s.ops.Done() }

// Close waits for the calls in progress, stops the heartbeat, turns the
// session's records still Reserved into Unknown (their calls can no
// longer complete through this Store), closes the session and the pool.
// After Close every method, Close included, returns store.ErrClosed. If
// the database cannot be reached, the session is left to expire and
// another process recovers it.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.ops.Wait()
	close(s.stop)
	<-s.done
	defer s.pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()
	id := s.session.Load()
	err := s.run(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		var open bool
		err := tx.QueryRow(ctx, `SELECT closed IS NULL FROM keybrake_sessions WHERE id = $1 FOR UPDATE`, id).Scan(&open)
		if err != nil || !open {
			return false, err // expired and recovered by another: nothing left
		}
		if err := s.recoverSession(ctx, tx, id, id); err != nil {
			return false, err
		}
		_, err = tx.Exec(ctx, `UPDATE keybrake_sessions SET closed = now(), closed_by = $1 WHERE id = $1`, id)
		return true, err
	})
	if err != nil {
		return s.scrub(fmt.Errorf("store/postgres: closing session %d in %s: %w", id, s.where, err))
	}
	return nil
}

// retryable reports whether err means the transaction rolled back and may
// simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return errors.Is(err, errRetry)
}

const maxAttempts = 20

// run runs fn in a READ COMMITTED transaction and commits it when fn
// reports commit true; false rolls back (a refusal writes nothing). A
// serialization failure or deadlock runs fn again after a jittered,
// growing pause (at most maxAttempts times); so does a session that
// expired under the Store, in a new session. fn must therefore set every
// result on each run. COMMIT runs without ctx's cancellation, bounded by
// Options.CommitTimeout: a reservation PostgreSQL committed is never
// reported as failed because the caller gave up in the last round trip.
func (s *Store) run(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) (commit bool, err error)) error {
	pause := time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.once(ctx, fn)
		if err == nil {
			return nil
		}
		if errors.Is(err, errSessionGone) && attempt < maxAttempts {
			if err := s.renew(ctx, s.session.Load()); err != nil {
				return err
			}
			continue
		}
		if !retryable(err) || attempt == maxAttempts {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				return fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
			return err
		}
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

func (s *Store) once(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) (bool, error)) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	commit, err := fn(ctx, tx)
	if err != nil || !commit {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CommitTimeout)
	defer cancel()
	return tx.Commit(cctx)
}
