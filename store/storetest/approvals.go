package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybrake/keybrake/internal/approval"
	"github.com/keybrake/keybrake/store"
)

// Approvals are kept as facts (internal/approval), so every store keeps
// them with the promises facts make: the cases below hold a store to what
// the approvals rely on, a fact written once wins once, however many
// writers race.

func runApprovals(t *testing.T, h func(func(*testing.T, store.Store)) func(*testing.T)) {
	t.Run("ApprovalLifecycle", h(testApprovalLifecycle))
	t.Run("ApprovalUsedOnce", h(testApprovalUsedOnce))
	t.Run("ApprovalOpenedOnce", h(testApprovalOpenedOnce))
}

// clock is a settable clock for the approvals' TTLs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func heldRequest(amountCents int64) approval.Request {
	a := usd(amountCents)
	return approval.Request{
		Binding: approval.Bind("payout-bot", "stripe", "POST", "/v1/transfers",
			map[string][]string{"amount": {"25000"}, "destination": {"acct_1"}}, a, ""),
		Agent: "payout-bot", Vendor: "stripe", Method: "POST", Path: "/v1/transfers",
		Params: map[string]string{"amount": "25000", "destination": "acct_1"}, Amount: a,
		Rule: "agents.payout-bot.stripe.approve[0]", Reason: "transfers need a person",
	}
}

func testApprovalLifecycle(t *testing.T, s store.Store) {
	clk := &clock{t: t0}
	b := approval.NewBook(s, clk.now)
	req := heldRequest(25000)
	a, opened, err := b.Hold(ctx, req)
	if err != nil || !opened || a.State(clk.now()) != approval.Pending {
		t.Fatalf("first Hold = %+v, %v, %v; want a pending approval it opened", a, opened, err)
	}
	first := a.ID
	got, err := b.Get(ctx, first)
	if err != nil || got.Request.Agent != "payout-bot" || got.Request.Amount != usd(25000) || got.Request.Params["destination"] != "acct_1" {
		t.Fatalf("Get = %+v, %v; want the request as held", got, err)
	}
	if used, err := b.Use(ctx, first, "kb_1", ""); err != nil || used {
		t.Fatalf("Use before approval = %v, %v; want false", used, err)
	}
	if _, err := b.Decide(ctx, first, true, "alice", 10*time.Minute); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if _, err := b.Decide(ctx, first, false, "bob", 0); !errors.Is(err, approval.ErrDecided) {
		t.Fatalf("deny after approve = %v; want ErrDecided", err)
	}
	a, opened, err = b.Hold(ctx, req)
	if err != nil || opened || a.ID != first || a.State(clk.now()) != approval.Approved {
		t.Fatalf("Hold after approval = %+v, %v, %v; want the approved one", a, opened, err)
	}
	if used, err := b.Use(ctx, first, "kb_2", ""); err != nil || !used {
		t.Fatalf("Use = %v, %v; want true", used, err)
	}
	if used, err := b.Use(ctx, first, "kb_3", ""); err != nil || used {
		t.Fatalf("second Use = %v, %v; want false: an approval is used once", used, err)
	}
	got, _ = b.Get(ctx, first)
	if got.State(clk.now()) != approval.Used || got.Closing.By != "kb_2" || got.Decision.By != "alice" {
		t.Fatalf("used approval = %+v; want used by kb_2, approved by alice", got)
	}
	// The same request again needs a new approval.
	a, opened, err = b.Hold(ctx, req)
	if err != nil || !opened || a.ID == first {
		t.Fatalf("Hold after use = %+v, %v, %v; want a new approval", a, opened, err)
	}
	second := a.ID
	// One minor unit more is another request.
	if other, _, err := b.Hold(ctx, heldRequest(25001)); err != nil || other.ID == second || other.ID == first {
		t.Fatalf("Hold of 250.01 = %+v, %v; want its own approval", other, err)
	}
	// A denial holds for its TTL, then the request may be asked again.
	if _, err := b.Decide(ctx, second, false, "bob", 30*time.Minute); err != nil {
		t.Fatalf("deny: %v", err)
	}
	if a, _, _ := b.Hold(ctx, req); a.ID != second || a.State(clk.now()) != approval.Denied {
		t.Fatalf("Hold after denial = %+v; want the denied one", a)
	}
	clk.add(31 * time.Minute)
	a, opened, err = b.Hold(ctx, req)
	if err != nil || !opened || a.ID == second {
		t.Fatalf("Hold after the denial expired = %+v, %v, %v; want a new approval", a, opened, err)
	}
	third := a.ID
	// An approval not used in time expires; so does a request nobody
	// answers.
	if _, err := b.Decide(ctx, third, true, "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	if used, err := b.Use(ctx, third, "kb_4", ""); err != nil || used {
		t.Fatalf("Use after expiry = %v, %v; want false", used, err)
	}
	a, opened, _ = b.Hold(ctx, req)
	if !opened || a.ID == third {
		t.Fatalf("Hold after an approval expired = %+v, %v; want a new one", a, opened)
	}
	clk.add(approval.DefaultTTL)
	if got, _ := b.Get(ctx, a.ID); got.State(clk.now()) != approval.Expired {
		t.Fatalf("a request nobody answered for %v is %s; want expired", approval.DefaultTTL, got.State(clk.now()))
	}
	if _, err := b.Decide(ctx, a.ID, true, "alice", 0); !errors.Is(err, approval.ErrDecided) {
		t.Fatalf("approving an expired request = %v; want ErrDecided", err)
	}
	if _, err := b.Get(ctx, "apr_0000000000000000"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Get of an unknown id = %v; want ErrNotFound", err)
	}
}

