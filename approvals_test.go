package keybrake_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/replay"
	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/store"
)

// Approvals (the policy-changes issue): a held call, approved by a person,
// is admitted once, for exactly that request; retries neither open more
// approvals nor get through.

const approvePolicy = `version: 1
agents:
  payout-bot:
    stripe:
      daily_cap: 5000.00 USD
      approve_above: 200.00 USD
      approve: [POST /v1/transfers]
      allow: [POST /v1/transfers, POST /v1/refunds]
`

type approvals struct {
	t     *testing.T
	db    string
	kb    *keybrake.Brake
	bot   *client.API
	fake  *fakestripe.Server
	clk   *clock
	mu    sync.Mutex
	pages []notify.Alert
}

func newApprovals(t *testing.T) *approvals {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_0", Amount: 100000, Currency: "usd", Captured: true})
	a := &approvals{t: t, fake: fs, clk: newClock(t, "2026-12-04T10:00:00Z"), db: filepath.Join(t.TempDir(), "keybrake.db")}
	notifier := notify.NotifierFunc(func(_ context.Context, al notify.Alert) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.pages = append(a.pages, al)
		return nil
	})
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: writePolicy(t, approvePolicy),
		DBPath: a.db, Endpoints: fakeEndpoint(url), Clock: a.clk.Now,
		Notifier: notifier, NotifyOptions: notify.Options{Window: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kb.Close() })
	a.kb, a.bot = kb, sdkNoRetry(kb, "payout-bot")
	return a
}

func (a *approvals) transfer(cents int64, dest string) *keybrake.Denial {
	a.t.Helper()
	_, err := a.bot.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(cents), Currency: stripego.String("usd"),
		Destination: stripego.String(dest)})
	return denialOf(a.t, err)
}

func (a *approvals) held(d *keybrake.Denial) string {
	a.t.Helper()
	if d == nil || d.Decision != keybrake.Held || d.Code != "keybrake_approval_required" || d.Status != 403 ||
		!strings.HasPrefix(d.ApprovalID, "apr_") || !strings.Contains(d.Reason, "keybrake approve "+d.ApprovalID) {
		a.t.Fatalf("denial %+v; want held 403 keybrake_approval_required naming its approval", d)
	}
	return d.ApprovalID
}

func TestApprovalBoundToTheExactRequest(t *testing.T) {
	a := newApprovals(t)
	ctx := context.Background()
	id := a.held(a.transfer(25000, "acct_1"))
	// Retry pressure: a thousand retries, one approval, one page.
	for i := 0; i < 999; i++ {
		if got := a.held(a.transfer(25000, "acct_1")); got != id {
			t.Fatalf("retry %d waits for %s; want %s", i, got, id)
		}
	}
	if n := len(a.fake.Movements()); n != 0 {
		t.Fatalf("%d transfers reached Stripe before any approval", n)
	}
	// Anything else is another request.
	if got := a.held(a.transfer(25001, "acct_1")); got == id {
		t.Fatal("one cent more waits for the same approval")
	}
	if got := a.held(a.transfer(25000, "acct_2")); got == id {
		t.Fatal("another destination waits for the same approval")
	}
	list, err := a.kb.Approvals(ctx)
	if err != nil || len(list) != 3 || list[0].ID != id || list[0].State != "pending" ||
		list[0].Amount.String() != "250.00 USD" || !strings.Contains(list[0].What, "destination=acct_1") {
		t.Fatalf("Approvals = %+v, %v; want three pending, the first showing what it approves", list, err)
	}
	if err := a.kb.Approve(ctx, "apr_0000000000000000", "alice"); !errors.Is(err, keybrake.ErrApprovalNotFound) {
		t.Fatalf("approving an unknown id: %v", err)
	}
	if err := a.kb.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := a.kb.Deny(ctx, id, "bob"); !errors.Is(err, keybrake.ErrApprovalDecided) {
		t.Fatalf("denying an approved request: %v", err)
	}
	// The approval admits the exact request once, and nothing else.
	if got := a.held(a.transfer(25001, "acct_1")); got == id {
		t.Fatal("one cent more used the approval")
	}
	if d := a.transfer(25000, "acct_1"); d != nil {
		t.Fatalf("the approved request: %+v", d)
	}
	next := a.held(a.transfer(25000, "acct_1"))
	if next == id {
		t.Fatal("the same request again used the same approval")
	}
	if n := len(a.fake.Movements()); n != 1 {
		t.Fatalf("%d transfers reached Stripe; want the one approved", n)
	}
	// A denial holds: the request is blocked, not held, until it expires.
	if err := a.kb.Deny(ctx, next, "bob"); err != nil {
		t.Fatal(err)
	}
	if d := a.transfer(25000, "acct_1"); d == nil || d.Code != "keybrake_approval_denied" || d.Decision != keybrake.Blocked ||
		!strings.Contains(d.Reason, "bob") {
		t.Fatalf("after a denial: %+v", d)
	}
	// Small refunds need nobody; large ones do.
	if _, err := a.bot.Refunds.New(refund("ch_0", 20000)); err != nil {
		t.Fatalf("a 200.00 refund: %v", err)
	}
	_, err = a.bot.Refunds.New(refund("ch_0", 20001))
	if d := denialOf(t, err); d == nil || d.Rule != "agents.payout-bot.stripe.approve_above" {
		t.Fatalf("a 200.01 refund: %+v; want held by approve_above", d)
	}
	// The audit log: every held call, the allowed one naming its
	// approval and approver, an event for each step.
	events := map[string]int{}
	var allowed []audit.Record
	for _, r := range dump(t, a.kb, audit.Query{}) {
		if r.Event != "" {
			events[r.Event]++
		}
		if r.Approval == id && r.Decision == keybrake.Allowed {
			allowed = append(allowed, r)
		}
	}
	if events["approval"] != 5 || events["approve"] != 1 || events["deny"] != 1 {
		t.Fatalf("events %v; want 5 approval requests, 1 approve, 1 deny", events)
	}
	if len(allowed) != 1 || !strings.Contains(allowed[0].Reason, "approved by alice") {
		t.Fatalf("allowed records using %s: %+v", id, allowed)
	}
	a.kb.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	// The notifier groups alerts of one rule into bursts; what they
	// count is one occurrence per approval request, none per retry.
	var requests int64
	for _, p := range a.pages {
		if p.Kind == "approval" {
			requests += p.Count
		}
		if p.Kind == "held" {
			t.Errorf("a held call paged: %+v", p)
		}
	}
	if requests != 5 {
		t.Fatalf("approval pages count %d requests; want one per request (5): %+v", requests, a.pages)
	}
}

