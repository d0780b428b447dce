package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/internal/admin"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

func usd(s string) money.Amount {
	a, err := money.Parse(s + " USD")
	if err != nil {
		panic(err)
	}
	return a
}

// logDB is a database written as an agent would, and what was written.
type logDB struct {
	path string
	now  time.Time
	day  string
	ids  map[string]uint64 // by name
}

// writeLog writes refund-bot's incident into s: two refunds settled
// (20.00, and 25.00 of 30.00), one capped, one unknown (40.00), one in
// flight (10.00), the kill switch, another agent's blocked call, and a
// refund of ten minutes ago (5.00).
func writeLog(t *testing.T, s store.Store, now time.Time) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	day := now.UTC().Format("2006-01-02")
	ids := map[string]uint64{}
	refund := func(name string, at time.Duration, amount, moved money.Amount, outcome audit.Outcome) {
		rec := audit.Record{Time: now.Add(-at), Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
			Decision: policy.Allowed, Rule: "agents.refund-bot.stripe.allow[0]", Amount: amount, Reserved: amount, Customer: "cus_1"}
		a, err := s.Reserve(ctx, &store.Reservation{Record: rec, Holds: []audit.Hold{{
			Key: "agent/refund-bot/stripe/" + day + "/USD", Unit: "USD", Limit: usd("500.00").Micros, Amount: amount.Micros}}})
		if err != nil || a.Result != store.Admitted {
			t.Fatalf("Reserve: %+v %v", a, err)
		}
		ids[name] = a.ID
		if outcome == audit.Reserved {
			return
		}
		c := &store.Completion{ID: a.ID, Outcome: outcome, Status: 200}
		if outcome == audit.Settled {
			c.Settled, c.Moved = []int64{moved.Micros}, moved
		} else {
			c.Status = 504
		}
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	appendRec := func(name string, r audit.Record) {
		id, err := s.Append(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
	}
	refund("first", 120*time.Second, usd("20.00"), usd("20.00"), audit.Settled)
	refund("partial", 110*time.Second, usd("30.00"), usd("25.00"), audit.Settled)
	appendRec("capped", audit.Record{Time: now.Add(-100 * time.Second), Agent: "refund-bot", Vendor: "stripe", Method: "POST",
		Path: "/v1/refunds", Amount: usd("450.00"), Decision: policy.Capped, Code: "keybrake_daily_cap",
		Rule: "agents.refund-bot.stripe.daily_cap", Status: 402, Outcome: audit.None, Customer: "cus_1",
		Reason: "450.00 USD would bring agent refund-bot's stripe spend today to 535.00 USD, over its daily cap of 500.00 USD; \x1b[31mred\x1b[0m"})
	refund("unknown", 90*time.Second, usd("40.00"), money.Amount{}, audit.Unknown)
	refund("inflight", 80*time.Second, usd("10.00"), money.Amount{}, audit.Reserved)
	appendRec("kill", audit.Record{Time: now.Add(-70 * time.Second), Vendor: "keybrake", Path: "/etc/keybrake.yaml",
		Event: "kill_switch", Reason: "kill switch /etc/keybrake.yaml.halt: present: every agent (was absent)", Outcome: audit.None})
	appendRec("blocked", audit.Record{Time: now.Add(-60 * time.Second), Agent: "other-bot", Vendor: "stripe", Method: "POST",
		Path: "/v1/transfers", Decision: policy.Blocked, Code: "keybrake_not_allowed", Rule: "agents.other-bot.stripe",
		Status: 403, Outcome: audit.None, Customer: "=HYPERLINK(\"x\")", Reason: "no allow rule matches POST /v1/transfers"})
	refund("old", 10*time.Minute, usd("5.00"), usd("5.00"), audit.Settled)
	return ids
}

func newLogDB(t *testing.T) *logDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ids := writeLog(t, s, now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return &logDB{path: path, now: now, day: now.Format("2006-01-02"), ids: ids}
}

// storeJSONL is what the store holds for q, as JSON Lines.
func storeJSONL(t *testing.T, path string, q audit.Query) string {
	t.Helper()
	s, err := bolt.Open(path, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b bytes.Buffer
	jl := audit.NewJSONLines(&b)
	if err := s.Query(context.Background(), q, jl.Write); err != nil {
		t.Fatal(err)
	}
	jl.Flush()
	return b.String()
}

func recordsOf(t *testing.T, jsonl string) []audit.Record {
	t.Helper()
	var out []audit.Record
	sc := bufio.NewScanner(strings.NewReader(jsonl))
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestAuditJSONL(t *testing.T) {
	d := newLogDB(t)
	out, errs, code := keybrake(t, nil, "audit", "--db", d.path, "--format", "jsonl")
	if code != 0 || errs != "" {
		t.Fatalf("audit: %d %q", code, errs)
	}
	// Exactly the audit.Record JSON the store holds, oldest first.
	if want := storeJSONL(t, d.path, audit.Query{}); out != want || strings.Count(out, "\n") != 8 {
		t.Fatalf("jsonl:\n%s\nwant:\n%s", out, want)
	}
	// Money in major units beside its currency, a hold's in its own unit.
	for _, want := range []string{`"amount":"30.00","reserved":"30.00","settled":"25.00","currency":"USD"`,
		`"unit":"USD","limit":"500.00","amount":"30.00","settled":"25.00"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("jsonl lacks %s:\n%s", want, out)
		}
	}
	recs := recordsOf(t, out)
	if recs[0].ID != d.ids["old"] || recs[1].Settled != usd("20.00") {
		t.Errorf("first records %+v %+v", recs[0], recs[1])
	}

	// $KEYBRAKE_DB names the database; filters narrow.
	env := []string{"KEYBRAKE_DB=" + d.path}
	tests := []struct {
		args []string
		want []string // record names, in order
	}{
		{[]string{"--agent", "other-bot"}, []string{"blocked"}},
		{[]string{"--decision", "capped"}, []string{"capped"}},
		{[]string{"--since", "5m"}, []string{"first", "partial", "capped", "unknown", "inflight", "kill", "blocked"}},
		{[]string{"--since", "5m", "--limit", "2"}, []string{"first", "partial"}},
		{[]string{"--since", d.now.Add(-95 * time.Second).Format(time.RFC3339Nano), "--until", d.now.Add(-70 * time.Second).Format(time.RFC3339Nano)},
			[]string{"unknown", "inflight"}},
		{[]string{"--vendor", "keybrake"}, []string{"kill"}},
		{[]string{"--customer", "cus_1", "--agent", "refund-bot", "--since", "115s"}, []string{"partial", "capped", "unknown", "inflight"}},
		{[]string{"--agent", "nobody"}, nil},
	}
	for _, tt := range tests {
		out, errs, code := keybrake(t, env, append([]string{"audit", "--format", "jsonl"}, tt.args...)...)
		var got []uint64
		for _, r := range recordsOf(t, out) {
			got = append(got, r.ID)
		}
		var want []uint64
		for _, n := range tt.want {
			want = append(want, d.ids[n])
		}
		if code != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("audit %q: %d %q, records %v, want %v (%q)", tt.args, code, errs, got, want, tt.want)
		}
	}
}

func TestAuditCSV(t *testing.T) {
	d := newLogDB(t)
	out, errs, code := keybrake(t, nil, "audit", "--db", d.path, "--format", "csv", "--since", "5m")
	if code != 0 {
		t.Fatalf("audit: %d %q", code, errs)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := "time,id,agent,vendor,method,path,decision,code,rule,status,amount,currency,outcome,customer,reason,settled,event"
	if len(rows) != 8 || strings.Join(rows[0], ",") != header {
		t.Fatalf("%d rows, header %q", len(rows), rows[0])
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	partial := rows[2]
	if partial[col["id"]] != fmt.Sprint(d.ids["partial"]) || partial[col["amount"]] != "30.00" || partial[col["settled"]] != "25.00" ||
		partial[col["currency"]] != "USD" || partial[col["outcome"]] != "settled" || partial[col["decision"]] != "allowed" {
		t.Errorf("partial refund row %q", partial)
	}
	if ts, err := time.Parse(time.RFC3339Nano, partial[col["time"]]); err != nil || !ts.Equal(d.now.Add(-110*time.Second)) {
		t.Errorf("time %q: %v", partial[col["time"]], err)
	}
	capped := rows[3]
	if capped[col["decision"]] != "capped" || capped[col["code"]] != "keybrake_daily_cap" || capped[col["status"]] != "402" ||
		capped[col["rule"]] != "agents.refund-bot.stripe.daily_cap" || !strings.HasPrefix(capped[col["reason"]], "450.00 USD would") {
		t.Errorf("capped row %q", capped)
	}
	if kill := rows[6]; kill[col["event"]] != "kill_switch" || kill[col["decision"]] != "" {
		t.Errorf("event row %q", kill)
	}
	// A spreadsheet must not run what an agent wrote.
	if got := rows[7][col["customer"]]; got != `'=HYPERLINK("x")` {
		t.Errorf("customer cell %q", got)
	}
	// No records: the header alone.
	out, _, code = keybrake(t, nil, "audit", "--db", d.path, "--format", "csv", "--agent", "nobody")
	if code != 0 || out != header+"\n" {
		t.Errorf("empty csv: %d %q", code, out)
	}
}

func TestAuditTable(t *testing.T) {
	d := newLogDB(t)
	out, errs, code := keybrake(t, []string{"COLUMNS=140"}, "audit", "--db", d.path, "--since", "5m", "--format", "table")
	if code != 0 {
		t.Fatalf("audit: %d %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	head := regexp.MustCompile(`\s{2,}`).Split(lines[0], -1)
	if strings.Join(head, "|") != "TIME (UTC)|ID|AGENT|CALL|DECISION|AMOUNT|OUTCOME|REASON" {
		t.Errorf("header %q", head)
	}
	// Columns are aligned: every row's ID ends where the header's does.
	idEnd := strings.Index(lines[0], "ID") + 2
	for _, l := range lines[1:] {
		if utf8.RuneCountInString(l) > 140 {
			t.Errorf("line of %d runes in 140 columns: %q", utf8.RuneCountInString(l), l)
		}
		if l[idEnd-1] == ' ' || l[idEnd] != ' ' {
			t.Errorf("misaligned %q", l)
		}
		if strings.ContainsRune(l, 0x1b) {
			t.Errorf("an escape sequence reached the terminal: %q", l)
		}
	}
	partial := lines[2]
	for _, want := range []string{d.now.Add(-110 * time.Second).Format("2006-01-02 15:04:05"), "refund-bot", "stripe POST /v1/refunds",
		"allowed 200", "30.00 USD", "settled 25.00 USD"} {
		if !strings.Contains(partial, want) {
			t.Errorf("row %q lacks %q", partial, want)
		}
	}
	if !strings.Contains(lines[4], "unknown 40.00 USD?") || !strings.Contains(lines[6], "kill_switch") {
		t.Errorf("unknown and event rows:\n%s\n%s", lines[4], lines[6])
	}
	// The reason is cut to fit, and marked.
	if capped := lines[3]; !strings.Contains(capped, "keybrake_daily_cap: 4") || !strings.HasSuffix(capped, "~") {
		t.Errorf("capped row %q", capped)
	}
	// Narrower, the text columns give way; amounts never do.
	out, _, _ = keybrake(t, []string{"COLUMNS=120"}, "audit", "--db", d.path, "--since", "5m", "--format", "table")
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if utf8.RuneCountInString(l) > 120 {
			t.Errorf("line of %d runes in 120 columns: %q", utf8.RuneCountInString(l), l)
		}
	}
	if !strings.Contains(out, " 450.00 USD ") || !strings.Contains(out, "unknown 40.00 USD?") {
		t.Errorf("amounts cut in 120 columns:\n%s", out)
	}
	// Into a pipe without $COLUMNS, reasons are whole.
	out, _, _ = keybrake(t, nil, "audit", "--db", d.path, "--decision", "capped", "--format", "table")
	if !strings.Contains(out, "over its daily cap of 500.00 USD;  [31mred [0m") {
		t.Errorf("whole reason:\n%s", out)
	}
}

func TestAuditMisuse(t *testing.T) {
	d := newLogDB(t)
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"--format", "xml"}, `--format "xml": want table, jsonl, csv`},
		{[]string{"--since", "last tuesday"}, `--since "last tuesday": want a duration`},
		{[]string{"--since", "3 fortnights"}, `--since "3 fortnights": want a duration`},
		{[]string{"-n", "-1", "--follow"}, `-n -1: want a count`},
		{[]string{"--since", "-5m"}, "without a sign"},
		{[]string{"--since", "1m", "--until", "5m"}, "is not before --until"},
		{[]string{"--decision", "maybe"}, `--decision "maybe"`},
		{[]string{"--limit", "-1"}, "--limit -1"},
		{[]string{"refund-bot"}, `unexpected argument "refund-bot" (filters are flags: --agent refund-bot)`},
		{[]string{"--frobnicate"}, "unknown flag: --frobnicate"},
	}
	for _, tt := range tests {
		_, errs, code := keybrake(t, nil, append([]string{"audit", "--db", d.path}, tt.args...)...)
		if code != 2 || !strings.Contains(errs, tt.says) || !strings.Contains(errs, "see 'keybrake audit --help'") {
			t.Errorf("audit %q: %d %q", tt.args, code, errs)
		}
	}
	out, _, code := keybrake(t, nil, "audit", "-h")
	if code != 0 || !strings.Contains(out, "--follow") || !strings.Contains(out, "$KEYBRAKE_DB") {
		t.Errorf("audit -h: %d %q", code, out)
	}
	// A database that is not there is a failure, with the next step.
	_, errs, code := keybrake(t, nil, "audit", "--db", filepath.Join(t.TempDir(), "none.db"))
	if code != 1 || !strings.Contains(errs, "no database at") || !strings.Contains(errs, "--db or $KEYBRAKE_DB") {
		t.Errorf("missing database: %d %q", code, errs)
	}
}

func TestAuditSummary(t *testing.T) {
	d := newLogDB(t)
	out, errs, code := keybrake(t, nil, "audit", "summary", "--db", d.path, "--since", "15m", "--by", "1m")
	if code != 0 {
		t.Fatalf("summary: %d %q", code, errs)
	}
	t.Logf("\n%s", out)
	total := regexp.MustCompile(`(?m)^total\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$`).FindStringSubmatch(out)
	// allowed: five refunds; blocked: one; capped: one.
	if total == nil || strings.Join(total[1:], " ") != "5 1 0 1 0 0 0" {
		t.Errorf("totals %q", total)
	}
	periods := regexp.MustCompile(`(?m)^(\d{2}:\d{2}|\d{4}-\d{2}-\d{2} \d{2}:\d{2})\s+\d`).FindAllString(out, -1)
	if len(periods) < 15 || len(periods) > 16 {
		t.Errorf("%d periods of a minute in 15 minutes", len(periods))
	}
	for _, want := range []string{
		"ALLOWED", "BLOCKED", "SCOPED", "CAPPED", "REVOKED", "HELD", "ERROR",
		"refund-bot stripe: 90.00 USD  (settled 50.00 USD; unknown 40.00 USD",
		"in flight (reserved, no response yet): refund-bot stripe 10.00 USD",
		fmt.Sprintf("first capped call: %s #%d refund-bot stripe POST /v1/refunds, rule agents.refund-bot.stripe.daily_cap, code keybrake_daily_cap: 450.00 USD would",
			d.now.Add(-100*time.Second).Format("2006-01-02 15:04:05"), d.ids["capped"]),
		fmt.Sprintf("#%d kill_switch: kill switch /etc/keybrake.yaml.halt: present: every agent", d.ids["kill"]),
		"from " + d.path + " (read-only; there is no " + d.path + ".sock)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// Periods of ten seconds hold one record each (they are ten seconds
	// apart): each shows what its call moved.
	out, _, code = keybrake(t, nil, "audit", "summary", "--db", d.path, "--since", "3m", "--by", "10s")
	for _, re := range []string{
		`(?m)^\d\d:\d\d:\d0\s+1\s+0\s+0\s+0\s+0\s+0\s+0\s+refund-bot stripe 20\.00 USD$`,
		`(?m)^\d\d:\d\d:\d0\s+1\s+0\s+0\s+0\s+0\s+0\s+0\s+refund-bot stripe 25\.00 USD$`,
		`(?m)^\d\d:\d\d:\d0\s+0\s+0\s+0\s+1\s+0\s+0\s+0$`,
		`(?m)^\d\d:\d\d:\d0\s+1\s+0\s+0\s+0\s+0\s+0\s+0\s+refund-bot stripe 40\.00 USD$`,
		`(?m)^\d\d:\d\d:\d0\s+1\s+0\s+0\s+0\s+0\s+0\s+0$`, // in flight: nothing moved yet
	} {
		if code != 0 || !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("10s summary (%d) lacks %s:\n%s", code, re, out)
		}
	}

	// Filters narrow the calls; events stay.
	out, _, code = keybrake(t, nil, "audit", "summary", "--db", d.path, "--agent", "other-bot", "--since", "5m", "--by", "5m")
	total = regexp.MustCompile(`(?m)^total\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$`).FindStringSubmatch(out)
	if code != 0 || total == nil || strings.Join(total[1:], " ") != "0 1 0 0 0 0 0" || !strings.Contains(out, "kill_switch") ||
		!strings.Contains(out, "money moved: none") || !strings.Contains(out, "first capped call: none") || !strings.Contains(out, "(agent other-bot)") {
		t.Errorf("filtered summary (%d):\n%s", code, out)
	}

	for _, args := range [][]string{{"--by", "1ms"}, {"--since", "30d"}, {"--since", "1000h", "--by", "1m"}, {"extra"}} {
		_, errs, code := keybrake(t, nil, append([]string{"audit", "summary", "--db", d.path}, args...)...)
		if code != 2 || !strings.Contains(errs, "see 'keybrake audit summary --help'") {
			t.Errorf("summary %q: %d %q", args, code, errs)
		}
	}
}

// tamper edits a closed database with bbolt directly, as someone with
// access to the file would: one bit of record id's stored bytes flips.
func tamper(t *testing.T, path string, id uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, byte(id)}
		v := append([]byte(nil), b.Get(k)...)
		if len(v) == 0 {
			return errors.New("no such record")
		}
		v[len(v)-1] ^= 1
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerify(t *testing.T) {
	d := newLogDB(t)
	out, errs, code := keybrake(t, nil, "audit", "verify", "--db", d.path)
	if code != 0 || !regexp.MustCompile(`audit chain intact: \d+ journal entries and 8 records checked\nhead: entry \d+, hash [0-9a-f]{64}\n`).MatchString(out) {
		t.Fatalf("verify: %d %q\n%s", code, errs, out)
	}
	tamper(t, d.path, d.ids["partial"])
	out, errs, code = keybrake(t, nil, "audit", "verify", "--db", d.path)
	for _, want := range []string{"audit chain BROKEN", "first break: altered", fmt.Sprintf("record: %d", d.ids["partial"]),
		fmt.Sprintf("record %d was altered", d.ids["partial"])} {
		if !strings.Contains(out, want) {
			t.Errorf("verify of a tampered log lacks %q:\n%s", want, out)
		}
	}
	if code != 1 || !strings.Contains(errs, "changed outside Keybrake") {
		t.Errorf("verify of a tampered log: exit %d, %q", code, errs)
	}
}

const statusPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      daily_count: 40
      allow: [POST /v1/refunds]
  texter:
    revoked: true
    twilio:
      daily_cap: 10.00 USD
      allow: ["POST /2010-04-01/Accounts/{sid}/Messages.json"]
`

func TestStatusOffline(t *testing.T) {
	d := newLogDB(t)
	p := writePolicy(t, statusPolicy)
	pol, _ := policy.Load(p)
	out, errs, code := keybrake(t, []string{"KEYBRAKE_POLICY=" + p}, "status", "--db", d.path)
	if code != 0 {
		t.Fatalf("status: %d %q\n%s", code, errs, out)
	}
	t.Logf("\n%s", out)
	for _, re := range []string{
		`keybrake status at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(day ` + d.day + `\)`,
		`policy ` + pol.Hash + ` in force \(` + regexp.QuoteMeta(p) + `\)`,
		`halted: no`,
		`REVOKED \(their calls answer 401\):\n  texter  by the policy \(revoked: true\)\n`,
		`refund-bot\s+stripe\s+daily_cap\s+100\.00 USD\s+500\.00 USD\s+20%\s+\[####\.{16}\]\s+settled 50\.00, pending 10\.00, unknown 40\.00`,
		`refund-bot\s+stripe\s+daily_count\s+0 units\s+40 units\s+0%`,
		`texter\s+twilio\s+daily_cap\s+0\.00 USD\s+10\.00 USD\s+0%`,
		`open reservations: 1 reserved \(in flight\), 1 unknown \(sent, outcome never learnt\), the oldest from .* UTC, holding 50\.00 USD`,
		`kill switch ` + regexp.QuoteMeta(p) + `\.halt: absent`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s", re)
		}
	}

	// The kill switch names refund-bot; then everyone.
	os.WriteFile(p+".halt", []byte("refund-bot\n"), 0o600)
	out, _, code = keybrake(t, nil, "status", "--db", d.path, "--policy", p)
	if code != 0 || !strings.Contains(out, "REVOKED (their calls answer 401):\n  refund-bot  by the kill switch "+p+".halt\n  texter      by the policy (revoked: true)\n") ||
		!strings.Contains(out, "halted: no") || !strings.Contains(out, "present: halts refund-bot") {
		t.Errorf("kill switch for refund-bot (%d):\n%s", code, out)
	}
	// A trip's line: tripped, not revoked, and no one else halted.
	os.WriteFile(p+".halt", []byte("refund-bot # tripped by agents.refund-bot.stripe.rate[0] at 2026-12-03T10:00:02Z\n"), 0o600)
	out, _, code = keybrake(t, nil, "status", "--db", d.path, "--policy", p)
	if code != 0 || !strings.Contains(out, "TRIPPED by their own rate limits (halted until 'keybrake resume AGENT'):\n  refund-bot  by agents.refund-bot.stripe.rate[0], kept in the kill switch "+p+".halt since 2026-12-03T10:00:02Z\n") ||
		!strings.Contains(out, "halted: no") || strings.Contains(out, "refund-bot  by the kill switch") {
		t.Errorf("kill switch of a trip (%d):\n%s", code, out)
	}
	os.WriteFile(p+".halt", nil, 0o600)
	out, _, code = keybrake(t, nil, "status", "--db", d.path, "--policy", p)
	if code != 0 || !strings.Contains(out, "HALTED by the kill switch "+p+".halt: every call of every agent is refused\n") {
		t.Errorf("kill switch for all (%d):\n%s", code, out)
	}
	// The policy's own halt: true is the source even with the kill switch present.
	halting := writePolicy(t, strings.Replace(statusPolicy, "version: 1\n", "version: 1\nhalt: true\n", 1))
	os.WriteFile(halting+".halt", nil, 0o600)
	out, _, code = keybrake(t, nil, "status", "--db", d.path, "--policy", halting)
	if code != 0 || !strings.Contains(out, "HALTED by the policy (halt: true): every call of every agent is refused\n") {
		t.Errorf("halt: true (%d):\n%s", code, out)
	}

	// Without the policy file, no caps: a failure that says what to do.
	out, errs, code = keybrake(t, nil, "status", "--db", d.path, "--policy", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 1 || !strings.Contains(errs, "no caps shown") || !strings.Contains(errs, "--policy") || !strings.Contains(out, "NO POLICY") ||
		!strings.Contains(out, "1 reserved") {
		t.Errorf("no policy: %d %q\n%s", code, errs, out)
	}
}

