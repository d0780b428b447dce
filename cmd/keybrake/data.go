package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// The audit and status commands read a live Keybrake. bbolt locks the
// database file in the agent's process, so they ask the agent's Brake on
// its socket, <db>.sock, when one answers, and otherwise open the file
// read-only (a shared lock: an agent starting meanwhile waits for it).

// lockWait bounds the wait for the database file when another process
// holds it: long enough for an agent that is closing to let go, short
// enough that a running agent's lock is reported at once.
const lockWait = 500 * time.Millisecond

// source is where a command's data comes from, and how to say so.
type source struct {
	admin.Source
	where string
	live  bool // the agent's Brake answers
}

// withSource runs fn against the agent's Brake when one answers on
// db+".sock", else against db opened read-only, with state saying what is
// in force (nil: nothing; only status needs it). fn must not have written
// anything before an error wrapping admin.ErrNoServer, which the socket
// gives only when connecting.
func withSource(db string, state func() admin.State, fn func(src source) error) error {
	if isDatabaseURL(db) {
		return withShared(db, state, fn)
	}
	sock := db + ".sock"
	sockState := "there is no " + sock
	if _, err := os.Lstat(sock); err == nil {
		err := fn(source{Source: admin.Dial(sock), where: "the agent's Brake on " + sock, live: true})
		if !errors.Is(err, admin.ErrNoServer) {
			return err
		}
		sockState = "nothing answers on " + sock + " (left by an agent that stopped?)"
	}
	st, err := openFile(db, sockState)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(source{Source: &admin.Local{Store: st, State: state}, where: db + " (read-only; " + sockState + ")"})
}

// openFile opens the database read-only, explaining the usual failures.
func openFile(db, sockState string) (*bolt.Store, error) {
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no database at %s, and %s\n  (set --db or $KEYBRAKE_DB to the agent's database file)", db, sockState)
	}
	st, err := bolt.Open(db, &bolt.Options{ReadOnly: true, LockTimeout: lockWait})
	if errors.Is(err, store.ErrLocked) {
		return nil, &lockedError{db: db, sockState: sockState}
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// lockedError is a database another process holds while no Brake
// answers. It wraps store.ErrLocked.
type lockedError struct{ db, sockState string }

func (e *lockedError) Error() string {
	return fmt.Sprintf("%s is locked by another process (probably the running agent), and %s.\n"+
		"  A running agent's Brake answers on %s.sock unless its admin socket was turned off:\n"+
		"  turn it on and restart the agent, or stop the agent to read the file", e.db, e.sockState, e.db)
}

func (e *lockedError) Unwrap() error { return store.ErrLocked }

// fileQuerier reads the database file, opening it read-only for each
// query and closing it before passing records on, so that an agent
// starting meanwhile gets its lock: what --follow polls when no agent runs.
type fileQuerier struct{ db string }

func (f fileQuerier) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	st, err := openFile(f.db, "no agent answered on "+f.db+".sock")
	if err != nil {
		return err
	}
	var recs []*audit.Record
	err = st.Query(ctx, q, func(r *audit.Record) error {
		recs = append(recs, r)
		return nil
	})
	st.Close()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// follow passes on the records q selects and then new ones as they appear,
// once each, until ctx ends (nil), q.Until has passed, q.Limit records were
// passed on, or it fails. It follows the agent's Brake when one answers and
// polls the file every second otherwise, and moves between them when the
// agent stops or starts, telling note.
func follow(ctx context.Context, db string, q audit.Query, note func(string), fn func(*audit.Record) error) error {
	if isDatabaseURL(db) {
		return followShared(ctx, db, q, fn)
	}
	sock := db + ".sock"
	limit := q.Limit
	q.Limit = 0
	var last uint64 // the last record passed on, whichever source
	sent := 0
	errDone := errors.New("done")
	pass := func(r *audit.Record) error {
		if r.ID <= last {
			return nil // a source taken over never repeats, but be sure
		}
		last = r.ID
		if err := fn(r); err != nil {
			return err
		}
		if sent++; limit > 0 && sent >= limit {
			return errDone
		}
		return nil
	}
	finished := func(err error) bool { return err == nil || errors.Is(err, errDone) || ctx.Err() != nil }
	result := func(err error) error {
		if errors.Is(err, errDone) || ctx.Err() != nil {
			return nil
		}
		return err
	}
	// A source taken over goes on after the last record passed on.
	resume := func() { q = admin.Resume(q, last) }
	followed := false // some source answered: a switch is worth a note
	file := admin.QueryFunc(func(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
		err := fileQuerier{db}.Query(ctx, q, fn)
		if err == nil {
			followed = true
		}
		return err
	})
	for stuck := 0; ; {
		err := admin.Dial(sock).Audit(ctx, q, true, pass)
		if !errors.Is(err, admin.ErrNoServer) {
			if finished(err) {
				return result(err)
			}
			stuck, followed = 0, true
			note(fmt.Sprintf("%v; following the file %s", err, db))
			resume()
		}
		err = admin.Follow(ctx, file, q, time.Second, pass)
		if finished(err) || !errors.Is(err, store.ErrLocked) {
			return result(err)
		}
		// An agent holds the file: its Brake should answer soon (it
		// opens the database before it serves the socket), unless it
		// serves none.
		if stuck++; stuck > 1 {
			return err
		}
		if followed {
			note("the database is locked (an agent started?); trying its Brake on " + sock)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		resume()
	}
}