// TestApprovalOutlivesACap: an approved call a cap refuses has not used
// its approval, which stands until it expires.
func TestApprovalOutlivesACap(t *testing.T) {
	a := newApprovals(t)
	ctx := context.Background()
	for range 16 { // 16 x 300.00 (each approved) = 4800.00 of the 5000.00 cap
		id := a.held(a.transfer(30000, "acct_9"))
		if err := a.kb.Approve(ctx, id, "alice"); err != nil {
			t.Fatal(err)
		}
		if d := a.transfer(30000, "acct_9"); d != nil {
			t.Fatalf("an approved transfer: %+v", d)
		}
	}
	id := a.held(a.transfer(25000, "acct_1"))
	if err := a.kb.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	if d := a.transfer(25000, "acct_1"); d == nil || d.Code != "keybrake_daily_cap" {
		t.Fatalf("the approved 250.00 over the cap: %+v; want capped", d)
	}
	list, err := a.kb.Approvals(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].State != "approved" {
		t.Fatalf("after the cap refused it: %+v, %v; want the approval still standing", list, err)
	}
	a.clk.add(24 * time.Hour) // the next day: the cap has room; the approval expired
	if got := a.held(a.transfer(25000, "acct_1")); got == id {
		t.Fatal("an approval stood past its hour")
	}
}

