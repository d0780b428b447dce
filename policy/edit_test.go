package policy

import (
	"strings"
	"testing"
)

const editable = `# Keybrake policy for the support agents.
version: 1
agents:
  # The refund agent: capped hard.
  refund-bot:
    stripe:
      daily_cap: 500.00 USD          # all money this agent moves on Stripe per UTC day
      allow:
        - POST /v1/refunds
  billing-bot:
    revoked: false   # was revoked in March
    stripe:
      daily_cap: 100000 JPY
      allow: [POST /v1/charges]
  flow-bot: {stripe: {allow: [POST /v1/refunds]}}
`

func TestSetRevoked(t *testing.T) {
	out, err := SetRevoked("k.yaml", []byte(editable), "refund-bot", true)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(editable, "  refund-bot:\n", "  refund-bot:\n    revoked: true\n", 1)
	if string(out) != want {
		t.Fatalf("revoke:\n%s\nwant:\n%s", out, want)
	}
	// Restoring gives back the file as it was, comments and all.
	back, err := SetRevoked("k.yaml", out, "refund-bot", false)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != editable {
		t.Fatalf("restore:\n%s", back)
	}
	// An existing value is replaced in place, its comment kept.
	out, err = SetRevoked("k.yaml", []byte(editable), "billing-bot", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "    revoked: true   # was revoked in March\n") {
		t.Fatalf("in place:\n%s", out)
	}
	// Already in the asked state: unchanged.
	same, err := SetRevoked("k.yaml", []byte(editable), "refund-bot", false)
	if err != nil || string(same) != editable {
		t.Fatalf("no-op restore changed the file: %v", err)
	}
}

func TestSetRevokedRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ data, agent, want string }{
		"unknown agent":  {editable, "nobody", `agent "nobody" is not in the policy`},
		"flow mapping":   {editable, "flow-bot", "not written as a block mapping"},
		"invalid policy": {"version: 2\nagents: {}\n", "a", "must be valid before it is edited"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := SetRevoked("k.yaml", []byte(tc.data), tc.agent, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSetHalt(t *testing.T) {
	out, err := SetHalt("k.yaml", []byte(editable), true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("k.yaml", out)
	if err != nil || !p.Halt {
		t.Fatalf("halt: %v %v", p, err)
	}
	if !strings.HasPrefix(string(out), "# Keybrake policy for the support agents.\nhalt: true\nversion: 1\n") {
		t.Fatalf("halt placed:\n%s", out)
	}
	back, err := SetHalt("k.yaml", out, false)
	if err != nil || string(back) != editable {
		t.Fatalf("resume: %v\n%s", err, back)
	}
}

func TestWithRevocations(t *testing.T) {
	p, err := Parse("k.yaml", []byte(editable))
	if err != nil {
		t.Fatal(err)
	}
	if p.WithRevocations(false, nil) != p || p.WithRevocations(false, []string{"nobody"}) != p {
		t.Fatal("no override made a new policy")
	}
	q := p.WithRevocations(false, []string{"refund-bot"})
	if !q.Agents["refund-bot"].Revoked || p.Agents["refund-bot"].Revoked {
		t.Fatal("revocation not applied, or applied to the original")
	}
	if q.Hash != p.Hash+"+revoked:refund-bot" {
		t.Fatalf("hash %q", q.Hash)
	}
	v, _ := q.Authorize(Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds"})
	if v.Decision != Revoked {
		t.Fatalf("verdict %+v", v)
	}
	h := p.WithRevocations(true, nil)
	if !h.Halt || p.Halt || h.Hash != p.Hash+"+halt" {
		t.Fatalf("halt override: %v %q", h.Halt, h.Hash)
	}
}

func TestWithStopsNamesTheSource(t *testing.T) {
	p, err := Parse("k.yaml", []byte(editable))
	if err != nil {
		t.Fatal(err)
	}
	call := Request{Agent: "refund-bot", Vendor: "stripe", Method: "POST", Path: "/v1/refunds"}
	for _, tt := range []struct {
		stops Stops
		want  string
	}{
		{Stops{Halt: "the kill switch /etc/k.yaml.halt"}, "every agent is halted by the kill switch /etc/k.yaml.halt"},
		{Stops{Halt: "Brake.Halt"}, "every agent is halted by Brake.Halt"},
		{Stops{Revoked: map[string]string{"refund-bot": "Brake.Revoke"}}, "agent refund-bot is revoked by Brake.Revoke"},
	} {
		v, _ := p.WithStops(tt.stops).Authorize(call)
		if v.Decision != Revoked || v.Reason != tt.want {
			t.Errorf("%+v: %+v, want the reason %q", tt.stops, v, tt.want)
		}
	}
	if p.WithStops(Stops{}) != p {
		t.Error("no stop made a new policy")
	}
}
