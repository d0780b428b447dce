package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/internal/checked"
)

// SchemaVersion is the on-disk format this package writes. Open refuses a
// file written with a newer one. A read-write Open upgrades one written
// with version 3 (before rolling windows) by adding the windows bucket,
// one written with version 2 (records as JSON, each journal entry a whole
// record) in place, and one written with version 1 (before the audit
// chain) by journaling every record it holds; a read-only Open reads
// version 3 as it is and refuses 1 and 2.
const SchemaVersion = 4

// ErrSchema is returned by Open for a file this package cannot read: one
// written by a newer Keybrake, or a bbolt file that is not a Keybrake store.
var ErrSchema = errors.New("store/bolt: unsupported database schema")

// interrupted is appended to the Reason of a record found Reserved on Open.
const interrupted = "(interrupted: the process stopped before the response was recorded)"

// Queue sizes. A batch is every operation already queued when the writer
// starts a transaction, up to maxBatch; queueSize bounds how many callers
// wait without blocking on the channel.
const (
	queueSize = 256
	maxBatch  = 512
)

// Options configures Open. The zero value (and a nil *Options) means the
// defaults.
type Options struct {
	// LockTimeout bounds the wait for the file lock when another process
	// holds it; zero (or negative) means 1 second. On timeout Open returns
	// an error wrapping store.ErrLocked that names the path and says
	// another process (probably a running agent) holds it. A file this
	// process already holds read-write is refused at once, without a
	// wait, and the error says so.
	LockTimeout time.Duration

	// ReadOnly opens the file for reading only, as `keybrake audit
	// verify` does on a database no agent is using: reads and Verify
	// work, every write (Prune included) returns an error wrapping
	// store.ErrReadOnly, and Open neither creates the file nor recovers
	// records left Reserved. bbolt takes a shared lock, so a process
	// holding the file read-write makes Open wait LockTimeout and return
	// store.ErrLocked (at once when that process is this one), and a
	// read-write Open waits for the readers, this process's included.
	// A file of schema version 1 cannot be opened
	// read-only: it has no chain until a read-write Open adds it.
	ReadOnly bool

	// Now is the clock Prune uses to keep idempotency keys for at least
	// 24 hours whatever its cutoff; nil means time.Now.
	Now func() time.Time

	// Linger is how long the writer, holding only completions (Complete,
	// Resettle), waits for another operation to commit them with: an
	// agent's next call usually reserves a few hundred microseconds after
	// its last one completed, and then pays one fsync instead of queueing
	// behind the completion's. Zero means DefaultLinger; negative means
	// no wait. A completion is durable when Complete returns either way;
	// Linger only bounds how much later it may return.
	Linger time.Duration
}

// DefaultLinger is Options.Linger's zero value: long enough for a serial
// caller's next Reserve to arrive, short against the call it follows.
const DefaultLinger = time.Millisecond

// Store is a store.Store in one bbolt file. It is safe for concurrent use
// by any number of goroutines; one process at a time holds the file (bbolt
// takes an exclusive flock). Writes are serialised through one writer
// goroutine that commits every operation queued at the time in one fsync'd
// transaction (group commit). Reads run concurrently in read transactions.
//
// A Store must be created with Open and released with Close; there is no
// useful zero value.
type Store struct {
	db       *bbolt.DB
	held     *holder // this process's claim on the file, released by Close
	path     string
	readOnly bool
	now      func() time.Time
	linger   time.Duration // <= 0: none

	// pruneMu lets one Prune run at a time: its plan, made in a read
	// transaction, must not be taken apart by another Prune's.
	pruneMu sync.Mutex

	// mu guards closed and the sends on queue: Close takes it exclusively,
	// so once closed is set no send can be in progress or start, and queue
	// can be closed safely. Reads hold it shared for the length of their
	// read transaction, so Close waits for them.
	mu     sync.RWMutex
	closed bool
	// life ends when Close begins: Verify and Prune, which may run long,
	// stop at their next chunk, so that Close does not wait for them.
	life  context.Context
	end   context.CancelFunc
	queue chan *op
	done  chan struct{} // closed when the writer goroutine has returned
	fill  pageFill      // the writer goroutine's

	// For tests and benchmarks: transactions committed and operations
	// applied by the writer.
	commits atomic.Uint64
	applied atomic.Uint64
	// lingers counts the times the writer began to wait, holding only
	// completions.
	lingers atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database file at path (mode 0600, subject to the
// umask; an existing file keeps its mode). nil opts means defaults.
//
// Open waits at most Options.LockTimeout for the file lock and then returns
// an error wrapping store.ErrLocked. bbolt's lock belongs to an open file,
// not to the process, so a second Open in one process locks itself out:
// Open refuses a file this process already has open read-write (under any
// name: a relative path, a symlink) at once, with an error wrapping
// store.ErrLocked that says so. It returns an error wrapping ErrSchema
// for a file of a newer schema or one that is not a Keybrake store. Any
// record still Reserved in the file (the process stopped between Reserve and
// Complete) is turned Unknown, with its money still counted, before Open
// returns (not with Options.ReadOnly).
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	timeout := time.Second
	if o.LockTimeout > 0 {
		timeout = o.LockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	h, err := claim(path, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout, ReadOnly: o.ReadOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		err = lockedError(path, h, timeout)
		h.release()
		return nil, err
	}
	if err != nil {
		h.release()
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	h.opened()
	if o.ReadOnly {
		err = db.View(checkSchema)
	} else {
		err = db.Update(func(tx *bbolt.Tx) error {
			if err := initSchema(tx); err != nil {
				return err
			}
			return recoverReserved(tx)
		})
	}
	if err != nil {
		db.Close()
		h.release()
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	life, end := context.WithCancel(context.Background())
	s := &Store{
		life:     life,
		end:      end,
		db:       db,
		held:     h,
		path:     path,
		readOnly: o.ReadOnly,
		now:      o.Now,
		linger:   o.Linger,
		queue:    make(chan *op, queueSize),
		done:     make(chan struct{}),
	}
	if o.ReadOnly {
		close(s.done) // no writer
	} else {
		go s.run()
	}
	return s, nil
}

// checkSchema checks, without writing, that tx holds a Keybrake store of
// the current schema: what a read-only Open needs.
func checkSchema(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("%w: no meta bucket: not a Keybrake store", ErrSchema)
	}
	version, err := schemaVersion(meta)
	if err != nil {
		return err
	}
	switch version {
	case 1:
		return fmt.Errorf("%w: schema version 1 predates the audit chain; open the file read-write once (any Keybrake process does) to add it", ErrSchema)
	case 2:
		return fmt.Errorf("%w: schema version 2 is read by upgrading it; open the file read-write once (any Keybrake process does) to upgrade it to version %d", ErrSchema, SchemaVersion)
	case 3:
		// Version 4 only added what a schema-3 file has none of (window
		// entries, record fields): a reader needs no upgrade.
		return checkBuckets(tx, buckets4...)
	}
	return checkBuckets(tx)
}

func schemaVersion(meta *bbolt.Bucket) (uint64, error) {
	v := meta.Get(keySchema)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: schema version is %d bytes, want 8", ErrSchema, len(v))
	}
	switch version := binary.BigEndian.Uint64(v); {
	case version > SchemaVersion:
		return 0, fmt.Errorf("%w: the file has schema version %d, newer than %d; use the Keybrake that wrote it", ErrSchema, version, SchemaVersion)
	case version < 1:
		return 0, fmt.Errorf("%w: schema version %d is unknown", ErrSchema, version)
	default:
		return version, nil
	}
}

// checkBuckets checks that tx holds every bucket of the schema, less
// those the file's older version may lack.
func checkBuckets(tx *bbolt.Tx, lacking ...[]byte) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil && !slices.ContainsFunc(lacking, func(l []byte) bool { return bytes.Equal(l, name) }) {
			return corrupt("bucket %q is missing", name)
		}
	}
	return nil
}