// TestApprovalTTL: an approval not used in time, or a request nobody
// answers, expires.
func TestApprovalTTL(t *testing.T) {
	a := newApprovals(t)
	ctx := context.Background()
	id := a.held(a.transfer(25000, "acct_1"))
	if _, err := a.kb.ApproveFor(ctx, id, "alice", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	a.clk.add(11 * time.Minute)
	if got := a.held(a.transfer(25000, "acct_1")); got == id {
		t.Fatal("an expired approval still stands")
	}
	pending := a.held(a.transfer(30000, "acct_1"))
	a.clk.add(keybrake.DefaultApprovalTTL)
	if err := a.kb.Approve(ctx, pending, "alice"); !errors.Is(err, keybrake.ErrApprovalDecided) {
		t.Fatalf("approving a request unanswered for an hour: %v", err)
	}
	if n := len(a.fake.Movements()); n != 0 {
		t.Fatalf("%d transfers moved", n)
	}
}

// TestApprovedRetryAfterTheKeyIsForgotten: a retry with the idempotency
// key of the approved call is that call while the vendor remembers the
// key, and needs no approval; a day later the vendor would execute it
// again, so it is a new request and waits for a person.
func TestApprovedRetryAfterTheKeyIsForgotten(t *testing.T) {
	a := newApprovals(t)
	send := func() *keybrake.Denial {
		t.Helper()
		p := &stripego.TransferParams{Amount: stripego.Int64(25000), Currency: stripego.String("usd"), Destination: stripego.String("acct_1")}
		p.SetIdempotencyKey("payout-4312")
		_, err := a.bot.Transfers.New(p)
		return denialOf(t, err)
	}
	id := a.held(send())
	if err := a.kb.Approve(context.Background(), id, "alice"); err != nil {
		t.Fatal(err)
	}
	if d := send(); d != nil {
		t.Fatalf("the approved call: %+v", d)
	}
	a.clk.add(time.Hour)
	if d := send(); d != nil {
		t.Fatalf("its retry an hour later, a replay: %+v", d)
	}
	a.clk.add(store.ReplayWindow)
	if got := a.held(send()); got == id {
		t.Fatalf("a retry after the vendor forgot the key went on %s, the approval already used", id)
	}
	if n := len(a.fake.Movements()); n != 1 {
		t.Fatalf("%d transfers moved; want the approved one", n)
	}
	// Approved again, it goes on as a new call. Its retry a few minutes
	// later is past the key's window too (it runs from the key's first
	// use, a day ago): held for an approval of its own, not admitted on
	// the one just used.
	second := a.held(send())
	if err := a.kb.Approve(context.Background(), second, "alice"); err != nil {
		t.Fatal(err)
	}
	if d := send(); d != nil {
		t.Fatalf("the call approved again: %+v", d)
	}
	a.clk.add(5 * time.Minute)
	if got := a.held(send()); got == second || got == id {
		t.Fatalf("the retry of a forgotten key's call went on %s, an approval already used", got)
	}
}

// TestApprovalAfterAnUnheldFirstUse: a key first used by a call no
// approval covered (the policy asked for none then) and used again with an
// approval past the key's window: a retry of that approved call is past
// the window too, and the store reserves it as a new call, so it is held,
// not admitted on the approval already used.
func TestApprovalAfterAnUnheldFirstUse(t *testing.T) {
	fs, url := fakestripe.Start(t)
	clk := newClock(t, "2026-12-04T10:00:00Z")
	file := writePolicy(t, strings.Replace(approvePolicy, "      approve: [POST /v1/transfers]\n", "", 1))
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: file, DBPath: filepath.Join(t.TempDir(), "keybrake.db"),
		Endpoints: fakeEndpoint(url), Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	bot := sdkNoRetry(kb, "payout-bot")
	send := func() *keybrake.Denial {
		t.Helper()
		p := &stripego.TransferParams{Amount: stripego.Int64(15000), Currency: stripego.String("usd"), Destination: stripego.String("acct_1")}
		p.SetIdempotencyKey("payout-77")
		_, err := bot.Transfers.New(p)
		return denialOf(t, err)
	}
	if d := send(); d != nil {
		t.Fatalf("the first use, no approval asked: %+v", d)
	}
	if err := os.WriteFile(file, []byte(approvePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the policy reload", func() bool { return hasEvent(t, kb, "policy_reload") })
	clk.add(store.ReplayWindow)
	d := send()
	if d == nil || d.Decision != keybrake.Held {
		t.Fatalf("past the window under the new policy: %+v, want held", d)
	}
	if err := kb.Approve(context.Background(), d.ApprovalID, "alice"); err != nil {
		t.Fatal(err)
	}
	if d := send(); d != nil {
		t.Fatalf("the approved call: %+v", d)
	}
	clk.add(5 * time.Minute)
	if d := send(); d == nil || d.Decision != keybrake.Held || !strings.Contains(d.Reason, "needs an approval of its own") {
		t.Fatalf("a retry of the approved call, the key past its window: %+v, want held for an approval of its own", d)
	}
	if n := len(fs.Movements()); n != 1 {
		t.Fatalf("%d transfers moved; Stripe replayed the rest, want 1", n)
	}
}

// TestApprovalUsedOnceUnderRace: 50 goroutines send the approved request at
// once; exactly one reaches Stripe.
func TestApprovalUsedOnceUnderRace(t *testing.T) {
	a := newApprovals(t)
	id := a.held(a.transfer(25000, "acct_1"))
	if err := a.kb.Approve(context.Background(), id, "alice"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bot := sdkNoRetry(a.kb, "payout-bot")
			_, err := bot.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(25000), Currency: stripego.String("usd"),
				Destination: stripego.String("acct_1")})
			if err == nil {
				admitted.Add(1)
				return
			}
			// Held again (another used it), or capped: every one of them
			// reserves before it may use it, and 50 transfers of 250.00
			// are over the 5000.00 cap.
			if d, ok := keybrake.AsDenial(err); !ok || d.Decision != keybrake.Held && d.Code != "keybrake_daily_cap" {
				t.Errorf("a racing call: %v; want held or capped", err)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 1 || len(a.fake.Movements()) != 1 {
		t.Fatalf("%d calls admitted, %d transfers moved; want exactly one", admitted.Load(), len(a.fake.Movements()))
	}
}

// TestApprovalThroughTheProxy: an agent behind the proxy gets the held
// refusal in Stripe's format, with its approval id, and cannot approve
// anything with its own key: no path of the proxy's agent port decides an
// approval.
func TestApprovalThroughTheProxy(t *testing.T) {
	fs, url := fakestripe.Start(t)
	kb, err := keybrake.Open(keybrake.Options{PolicyFile: writePolicy(t, approvePolicy),
		DBPath: filepath.Join(t.TempDir(), "keybrake.db"), Endpoints: fakeEndpoint(url)})
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	h, err := kb.Proxy(keybrake.ProxyOptions{
		Keys: keyTable{agentKey: {keybrake.AgentKey{ID: "kbk_payout", Agent: "payout-bot", Vendor: keybrake.Stripe}, keybrake.KeyFound}},
		Secret: func(keybrake.Vendor, []string) (map[string]string, error) {
			return map[string]string{"STRIPE_SECRET_KEY": stripeSecret}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	sc := stripeAt(srv.URL, agentKey)
	send := func() error {
		_, err := sc.Transfers.New(&stripego.TransferParams{Amount: stripego.Int64(25000), Currency: stripego.String("usd"),
			Destination: stripego.String("acct_1")})
		return err
	}
	err = send()
	var se *stripego.Error
	d, ok := keybrake.AsDenial(err)
	if !errors.As(err, &se) || se.HTTPStatusCode != 403 || !ok || d.Decision != keybrake.Held || d.ApprovalID == "" {
		t.Fatalf("through the proxy: %v (%+v); want stripe-go's 403, held, with an approval id", err, d)
	}
	// The agent's key on every path an operator's side answers on.
	for _, path := range []string{"/approvals/decide", "/api/act", "/v1/approvals/" + d.ApprovalID + "/approve"} {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader("id="+d.ApprovalID+"&approve=true&by=agent"))
		req.Header.Set("Authorization", "Bearer "+agentKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("POST %s with the agent's key: %s", path, resp.Status)
		}
	}
	list, err := kb.Approvals(context.Background())
	if err != nil || len(list) != 1 || list[0].State != "pending" {
		t.Fatalf("after the agent's attempts: %+v, %v; want it still pending", list, err)
	}
	if err := kb.Approve(context.Background(), d.ApprovalID, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := send(); err != nil {
		t.Fatalf("the approved transfer through the proxy: %v", err)
	}
	if n := len(fs.Movements()); n != 1 {
		t.Fatalf("%d transfers moved; want 1", n)
	}
}

// TestReplayOfApprovals: replaying the policy in force on a log with held
// calls and an approved one decides every call as recorded; replaying it
// without the approval lets the held transfers through.
func TestReplayOfApprovals(t *testing.T) {
	a := newApprovals(t)
	ctx := context.Background()
	id := a.held(a.transfer(15000, "acct_1"))
	a.held(a.transfer(15000, "acct_1"))
	if err := a.kb.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	if d := a.transfer(15000, "acct_1"); d != nil {
		t.Fatalf("the approved transfer: %+v", d)
	}
	a.held(a.transfer(15000, "acct_1"))
	if _, err := a.bot.Refunds.New(refund("ch_0", 20000)); err != nil {
		t.Fatal(err)
	}
	db := a.db
	a.kb.Close()
	recs := fileRecords(t, db)
	same := replay.Replay(parsePolicy(t, approvePolicy), recs, time.Time{})
	for _, ag := range same.Agents {
		if len(ag.Changed)+len(ag.Reruled)+len(ag.Uncertain) != 0 || len(ag.NotReplayed) != 0 || ag.Replayed != 5 {
			t.Errorf("the policy in force, replayed: %+v; want 5 calls as recorded", ag)
		}
	}
	// 150.00 is below approve_above: only the approve rule held them.
	without := strings.Replace(approvePolicy, "      approve: [POST /v1/transfers]\n", "", 1)
	rep := replay.Replay(parsePolicy(t, without), recs, time.Time{})
	if len(rep.Agents) != 1 || len(rep.Agents[0].Changed) != 3 || rep.Agents[0].Changed[0].To.Decision != keybrake.Allowed ||
		rep.Agents[0].Changed[0].From.Decision != keybrake.Held {
		t.Fatalf("without the approval rule: %+v; want the 3 held transfers allowed", *rep.Agents[0])
	}
}
