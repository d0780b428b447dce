package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// Fleet stops (store.Stops): see doc.go. A change is one transaction that
// writes or deletes the stop's row, appends its audit record to this
// Store's chain and calls pg_notify, so the notification leaves at commit
// and never announces what rolled back.

var _ store.Stops = (*Store)(nil)

// DefaultStopsPoll is how often WatchStops reads the stops whatever the
// notifications say, when Options.StopsPoll is zero.
const DefaultStopsPoll = time.Second

// stopsChannel is the notification channel of the current schema: stores
// in different schemas of one database do not wake each other. md5 keeps
// it within the 63 bytes of an identifier whatever the schema's name.
const stopsChannel = `'keybrake_stops_' || md5(current_schema())`

func (s *Store) stopsPoll() time.Duration {
	if s.opts.StopsPoll > 0 {
		return s.opts.StopsPoll
	}
	return DefaultStopsPoll
}

func checkStop(st store.Stop, set bool) error {
	switch st.Kind {
	case store.StopHalt:
	case store.StopRevoke, store.StopKey:
		if st.Subject == "" {
			return invalid("a %s stop names no subject", st.Kind)
		}
	default:
		return invalid("unknown kind of stop %q", st.Kind)
	}
	if st.By == "" {
		return invalid("the %s stop of %q does not say who made it", st.Kind, st.Subject)
	}
	if set && len(st.Subject) > maxKeyLen {
		return invalid("a stop's subject of %d bytes; at most %d", len(st.Subject), maxKeyLen)
	}
	if strings.ContainsRune(st.Subject+st.By+st.Reason, 0) {
		return invalid("the %s stop of %q holds a NUL character", st.Kind, st.Subject)
	}
	return nil
}

// SetStop implements store.Stops.
func (s *Store) SetStop(ctx context.Context, st store.Stop) (store.Stop, bool, error) {
	if err := checkStop(st, true); err != nil {
		return store.Stop{}, false, err
	}
	if st.Time.IsZero() {
		st.Time = s.now()
	}
	st.Time = time.Unix(0, timeNS(st.Time)).UTC()
	var (
		inForce store.Stop
		changed bool
	)
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		inForce, changed = st, false
		var id int64
		if err := tx.QueryRow(ctx, `SELECT nextval('keybrake_record_ids')`).Scan(&id); err != nil {
			return false, err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO keybrake_stops (kind, subject, source, reason, time_ns, record_id)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			string(st.Kind), st.Subject, st.By, st.Reason, timeNS(st.Time), id)
		if err != nil {
			return false, err
		}
		if tag.RowsAffected() == 0 {
			var ns int64
			err := tx.QueryRow(ctx, `SELECT source, reason, time_ns FROM keybrake_stops WHERE kind = $1 AND subject = $2`,
				string(st.Kind), st.Subject).Scan(&inForce.By, &inForce.Reason, &ns)
			if errors.Is(err, pgx.ErrNoRows) {
				return false, errRetry // lifted meanwhile
			}
			inForce.Time = time.Unix(0, ns).UTC()
			return false, err
		}
		changed = true
		return true, s.auditStop(ctx, tx, id, st, true)
	})
	if err != nil {
		return store.Stop{}, false, err
	}
	return inForce, changed, nil
}

// ClearStop implements store.Stops.
func (s *Store) ClearStop(ctx context.Context, st store.Stop) (bool, error) {
	if err := checkStop(st, false); err != nil {
		return false, err
	}
	if st.Time.IsZero() {
		st.Time = s.now()
	}
	var changed bool
	err := s.write(ctx, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		changed = false
		tag, err := tx.Exec(ctx, `DELETE FROM keybrake_stops WHERE kind = $1 AND subject = $2`, string(st.Kind), st.Subject)
		if err != nil || tag.RowsAffected() == 0 {
			return false, err
		}
		var id int64
		if err := tx.QueryRow(ctx, `SELECT nextval('keybrake_record_ids')`).Scan(&id); err != nil {
			return false, err
		}
		changed = true
		return true, s.auditStop(ctx, tx, id, st, false)
	})
	return changed, err
}

