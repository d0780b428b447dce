package admin_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPolicy has a money cap and a count per agent and per vendor, a
// revoked agent, and a vendor-wide money cap.
const testPolicy = `version: 1
vendors:
  stripe:
    daily_cap: 2000.00 USD
  twilio:
    daily_count: 1000
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      per_call_max: 50.00 USD
      daily_count: 100
      allow:
        - POST /v1/refunds
  texter:
    revoked: true
    twilio:
      daily_cap: 10.00 USD
      allow: ["POST /2010-04-01/Accounts/{sid}/Messages.json"]
`

func parsePolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("/etc/keybrake.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func usd(s string) money.Amount {
	a, err := money.Parse(s + " USD")
	if err != nil {
		panic(err)
	}
	return a
}

// fixture is a bolt store in a temporary directory and what was written
// to it.
type fixture struct {
	t    testing.TB
	s    *bolt.Store
	path string
	day  string
	now  time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &fixture{t: t, s: s, path: path, day: now.Format("2006-01-02"), now: now}
}

// call is a refund by refund-bot of amount, at f.now+at.
func (f *fixture) call(at time.Duration, amount money.Amount) audit.Record {
	return audit.Record{
		Time: f.now.Add(at), Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
		Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]", Amount: amount, Reserved: amount,
		Customer: "cus_1",
	}
}

// holds are the refund's holds against the agent's and the vendor's caps
// and the agent's count, as policy.Limits would give them.
func (f *fixture) holds(amount money.Amount) []audit.Hold {
	return []audit.Hold{
		{Key: "agent/refund-bot/stripe/" + f.day + "/USD", Unit: "USD", Limit: usd("500.00").Micros, Amount: amount.Micros},
		{Key: "vendor/stripe/" + f.day + "/USD", Unit: "USD", Limit: usd("2000.00").Micros, Amount: amount.Micros},
		{Key: "agent/refund-bot/stripe/" + f.day + "/units", Unit: "units", Limit: 100, Amount: 1},
	}
}

// reserve reserves a refund and completes it with outcome, unless outcome
// is Reserved. A settled call moves moved.
func (f *fixture) reserve(at time.Duration, amount, moved money.Amount, outcome audit.Outcome) uint64 {
	f.t.Helper()
	ctx := context.Background()
	a, err := f.s.Reserve(ctx, &store.Reservation{Record: f.call(at, amount), Holds: f.holds(amount)})
	if err != nil || a.Result != store.Admitted {
		f.t.Fatalf("Reserve = %+v, %v", a, err)
	}
	if outcome == audit.Reserved {
		return a.ID
	}
	c := &store.Completion{ID: a.ID, Outcome: outcome, Status: 200}
	if outcome == audit.Settled {
		c.Settled, c.Moved = []int64{moved.Micros, moved.Micros, 1}, moved
	}
	if outcome == audit.Unknown {
		c.Status = 504
	}
	if err := f.s.Complete(ctx, c); err != nil {
		f.t.Fatal(err)
	}
	return a.ID
}

// refuse appends a refusal.
func (f *fixture) refuse(at time.Duration, agent string, d policy.Decision) uint64 {
	f.t.Helper()
	id, err := f.s.Append(context.Background(), &audit.Record{
		Time: f.now.Add(at), Agent: agent, Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
		Decision: d, Code: "keybrake_" + string(d), Rule: "agents." + agent + ".stripe", Reason: "refused for the test",
		Status: d.Status(), Outcome: audit.None,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// local is a Source over the fixture's store with testPolicy in force.
func (f *fixture) local(halted bool, revoked ...string) *admin.Local {
	pol := parsePolicy(f.t)
	return &admin.Local{Store: f.s, State: func() admin.State {
		return admin.State{Policy: pol, Halted: halted, Revoked: revoked, Day: f.day}
	}}
}

// haltingPolicy is testPolicy with the file's own halt: true.
func haltingPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("/etc/keybrake.yaml", []byte(strings.Replace(testPolicy, "version: 1\n", "version: 1\nhalt: true\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Halt {
		t.Fatal("halt: true did not halt")
	}
	return p
}