// agent is the test process acting as the agent: it holds the database
// open, so the file is locked, and serves its Brake's socket.
type agent struct {
	s   *bolt.Store
	srv *admin.Server
}

func startAgent(t *testing.T, path string, state admin.State) *agent {
	t.Helper()
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{s: s}
	a.srv, err = admin.Serve(path+".sock", admin.Handler(&admin.Local{Store: s, State: func() admin.State { return state }}))
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	a.srv.Close()
	a.s.Close()
}

func (a *agent) refuse(t *testing.T, agentName string) uint64 {
	t.Helper()
	id, err := a.s.Append(context.Background(), &audit.Record{Time: time.Now(), Agent: agentName, Vendor: "stripe", Method: "POST",
		Path: "/v1/refunds", Decision: policy.Revoked, Code: "keybrake_revoked", Status: 401, Outcome: audit.None})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAgainstARunningAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	brakePolicy, err := policy.Parse("/srv/agent/keybrake.yaml", []byte(statusPolicy))
	if err != nil {
		t.Fatal(err)
	}
	// As a Brake passes it: the policy in force carries its stops.
	brakePolicy = brakePolicy.WithStops(policy.Stops{Halt: "Brake.Halt",
		Revoked: map[string]string{"refund-bot": "Brake.Revoke and the kill switch /srv/agent/keybrake.yaml.halt"}})
	a := startAgent(t, path, admin.State{Policy: brakePolicy})
	written := time.Now().UTC()
	ids := writeLog(t, a.s, written)

	// The file is locked: only the socket can answer, within a second.
	start := time.Now()
	out, errs, code := keybrake(t, nil, "audit", "--db", path, "--since", "5m", "--format", "jsonl")
	if took := time.Since(start); took > time.Second {
		t.Errorf("audit --since 5m took %v", took)
	}
	if code != 0 || len(recordsOf(t, out)) != 7 {
		t.Fatalf("audit through the socket: %d %q\n%s", code, errs, out)
	}
	out, errs, code = keybrake(t, nil, "audit", "summary", "--db", path, "--since", "5m")
	if code != 0 || !strings.Contains(out, "from the agent's Brake on "+path+".sock") || !strings.Contains(out, "refund-bot stripe: 85.00 USD") {
		t.Errorf("summary through the socket: %d %q\n%s", code, errs, out)
	}

	// The Brake's own state, not the policy file's given on the command
	// line (which does not even exist).
	out, errs, code = keybrake(t, nil, "status", "--db", path, "--policy", filepath.Join(t.TempDir(), "other.yaml"))
	if code != 0 || !strings.Contains(out, "policy "+brakePolicy.Hash+" in force (/srv/agent/keybrake.yaml)") ||
		!strings.Contains(out, "HALTED by Brake.Halt: every call") || !strings.Contains(out, "from the agent's Brake on") || strings.Contains(out, ".halt:") ||
		!strings.Contains(out, "  refund-bot  by Brake.Revoke and the kill switch /srv/agent/keybrake.yaml.halt\n  texter      by the policy (revoked: true)\n") ||
		!strings.Contains(out, "holding 50.00 USD") {
		t.Errorf("status through the socket: %d %q\n%s", code, errs, out)
	}

	out, errs, code = keybrake(t, nil, "audit", "verify", "--db", path)
	if code != 0 || !strings.Contains(out, "audit chain intact") || !strings.Contains(out, "8 records") {
		t.Errorf("verify through the socket: %d %q\n%s", code, errs, out)
	}

	// Follow: the backlog, then a record the agent writes afterwards.
	cmd := exec.Command(bin, "audit", "--db", path, "--follow", "--format", "jsonl", "--agent", "refund-bot",
		"--since", written.Add(-95*time.Second).Format(time.RFC3339Nano))
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(what string) audit.Record {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: the follow ended: %s", what, stderr.String())
			}
			return recordsOf(t, l)[0]
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing within 5s", what)
		}
		return audit.Record{}
	}
	// Since then: the unknown refund and, after SettleWait, the one in
	// flight.
	if r := next("backlog"); r.ID != ids["unknown"] {
		t.Errorf("backlog record %d, want %d", r.ID, ids["unknown"])
	}
	if r := next("backlog"); r.ID != ids["inflight"] || r.Outcome != audit.Reserved {
		t.Errorf("backlog record %d %s, want %d reserved", r.ID, r.Outcome, ids["inflight"])
	}
	id := a.refuse(t, "refund-bot")
	if r := next("new record"); r.ID != id {
		t.Errorf("followed record %d, want %d", r.ID, id)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("follow after ^C: %v %s", err, stderr.String())
	}

	// The agent stops serving but keeps the file: the CLI says so, at once.
	a.srv.Close()
	start = time.Now()
	_, errs, code = keybrake(t, nil, "audit", "--db", path)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("the locked-database message took %v", took)
	}
	if code != 1 || !strings.Contains(errs, path+" is locked by another process") || !strings.Contains(errs, "there is no "+path+".sock") ||
		!strings.Contains(errs, "admin socket was turned off") {
		t.Errorf("locked database: %d %q", code, errs)
	}
	// --follow too, after one more look for a Brake that may be starting.
	start = time.Now()
	_, errs, code = keybrake(t, nil, "audit", "--db", path, "--follow")
	if took := time.Since(start); code != 1 || !strings.Contains(errs, "is locked by another process") || took > 4*time.Second {
		t.Errorf("follow of a locked database: %d after %v: %q", code, took, errs)
	}
	// A socket left behind by an agent that died changes nothing.
	l, err := net.Listen("unix", path+".sock")
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, errs, code = keybrake(t, nil, "status", "--db", path)
	if code != 1 || !strings.Contains(errs, "nothing answers on "+path+".sock") {
		t.Errorf("stale socket, locked database: %d %q", code, errs)
	}
	// Once the agent is gone, the file answers, stale socket or not.
	a.s.Close()
	out, errs, code = keybrake(t, nil, "audit", "--db", path, "--format", "jsonl")
	if code != 0 || len(recordsOf(t, out)) != 9 {
		t.Errorf("after the agent stopped: %d %q", code, errs)
	}
}

