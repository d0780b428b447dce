package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/fakes/fakestripe"
)

// The incident page shows the held calls waiting for a person, each with
// exactly what it lets through, approves one from a button behind a
// confirmation naming it, and shows what the shadow policy would have
// decided otherwise.
func TestUIApprovesAHeldCallAndShowsTheShadow(t *testing.T) {
	fake, url := fakestripe.Start(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "keybrake.db")
	pol := writePolicy(t, approvePolicy)
	shadow := filepath.Join(dir, "candidate.yaml") // the candidate drops the approval
	if err := os.WriteFile(shadow, []byte("version: 1\nagents:\n  payout-bot:\n    stripe:\n      daily_cap: 5000.00 USD\n      allow: [POST /v1/transfers]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := openPayoutBot(t, brake.Options{PolicyFile: pol, ShadowPolicyFile: shadow, DBPath: db}, fake, url)
	d := p.transfer(t)
	if d == nil || d.Decision != brake.Held {
		t.Fatalf("transfer: %+v; want held", d)
	}
	u := startUI(t, "--db", db, "--policy", pol, "--allow-actions")
	ctx := browser(t)
	item := `li.approval[data-approval="` + d.ApprovalID + `"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(u.link), chromedp.WaitVisible(`body[data-ready="1"]`), chromedp.WaitVisible(item)); err != nil {
		t.Fatalf("loading the page: %v\nkeybrake ui said:\n%s", err, u.stderr)
	}
	if what := inBrowser(t, ctx, chromedp.Text(chromedp.CSS(item+" .what"))); !strings.Contains(what, "POST /v1/transfers amount=25000 currency=usd destination=acct_1 (250.00 USD)") {
		t.Errorf("the approval shows %q; it must show exactly what it lets through", what)
	}
	// The shadow: the day's records are read in the background.
	shadowText := inBrowser(t, ctx, chromedp.Poll[string](`(document.querySelector('[data-shadow-agent="payout-bot"]') || {}).textContent || null`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if !strings.Contains(shadowText, "held → allowed") || !strings.Contains(shadowText, "1 of 1 calls") {
		t.Errorf("the shadow block says %q; want the held call the candidate would allow", shadowText)
	}
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS(item+` button[data-act="approve"]`)))
	inBrowser(t, ctx, chromedp.WaitVisible(chromedp.CSS(`dialog#confirm[open]`)))
	if text := inBrowser(t, ctx, chromedp.Text(chromedp.CSS("#confirm-text"))); !strings.Contains(text, "destination=acct_1 (250.00 USD)") || !strings.Contains(text, "once") {
		t.Errorf("the confirmation says %q; it must say exactly what is approved, once", text)
	}
	screenshot(t, ctx, "approve.png")
	if d := p.transfer(t); d == nil || d.Decision != brake.Held {
		t.Fatalf("before the confirmation the transfer is %+v; want still held", d)
	}
	inBrowser(t, ctx, chromedp.Click(chromedp.CSS("#confirm-yes")))
	msg := inBrowser(t, ctx, chromedp.Poll[string](`(t => t.includes('approved') ? t : null)(document.querySelector('#message').textContent)`,
		chromedp.WithPollingTimeout(15*time.Second)))
	if !strings.Contains(msg, d.ApprovalID) {
		t.Errorf("the page says %q after approving", msg)
	}
	if d := p.transfer(t); d != nil {
		t.Fatalf("the approved transfer: %+v", d)
	}
	if n := len(fake.Movements()); n != 1 {
		t.Fatalf("%d transfers moved; want the one approved", n)
	}
	out, _, _ := keybrake(t, nil, "audit", "--db", db, "--format", "jsonl")
	if !strings.Contains(out, "the incident page of ") {
		t.Errorf("the audit log does not name the page as the approver:\n%s", out)
	}
}