// initSchema creates the buckets of a new file, or checks the schema of an
// existing one and upgrades it from an older version.
func initSchema(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		var foreign []string
		if err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			foreign = append(foreign, string(name))
			return nil
		}); err != nil {
			return err
		}
		if len(foreign) > 0 {
			return fmt.Errorf("%w: no meta bucket, but buckets %q: not a Keybrake store", ErrSchema, foreign)
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion))
	}
	version, err := schemaVersion(meta)
	if err != nil {
		return err
	}
	switch version {
	case 1:
		if err := upgradeFrom1(tx); err != nil {
			return fmt.Errorf("upgrading from schema version 1: %w", err)
		}
	case 2:
		if err := upgradeFrom2(tx); err != nil {
			return fmt.Errorf("upgrading from schema version 2: %w", err)
		}
	case 3:
		if err := upgradeFrom3(tx); err != nil {
			return fmt.Errorf("upgrading from schema version 3: %w", err)
		}
	}
	return checkBuckets(tx)
}

// recoverReserved turns every record left Reserved by a process that
// stopped between Reserve and Complete into Unknown. Nobody can tell whether
// the vendor acted, so the money stays counted, as unknown.
func recoverReserved(tx *bbolt.Tx) error {
	pending := tx.Bucket(bucketPending)
	var ids []uint64
	if err := pending.ForEach(func(k, _ []byte) error {
		if len(k) != 8 {
			return corrupt("pending key is %d bytes", len(k))
		}
		ids = append(ids, binary.BigEndian.Uint64(k))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		r, err := getRecord(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return corrupt("pending record %d is missing", id)
		}
		if err != nil {
			return err
		}
		if r.Outcome != audit.Reserved {
			return corrupt("pending record %d is %q", id, r.Outcome)
		}
		r.Outcome = audit.Unknown
		if err := moveHolds(tx, r, r.Holds, func(c *store.Counter, h audit.Hold) bool {
			var ok bool
			if c.Pending, ok = checked.Sub(c.Pending, h.Amount); !ok {
				return false
			}
			c.Unknown, ok = checked.Add(c.Unknown, h.Amount)
			return ok
		}); err != nil {
			return fmt.Errorf("recovering record %d: %w", id, err)
		}
		if r.Reason == "" {
			r.Reason = interrupted
		} else {
			r.Reason = strings.TrimRight(r.Reason, " ") + " " + interrupted
		}
		if err := putRecord(tx, r); err != nil {
			return err
		}
		if err := pending.Delete(u64(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketUnknown).Put(u64(id), nil); err != nil {
			return err
		}
	}
	return nil
}

// Close stops accepting operations, finishes those already queued, stops
// the writer goroutine, waits for reads in progress and closes the file.
// After Close every method, Close included, returns store.ErrClosed.
func (s *Store) Close() error {
	s.end()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	err := s.db.Close()
	s.held.release() // bbolt let go of the file, even on error
	if err != nil {
		return fmt.Errorf("store/bolt: close %s: %w", s.path, err)
	}
	return nil
}

// untilClose returns ctx, ended also when Close begins, for the reads and
// writes (Verify, Prune) that check their context between chunks.
func (s *Store) untilClose(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// closedErr says store.ErrClosed for an operation Close ended.
func (s *Store) closedErr(err error) error {
	if errors.Is(err, context.Canceled) && s.life.Err() != nil {
		return fmt.Errorf("%w (while it ran)", store.ErrClosed)
	}
	return err
}

// view runs fn in a read transaction unless ctx has ended or the store is
// closed.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return s.db.View(fn)
}
