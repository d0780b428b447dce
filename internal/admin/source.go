package admin

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
)

// Source is what a running Brake serves. Implementations are safe for
// concurrent use and honour ctx.
type Source interface {
	// Query calls fn for each record q selects, as the store holds it
	// now, oldest first, and returns the first error fn returns.
	Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error
	// Status is where the day's limits stand and who is stopped.
	Status(ctx context.Context) (*Status, error)
	// Glance is Status without its Spend, whose cost grows with the
	// day's records: what a page that redraws on every change asks for.
	Glance(ctx context.Context) (*Status, error)
	// Verify checks the audit chain: store.Store.Verify.
	Verify(ctx context.Context) (store.VerifyReport, error)
}

// State is what a Local says is in force besides the store.
type State struct {
	// PolicyFile names the policy file when Policy is nil; otherwise
	// Policy.File is used when PolicyFile is empty.
	PolicyFile string
	Policy     *policy.Policy // the policy in force; nil when none is
	PolicyErr  error          // why none is, or why the file is not the one in force
	Halted     bool           // every agent stopped beyond the policy's own halt
	Revoked    []string       // agents revoked beyond the policy's own
	// Stops name the sources of stops beyond the policy, for when Policy
	// does not carry them (policy.WithStops does): Halted and Revoked
	// without a source here are named "the agent runner".
	Stops policy.Stops
	// Warnings are lines the runner wants status to repeat
	// (keybrake.Options.Warnings).
	Warnings []string
	Day      string // the day counted, in the policy's time zone; "" means Now's
}

// Local is a Source over a store in this process: what a Brake serves, and
// what `keybrake` reads a database file through when no Brake answers. The
// zero Local has no store: its methods return an error. It is safe for
// concurrent use when Store and State are.
type Local struct {
	Store store.Store
	// State says what is in force, read once per Status; nil means no
	// policy.
	State func() State
	// Now is the clock for Status.Time and the day; nil means time.Now.
	Now func() time.Time
}

var _ Source = (*Local)(nil)

var errNoStore = errors.New("admin: Local has no Store")

// Query implements Source.
func (l *Local) Query(ctx context.Context, q audit.Query, fn func(*audit.Record) error) error {
	if l.Store == nil {
		return errNoStore
	}
	return l.Store.Query(ctx, q, fn)
}

// Status implements Source with ComputeStatus, and lists the customers of
// every per-customer limit (store.Store.Counters: in proportion to the
// per-customer counters kept) and the day's spend hour by hour (a Query
// of the day's records: in proportion to them).
func (l *Local) Status(ctx context.Context) (*Status, error) { return l.status(ctx, true) }

// Glance implements Source: Status without the day's spend.
func (l *Local) Glance(ctx context.Context) (*Status, error) { return l.status(ctx, false) }

func (l *Local) status(ctx context.Context, spend bool) (*Status, error) {
	if l.Store == nil {
		return nil, errNoStore
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	var st State
	if l.State != nil {
		st = l.State()
	}
	t := now().UTC()
	day := st.Day
	if day == "" {
		day = st.Policy.Day(t) // the policy's time zone; UTC without one
	}
	s, err := ComputeStatus(ctx, l.Store, st.Policy, st.PolicyErr, day, st.stops())
	if err != nil {
		return nil, err
	}
	if st.Policy != nil {
		if s.Customers, err = customerLimits(ctx, l.Store, st.Policy, day); err != nil {
			return nil, err
		}
	}
	if spend {
		if s.Spend, s.Shadow, err = daySpend(ctx, l.Store, t.Format("2006-01-02")); err != nil { // by UTC hour
			return nil, err
		}
	}
	s.Time = t
	s.Warnings = append([]string(nil), st.Warnings...)
	if st.PolicyFile != "" {
		s.PolicyFile = st.PolicyFile
	}
	return s, nil
}

// Verify implements Source.
func (l *Local) Verify(ctx context.Context) (store.VerifyReport, error) {
	if l.Store == nil {
		return store.VerifyReport{}, errNoStore
	}
	return l.Store.Verify(ctx)
}

// stops is Stops with Halted and Revoked added, a source named for each.
func (st State) stops() policy.Stops {
	out := policy.Stops{Halt: st.Stops.Halt, Revoked: maps.Clone(st.Stops.Revoked), Tripped: maps.Clone(st.Stops.Tripped)}
	if out.Revoked == nil {
		out.Revoked = map[string]string{}
	}
	if st.Halted && out.Halt == "" {
		out.Halt = byRunner
	}
	for _, a := range st.Revoked {
		if out.Revoked[a] == "" {
			out.Revoked[a] = byRunner
		}
	}
	return out
}

// byRunner is the source of a stop the State does not name.
const byRunner = "the agent runner"