// testApprovalUsedOnce: 50 calls racing for one approval, one uses it.
func testApprovalUsedOnce(t *testing.T, s store.Store) {
	b := approval.NewBook(s, nil)
	a, _, err := b.Hold(ctx, heldRequest(25000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decide(ctx, a.ID, true, "alice", 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var used, failed atomic.Int64
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := b.Use(ctx, a.ID, approval.Token(), "")
			switch {
			case err != nil:
				failed.Add(1)
				t.Errorf("Use: %v", err)
			case ok:
				used.Add(1)
			}
		}()
	}
	wg.Wait()
	if used.Load() != 1 || failed.Load() != 0 {
		t.Fatalf("50 racing calls used one approval %d times (%d failed); want exactly once", used.Load(), failed.Load())
	}
}

// testApprovalOpenedOnce: a storm of retries, from many goroutines, opens
// one approval.
func testApprovalOpenedOnce(t *testing.T, s store.Store) {
	b := approval.NewBook(s, nil)
	var wg sync.WaitGroup
	var opened atomic.Int64
	ids := make([]string, 20)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				a, o, err := b.Hold(ctx, heldRequest(25000))
				if err != nil {
					t.Errorf("Hold: %v", err)
					return
				}
				if o {
					opened.Add(1)
				}
				ids[i] = a.ID
			}
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("retries found approvals %v; want one", ids)
		}
	}
	if opened.Load() != 1 {
		t.Fatalf("1,000 retries opened %d approvals; want 1", opened.Load())
	}
}

// testApprovalsAfterRestart: pending and approved approvals outlive the
// process.
func testApprovalsAfterRestart(t *testing.T, s store.Store, reopen Reopen) store.Store {
	b := approval.NewBook(s, nil)
	pending, _, err := b.Hold(ctx, heldRequest(25000))
	if err != nil {
		t.Fatal(err)
	}
	approved, _, err := b.Hold(ctx, heldRequest(30000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decide(ctx, approved.ID, true, "alice", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t)
	b = approval.NewBook(s, nil)
	if a, opened, err := b.Hold(ctx, heldRequest(25000)); err != nil || opened || a.ID != pending.ID || a.State(time.Now()) != approval.Pending {
		t.Fatalf("after restart, Hold = %+v, %v, %v; want the pending approval", a, opened, err)
	}
	if used, err := b.Use(ctx, approved.ID, "kb_1", ""); err != nil || !used {
		t.Fatalf("after restart, Use of the approved one = %v, %v; want true", used, err)
	}
	return s
}
