package main

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store/postgres"
)

// A --db that is a postgres:// URL names a shared store (store/postgres):
// every process and proxy replica of a fleet uses it at once, so the
// commands read it directly rather than through an agent's socket.

// isDatabaseURL reports whether db names a PostgreSQL database rather than
// a bbolt file.
func isDatabaseURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// dbName is db as it may be printed: a URL loses its password (and its
// query, which may hold one too).
func dbName(db string) string {
	if !isDatabaseURL(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "a postgres:// URL that does not parse"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery = ""
	return u.String()
}

// openShared opens the shared store db names; its errors never hold the
// password (store/postgres scrubs them).
func openShared(ctx context.Context, db string) (*postgres.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return postgres.Open(ctx, db, nil)
}

// withShared runs fn against the shared store db names.
func withShared(db string, state func() admin.State, fn func(src source) error) error {
	st, err := openShared(context.Background(), db)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(source{Source: fleetStatus{&admin.Local{Store: st, State: state}}, where: "the shared store " + dbName(db)})
}

// fleetStatus is a shared store's Local whose Status also shows the
// fleet's stops (store.Stops), each with its source, as every Brake on the
// store obeys them besides the host's policy file and kill switch.
type fleetStatus struct{ *admin.Local }

func (f fleetStatus) Status(ctx context.Context) (*admin.Status, error) {
	return f.with(ctx, (*admin.Local).Status)
}

func (f fleetStatus) Glance(ctx context.Context) (*admin.Status, error) {
	return f.with(ctx, (*admin.Local).Glance)
}

// with calls status on a copy of the Local whose State adds the fleet's
// stops.
func (f fleetStatus) with(ctx context.Context, status func(*admin.Local, context.Context) (*admin.Status, error)) (*admin.Status, error) {
	fleet, _, ok, err := storeStops(ctx, f.Store)
	if err != nil {
		return nil, err
	}
	l := *f.Local
	if ok {
		host := l.State
		l.State = func() admin.State {
			var s admin.State
			if host != nil {
				s = host()
			}
			var stops policy.Stops
			stops.Add(s.Stops) // a copy: the host's map is not this one's to change
			stops.Add(fleet)
			s.Stops = stops
			return s
		}
	}
	return status(&l, ctx)
}

// followShared follows the shared store db names: the store answers every
// process's records, so there is no socket to prefer.
func followShared(ctx context.Context, db string, q audit.Query, fn func(*audit.Record) error) error {
	st, err := openShared(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	err = admin.Follow(ctx, st, q, 0, fn)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
