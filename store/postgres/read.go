package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/store"
)

// queryPage is how many records Query reads in one statement before it
// hands them to fn, outside any statement.
const queryPage = 256

// Query implements store.Store. Records come by Time, then ID (by ID when
// q.InIDOrder()), a page of 256 a statement, found through the index on
// (time_ns, id), on (agent, time_ns, id) for a query naming an Agent, on
// (run, time_ns, id) for one naming a Run (migration 0004), or the
// primary key in ID order; the other filters are columns too, and
// audit.Query.Match decides at the clamped edges. fn runs between
// statements, so it may call the store; records written meanwhile may or
// may not be seen. A negative Limit is refused with ErrInvalid.
//
// In ID order, a follower passing After sees every record of one Store
// exactly once: a session's IDs follow its commits. Across processes a
// record can commit after one with a higher ID; see doc.go.
func (s *Store) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	if q.Limit < 0 {
		return invalid("query limit %d is negative", q.Limit)
	}
	if q.After > math.MaxInt64 {
		return nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !q.Since.IsZero() {
		where = append(where, "time_ns >= "+arg(timeNS(q.Since)))
	}
	if !q.Until.IsZero() {
		where = append(where, "time_ns <= "+arg(timeNS(q.Until)))
	}
	if q.After > 0 {
		where = append(where, "id > "+arg(int64(q.After)))
	}
	for col, v := range map[string]string{"agent": q.Agent, "vendor": q.Vendor, "decision": string(q.Decision), "customer": q.Customer,
		"run": q.Run, "principal": q.Principal} {
		if v != "" {
			where = append(where, col+" = "+arg(v))
		}
	}
	if q.Run != "" {
		// Implied by run = $n, but said so that a plan made for any $n
		// (a prepared statement's generic plan) may use the partial
		// index keybrake_records_run.
		where = append(where, "run <> ''")
	}
	byID := q.InIDOrder()
	order := "time_ns, id"
	if byID {
		order = "id"
	}
	fixed := len(args)
	var (
		lastT, lastID int64
		started       bool
		sent          int
	)
	for {
		args = args[:fixed]
		w := append([]string(nil), where...)
		if started {
			if byID {
				w = append(w, "id > "+arg(lastID))
			} else {
				w = append(w, "(time_ns, id) > ("+arg(lastT)+", "+arg(lastID)+")")
			}
		}
		sql := "SELECT id, time_ns, body FROM keybrake_records"
		if len(w) > 0 {
			sql += " WHERE " + strings.Join(w, " AND ")
		}
		sql += " ORDER BY " + order + " LIMIT " + fmt.Sprint(queryPage)
		page, n, err := s.readPage(ctx, sql, args, func(id, t int64) { lastID, lastT = id, t })
		if err != nil {
			return err
		}
		started = true
		for _, r := range page {
			if !q.Match(r) {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
			sent++
			if q.Limit > 0 && sent >= q.Limit {
				return nil
			}
		}
		if n < queryPage {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// readPage runs one page's statement; last sees each row's id and time.
func (s *Store) readPage(ctx context.Context, sql string, args []any, last func(id, t int64)) ([]*audit.Record, int, error) {
	if err := s.enter(ctx); err != nil {
		return nil, 0, err
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, s.ctxErr(ctx, err)
	}
	defer rows.Close()
	var (
		page []*audit.Record
		n    int
	)
	for rows.Next() {
		var (
			id, t int64
			body  []byte
		)
		if err := rows.Scan(&id, &t, &body); err != nil {
			return nil, 0, s.ctxErr(ctx, err)
		}
		r, err := decodeRecord(uint64(id), body)
		if err != nil {
			return nil, 0, err
		}
		last(id, t)
		page = append(page, r)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.ctxErr(ctx, err)
	}
	return page, n, nil
}

// Outstanding implements store.Store, through the partial index of records
// Reserved or Unknown: its cost follows those records, not the log.
func (s *Store) Outstanding(ctx context.Context, fn func(*audit.Record) error) error {
	var last int64
	for {
		page, n, err := s.readPage(ctx, `SELECT id, time_ns, body FROM keybrake_records
			WHERE outcome IN ('reserved', 'unknown') AND id > $1 ORDER BY id LIMIT `+fmt.Sprint(queryPage),
			[]any{last}, func(id, _ int64) { last = id })
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if n < queryPage {
			return nil
		}
	}
}

// Counter implements store.Store.
func (s *Store) Counter(ctx context.Context, key string) (store.Counter, error) {
	if err := s.enter(ctx); err != nil {
		return store.Counter{}, err
	}
	defer s.leave()
	var c store.Counter
	err := s.pool.QueryRow(ctx, `SELECT settled, pending, unknown FROM keybrake_counters WHERE key = $1`, key).Scan(&c.Settled, &c.Pending, &c.Unknown)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Counter{}, nil
	}
	if err != nil {
		return store.Counter{}, s.ctxErr(ctx, err)
	}
	return c, nil
}

// Counters implements store.Store. It reads the keys at or after prefix
// in bytewise order (index keybrake_counters_bytewise, migration 0003), a
// page of 256 at a time, and stops at the first key without the prefix;
// fn runs between pages, outside any transaction.
func (s *Store) Counters(ctx context.Context, prefix string, fn func(key string, c store.Counter) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	type counter struct {
		key string
		c   store.Counter
	}
	const sel = `SELECT key, settled, pending, unknown FROM keybrake_counters WHERE key COLLATE "C" `
	stmt := func(from string) string {
		return sel + from + ` $1 ORDER BY key COLLATE "C" LIMIT ` + fmt.Sprint(queryPage)
	}
	q, from := stmt(">="), prefix // the first page, then after the last key seen
	for {
		var page []counter
		rows, err := s.pool.Query(ctx, q, from)
		if err != nil {
			return s.ctxErr(ctx, err)
		}
		n := 0
		for rows.Next() {
			var p counter
			if err := rows.Scan(&p.key, &p.c.Settled, &p.c.Pending, &p.c.Unknown); err != nil {
				rows.Close()
				return s.ctxErr(ctx, err)
			}
			n++
			if strings.HasPrefix(p.key, prefix) {
				page = append(page, p)
			}
		}
		if err := rows.Err(); err != nil {
			return s.ctxErr(ctx, err)
		}
		for _, p := range page {
			if err := fn(p.key, p.c); err != nil {
				return err
			}
		}
		if n < queryPage || len(page) < n {
			return nil
		}
		q, from = stmt(">"), page[len(page)-1].key
	}
}

// Fact implements store.Store.
func (s *Store) Fact(ctx context.Context, key string) (string, bool, error) {
	if err := s.enter(ctx); err != nil {
		return "", false, err
	}
	defer s.leave()
	if v, ok := s.facts.get(key); ok {
		return v, true, nil
	}
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM keybrake_facts WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.ctxErr(ctx, err)
	}
	s.facts.put(key, v)
	return v, true, nil
}
