package policy

import (
	"strings"
	"testing"

	"github.com/keybrake/keybrake/money"
)

const scopedPolicy = `version: 1
agents:
  refund-bot:
    stripe:
      daily_cap: 500.00 USD
      allow: [POST /v1/refunds]
      customers:
        created_by_agent: true
        ids: [cus_A, cus_B]
        metadata: {cohort: beta}
        daily_cap: 50.00 USD
        daily_count: 3
      accounts:
        ids: [acct_1]
  platform-bot:
    stripe:
      allow: [POST /v1/refunds]
      accounts:
        ids: [acct_1]
        platform: true
      customers:
        allow_no_customer: true
        max_refunds_per_charge: 2
  sms-bot:
    twilio:
      allow: [POST /x]
      to: ["+1*", "+447700900123"]
      from: [+15550001111]
  mail-bot:
    resend:
      allow: [POST /emails]
      recipients: ["@example.com", "ops@partner.io"]
      from: ["alerts@example.com"]
      max_recipients: 3
`

func TestScope(t *testing.T) {
	p, err := Parse("s.yaml", []byte(scopedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	req := func(agent, vendor string) Request { return Request{Agent: agent, Vendor: vendor} }
	tests := []struct {
		name string
		r    Request
		s    Subject
		rule string // "" when allowed
	}{
		{"listed customer", req("refund-bot", "stripe"), Subject{Customer: "cus_A", Account: "acct_1"}, ""},
		{"customer it created", req("refund-bot", "stripe"), Subject{Customer: "cus_Z", CreatedByAgent: true, Account: "acct_1"}, ""},
		{"cohort by metadata", req("refund-bot", "stripe"), Subject{Customer: "cus_Z", Metadata: map[string]string{"cohort": "beta", "x": "y"}, Account: "acct_1"}, ""},
		{"other cohort", req("refund-bot", "stripe"), Subject{Customer: "cus_Z", Metadata: map[string]string{"cohort": "gamma"}, Account: "acct_1"}, "agents.refund-bot.stripe.customers"},
		{"stranger", req("refund-bot", "stripe"), Subject{Customer: "cus_C", Account: "acct_1"}, "agents.refund-bot.stripe.customers"},
		{"no customer", req("refund-bot", "stripe"), Subject{NoCustomer: true, Account: "acct_1"}, "agents.refund-bot.stripe.customers"},
		{"every customer", req("refund-bot", "stripe"), Subject{AllCustomers: true, Account: "acct_1"}, "agents.refund-bot.stripe.customers"},
		{"touches no customer", req("refund-bot", "stripe"), Subject{Account: "acct_1"}, ""},
		{"foreign account", req("refund-bot", "stripe"), Subject{Customer: "cus_A", Account: "acct_2"}, "agents.refund-bot.stripe.accounts"},
		{"platform not allowed", req("refund-bot", "stripe"), Subject{Customer: "cus_A"}, "agents.refund-bot.stripe.accounts"},
		{"platform allowed", req("platform-bot", "stripe"), Subject{NoCustomer: true}, ""},
		{"us number by prefix", req("sms-bot", "twilio"), Subject{Recipients: []string{"+15551234567"}, Senders: []string{"+15550001111"}}, ""},
		{"uk number exactly", req("sms-bot", "twilio"), Subject{Recipients: []string{"+447700900123"}}, ""},
		{"premium-rate destination", req("sms-bot", "twilio"), Subject{Recipients: []string{"+882345678901"}}, "agents.sms-bot.twilio.to"},
		{"uk number not listed", req("sms-bot", "twilio"), Subject{Recipients: []string{"+447700900124"}}, "agents.sms-bot.twilio.to"},
		{"other sender", req("sms-bot", "twilio"), Subject{Recipients: []string{"+15551234567"}, Senders: []string{"+15559999999"}}, "agents.sms-bot.twilio.from"},
		{"recipients in domain", req("mail-bot", "resend"), Subject{Recipients: []string{"a@example.com", "ops@partner.io"}, Senders: []string{"alerts@example.com"}, MostRecipients: 2}, ""},
		{"subdomain is another domain", req("mail-bot", "resend"), Subject{Recipients: []string{"a@mail.example.com"}}, "agents.mail-bot.resend.recipients"},
		{"one stranger in a batch", req("mail-bot", "resend"), Subject{Recipients: []string{"a@example.com", "x@gmail.com"}}, "agents.mail-bot.resend.recipients"},
		{"broadcast audience unseen", req("mail-bot", "resend"), Subject{RecipientsUnknown: true}, "agents.mail-bot.resend.recipients"},
		{"too many recipients", req("mail-bot", "resend"), Subject{Recipients: []string{"a@example.com"}, MostRecipients: 4}, "agents.mail-bot.resend.max_recipients"},
		{"other sender address", req("mail-bot", "resend"), Subject{Recipients: []string{"a@example.com"}, Senders: []string{"ceo@example.com"}}, "agents.mail-bot.resend.from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.Scope(tt.r, tt.s)
			if tt.rule == "" {
				if v.Decision != Allowed {
					t.Fatalf("refused: %+v", v)
				}
				return
			}
			if v.Decision != Scoped || v.Rule != tt.rule || v.Code != "keybrake_out_of_scope" || v.Reason == "" {
				t.Fatalf("verdict %+v, want scoped by %s", v, tt.rule)
			}
		})
	}
}

func TestScopeLimits(t *testing.T) {
	p, err := Parse("s.yaml", []byte(scopedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	r := Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds", Customer: "cus_A", Account: "acct_1", RefundOf: "ch_1"}
	_, rule := p.Authorize(r)
	limits, v := p.Limits(r, rule, usdAmount(1000), 1, "2026-11-25")
	if v.Decision != Allowed {
		t.Fatal(v)
	}
	keys := map[string]Limit{}
	for _, l := range limits {
		keys[l.Key] = l
	}
	for key, max := range map[string]int64{
		"customer/refund-bot/stripe/acct_1/cus_A/2026-11-25/USD": 50_000_000,
		"refunds/refund-bot/stripe/acct_1/ch_1":                  1, // default when scope is on
	} {
		if keys[key].Max != max {
			t.Errorf("limit %s = %+v, want max %d (limits %v)", key, keys[key], max, limits)
		}
	}
	r.Agent = "platform-bot"
	_, rule = p.Authorize(r)
	limits, _ = p.Limits(r, rule, usdAmount(0), 0, "2026-11-25")
	if len(limits) != 1 || limits[0].Max != 2 || !strings.HasPrefix(limits[0].Key, "refunds/") {
		t.Fatalf("raised max_refunds_per_charge: %+v", limits)
	}
}

func usdAmount(cents int64) (a money.Amount) {
	a.Micros, a.Currency = cents*10_000, "USD"
	return a
}

func TestScopeRefused(t *testing.T) {
	for name, text := range map[string]string{
		"admits nobody":   "version: 1\nagents:\n  a:\n    stripe:\n      customers:\n        daily_cap: 5.00 USD\n",
		"bad customer id": "version: 1\nagents:\n  a:\n    stripe:\n      customers:\n        ids: [ch_1]\n",
		"bad account id":  "version: 1\nagents:\n  a:\n    stripe:\n      accounts:\n        ids: [cus_1]\n",
		"to without *":    "version: 1\nagents:\n  a:\n    twilio:\n      to: [\"+44\"]\n",
		"upper-case mail": "version: 1\nagents:\n  a:\n    resend:\n      recipients: [Ops@example.com]\n",
		"scope elsewhere": "version: 1\nagents:\n  a:\n    twilio:\n      customers:\n        ids: [cus_1]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse("s.yaml", []byte(text)); err == nil {
				t.Fatal("parsed")
			}
		})
	}
}