// TestFollowAcrossAgentRestarts: --follow polls the file while no agent
// runs, moves to the socket when one starts and back when it stops.
func TestFollowAcrossAgentRestarts(t *testing.T) {
	d := newLogDB(t)
	cmd := exec.Command(bin, "audit", "--db", d.path, "--follow", "--format", "jsonl", "--vendor", "stripe", "--since", "1s")
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan audit.Record, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r audit.Record
			json.Unmarshal(sc.Bytes(), &r)
			lines <- r
		}
		close(lines)
	}()
	expect := func(id uint64, what string) {
		t.Helper()
		select {
		case r, ok := <-lines:
			if !ok || r.ID != id {
				t.Fatalf("%s: got record %d (open %v), want %d; stderr: %s", what, r.ID, ok, id, stderr.String())
			}
		case <-time.After(8 * time.Second):
			t.Fatalf("%s: nothing within 8s; stderr: %s", what, stderr.String())
		}
	}
	// Offline: a record written by a short-lived process shows within
	// the file's one-second poll.
	time.Sleep(1500 * time.Millisecond)
	s, err := bolt.Open(d.path, &bolt.Options{LockTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{s: s}
	offline := a.refuse(t, "refund-bot")
	s.Close()
	expect(offline, "offline record")

	// An agent starts: the file is locked, its Brake answers.
	a = startAgent(t, d.path, admin.State{})
	live := a.refuse(t, "refund-bot")
	expect(live, "record from the running agent")

	// It stops: back to the file.
	a.stop()
	s, err = bolt.Open(d.path, &bolt.Options{LockTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a = &agent{s: s}
	after := a.refuse(t, "refund-bot")
	s.Close()
	expect(after, "record after the agent stopped")

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("follow after SIGTERM: %v", err)
	}
	t.Logf("stderr:\n%s", stderr.String())
	if !strings.Contains(stderr.String(), "following its Brake") && !strings.Contains(stderr.String(), "trying its Brake") {
		t.Errorf("no note of the move to the socket: %q", stderr.String())
	}
	select {
	case r, ok := <-lines:
		if ok {
			t.Errorf("an extra record %d: records are passed on once", r.ID)
		}
	case <-time.After(time.Second):
	}
}

func TestFollowTableWithLimit(t *testing.T) {
	d := newLogDB(t)
	// Streaming, a table cannot size its columns from the rows: it uses
	// their maxima, narrowed to the terminal, and ends after --limit.
	start := time.Now()
	out, errs, code := keybrake(t, []string{"COLUMNS=130"}, "audit", "--db", d.path, "--follow", "--limit", "2", "--since", "5m", "--format", "table")
	if code != 0 || time.Since(start) > 3*time.Second {
		t.Fatalf("follow --limit 2: %d after %v: %q", code, time.Since(start), errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME (UTC)") || !strings.Contains(lines[1], "settled 20.00 USD") ||
		!strings.Contains(lines[2], "settled 25.00 USD") {
		t.Fatalf("follow table:\n%s", out)
	}
	for _, l := range lines {
		if utf8.RuneCountInString(l) > 130 {
			t.Errorf("line of %d runes in 130 columns: %q", utf8.RuneCountInString(l), l)
		}
	}
	// csv streams its header first.
	out, _, code = keybrake(t, nil, "audit", "--db", d.path, "--follow", "--limit", "1", "--format", "csv", "--agent", "other-bot")
	if rows, err := csv.NewReader(strings.NewReader(out)).ReadAll(); code != 0 || err != nil || len(rows) != 2 || rows[0][0] != "time" {
		t.Errorf("follow csv: %d %v\n%s", code, err, out)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollowStartsWithTheLastRecords(t *testing.T) {
	d := newLogDB(t)
	ids := func(out string) []uint64 {
		var got []uint64
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r struct {
				ID uint64 `json:"id"`
			}
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%v: %q", err, l)
			}
			got = append(got, r.ID)
		}
		return got
	}
	// No --since: the last -n records written (20 by default: all 8
	// here; record 8 was written last, for a call that started long
	// before), in the order written, then what comes (--limit ends it).
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "3", "--limit", "3"}, "[6 7 8]"},
		{[]string{"--limit", "7"}, "[1 2 3 4 5 6 7]"},
		{[]string{"-n", "2", "--limit", "2", "--agent", "refund-bot"}, "[5 8]"},
	} {
		args := append([]string{"audit", "--db", d.path, "--follow"}, tt.args...)
		out, errs, code := keybrake(t, nil, args...)
		if got := fmt.Sprint(ids(out)); code != 0 || got != tt.want {
			t.Errorf("%v: %d %s, want %s (%s)", tt.args, code, got, tt.want, errs)
		}
	}
}

// TestAuditByRun: --run and --principal select the calls made for a run
// and on behalf of someone.
func TestAuditByRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keybrake.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, tag := range [][2]string{{"ticket-1", "alice@example.com"}, {"ticket-2", "alice@example.com"}, {"ticket-1", "bob@example.com"}, {"", ""}} {
		r := &audit.Record{Time: now.Add(time.Duration(i-10) * time.Second), Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds",
			Decision: policy.Capped, Code: "keybrake_run_cap", Outcome: audit.None, Run: tag[0], Principal: tag[1]}
		if _, err := s.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--run", "ticket-1"}, "ticket-1 alice@example.com,ticket-1 bob@example.com"},
		{[]string{"--principal", "alice@example.com"}, "ticket-1 alice@example.com,ticket-2 alice@example.com"},
		{[]string{"--run", "ticket-1", "--principal", "bob@example.com"}, "ticket-1 bob@example.com"},
		{[]string{"--run", "ticket-9"}, ""},
	} {
		out, errs, code := keybrake(t, nil, append([]string{"audit", "--db", path, "--format", "jsonl", "--since", "1h"}, c.args...)...)
		if code != 0 {
			t.Fatalf("audit %q: %d %q", c.args, code, errs)
		}
		var got []string
		for _, r := range recordsOf(t, out) {
			got = append(got, r.Run+" "+r.Principal)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("audit %q: %q, want %q", c.args, got, c.want)
		}
	}
}