// auditStop appends the record of a stop set (on) or lifted, as record
// id, to this Store's chain, and announces the change.
func (s *Store) auditStop(ctx context.Context, tx pgx.Tx, id int64, st store.Stop, on bool) error {
	rec := stopRecord(st, on)
	rec.ID = uint64(id)
	hd, err := s.lockHead(ctx, tx)
	if err != nil {
		return err
	}
	if err := putRecord(ctx, tx, hd, &rec, true, false); err != nil {
		return err
	}
	if err := hd.save(ctx, tx); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify(`+stopsChannel+`, $1)`, string(st.Kind)+" "+st.Subject)
	return err
}

// stopRecord is the audit record of a stop set (on) or lifted, shaped as
// the Brake's own halt and revoke events are.
func stopRecord(st store.Stop, on bool) audit.Record {
	rec := audit.Record{Time: st.Time, Vendor: "keybrake", Outcome: audit.None,
		Params: map[string]string{"scope": "fleet", "by": st.By}}
	if st.Reason != "" {
		rec.Params["reason"] = st.Reason
	}
	verb := map[bool]string{true: "halted", false: "resumed"}[on]
	switch st.Kind {
	case store.StopHalt:
		rec.Event = "halt"
		rec.Params["halted"] = fmt.Sprint(on)
		rec.Reason = "every agent " + verb
		if st.Subject != "" {
			rec.Agent, rec.Params["agent"] = st.Subject, st.Subject
			rec.Reason = "agent " + st.Subject + " " + verb
		}
	case store.StopRevoke:
		verb = map[bool]string{true: "revoked", false: "restored"}[on]
		rec.Event = "revoke"
		rec.Agent, rec.Params["agent"], rec.Params["revoked"] = st.Subject, st.Subject, fmt.Sprint(on)
		rec.Reason = "agent " + st.Subject + " " + verb
	case store.StopKey:
		verb = map[bool]string{true: "revoked", false: "restored"}[on]
		rec.Event = "revoke"
		rec.KeyID, rec.Params["key"], rec.Params["revoked"] = st.Subject, st.Subject, fmt.Sprint(on)
		rec.Reason = "agent key " + st.Subject + " " + verb
	}
	rec.Reason += " fleet-wide by " + st.Source()
	return rec
}

// ReadStops implements store.Stops.
func (s *Store) ReadStops(ctx context.Context) ([]store.Stop, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, `SELECT kind, subject, source, reason, time_ns FROM keybrake_stops`)
	if err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	var out []store.Stop
	for rows.Next() {
		var (
			st   store.Stop
			kind string
			ns   int64
		)
		if err := rows.Scan(&kind, &st.Subject, &st.By, &st.Reason, &ns); err != nil {
			rows.Close()
			return nil, s.ctxErr(ctx, err)
		}
		st.Kind, st.Time = store.StopKind(kind), time.Unix(0, ns).UTC()
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	slices.SortFunc(out, func(a, b store.Stop) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Subject, b.Subject)
	})
	return out, nil
}

// WatchStops implements store.Stops. It holds a connection of its own,
// outside the pool, that LISTENs on the schema's channel (its
// application_name is "keybrake stops"), and reads the stops when told
// of a change, and every Options.StopsPoll whatever it is told: the
// backstop for a notification lost with its connection. A connection
// that drops is replaced at the next poll. It also ends, returning
// store.ErrClosed, when the Store is closed.
func (s *Store) WatchStops(ctx context.Context, fn func([]store.Stop, error)) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	s.leave() // a watch is not a call Close waits for: it ends with s.stop
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	poll := s.stopsPoll()
	var (
		conn      *pgx.Conn
		last      []store.Stop
		delivered bool
		failing   bool
	)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	ended := func() error {
		if s.isClosed() {
			return store.ErrClosed
		}
		return context.Cause(ctx)
	}
	for {
		if ctx.Err() != nil {
			return ended()
		}
		if conn == nil && !s.opts.NoListen {
			conn = s.listen(ctx, poll)
		}
		stops, err := s.ReadStops(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, store.ErrClosed):
			return ended()
		case err != nil:
			if !failing {
				failing = true
				fn(nil, err)
			}
		case !delivered || !slices.EqualFunc(stops, last, sameStop):
			failing, delivered, last = false, true, stops
			fn(stops, nil)
		default:
			failing = false
		}
		if conn == nil {
			t := time.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			continue
		}
		wctx, wcancel := context.WithTimeout(ctx, poll)
		_, err = conn.WaitForNotification(wctx)
		wcancel()
		if err != nil && (conn.IsClosed() || !pgconn.Timeout(err)) && ctx.Err() == nil {
			conn.Close(context.Background()) // dropped: poll, and listen again
			conn = nil
		}
	}
}

func sameStop(a, b store.Stop) bool {
	return a.Kind == b.Kind && a.Subject == b.Subject && a.By == b.By && a.Reason == b.Reason && a.Time.Equal(b.Time)
}

// isClosed reports whether Close has begun.
func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// listen opens the notification connection, or returns nil when it cannot
// (the poll goes on meanwhile).
func (s *Store) listen(ctx context.Context, poll time.Duration) *pgx.Conn {
	cfg := s.pool.Config().ConnConfig.Copy()
	params := make(map[string]string, len(cfg.RuntimeParams)+1)
	for k, v := range cfg.RuntimeParams {
		params[k] = v
	}
	params["application_name"] = "keybrake stops"
	cfg.RuntimeParams = params
	ctx, cancel := context.WithTimeout(ctx, max(poll, 5*time.Second))
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil
	}
	var ch string
	if err := conn.QueryRow(ctx, `SELECT `+stopsChannel).Scan(&ch); err != nil {
		conn.Close(context.Background())
		return nil
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{ch}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil
	}
	return conn
}
