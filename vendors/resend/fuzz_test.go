package resend

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

// goEmail is an email as Go code would read it with encoding/json, which
// matches keys case-insensitively: what Keybrake accepts must read the
// same to it.
type goEmail struct {
	From string          `json:"from"`
	To   json.RawMessage `json:"to"`
	Cc   json.RawMessage `json:"cc"`
	Bcc  json.RawMessage `json:"bcc"`
}

// count returns how many addresses a to, cc or bcc holds.
func count(t *testing.T, raw json.RawMessage) int64 { return int64(len(entries(t, raw))) }

// entries returns the addresses of a to, cc or bcc as written.
func entries(t *testing.T, raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("accepted recipients %s that encoding/json cannot read: %v", raw, err)
	}
	return list
}

// checkParties checks Recipients or Senders against the entries
// encoding/json reads: sorted, distinct, lower case, bare; every entry is
// one of them, bare or as "... <address>", and each of them is some entry.
func checkParties(t *testing.T, what string, got, written []string) {
	t.Helper()
	if len(got) == 0 || len(got) > len(written) {
		t.Fatalf("%s %q for %d entries %q", what, got, len(written), written)
	}
	for i, a := range got {
		if i > 0 && got[i-1] >= a {
			t.Fatalf("%s %q: not sorted and distinct", what, got)
		}
		if a != strings.ToLower(a) || strings.ContainsAny(a, "<> \"") || strings.Count(a, "@") != 1 {
			t.Fatalf("%s %q: %q is not a bare lower-case address", what, got, a)
		}
	}
	used := map[string]bool{}
	for _, e := range written {
		e = strings.ToLower(e)
		found := false
		for _, a := range got {
			if e == a || strings.HasSuffix(e, "<"+a+">") {
				found, used[a] = true, true
				break
			}
		}
		if !found {
			t.Fatalf("%s %q: none is the address of %q", what, got, e)
		}
	}
	if len(used) != len(got) {
		t.Fatalf("%s %q: some are no entry of %q", what, got, written)
	}
}

// written returns every to, cc and bcc entry of m.
func written(t *testing.T, m goEmail) []string {
	var out []string
	for _, raw := range []json.RawMessage{m.To, m.Cc, m.Bcc} {
		out = append(out, entries(t, raw)...)
	}
	return out
}

// FuzzClassify checks that Classify never panics, refuses only with a
// *vendors.Invalid, and that what it accepts reads the same to
// encoding/json: one sender, the same number of recipients, valid JSON,
// bounded counts.
func FuzzClassify(f *testing.F) {
	f.Add("POST", "/emails", "", jsonType, "", "", []byte(`{"from":"Acme <billing@acme.example>","to":["a@x.example","b@y.example"],"cc":"c@z.example","subject":"hi"}`))
	f.Add("POST", "/emails", "", jsonType, "k1", "", []byte(`{"from":"a@x.example","to":"b@y.example","TO":"c@z.example"}`))
	f.Add("POST", "/emails/batch", "", jsonType, "", "permissive", []byte(`[{"from":"a@x.example","to":"b@y.example"},{"from":"a@x.example","to":["c@z.example"],"bcc":["d@z.example"]}]`))
	f.Add("POST", "/broadcasts/"+uuid1+"/send", "", jsonType, "", "", []byte(`{"broadcast_id":"`+uuid1+`","scheduled_at":""}`))
	f.Add("POST", "/broadcasts", "", jsonType, "", "", []byte(`{"segment_id":"`+uuid1+`","send":true}`))
	f.Add("GET", "/emails", "limit=10&after="+uuid1, "", "", "", []byte(nil))
	f.Add("PATCH", "/contacts/"+uuid1, "", jsonType+"; charset=utf-8", "", "", []byte(`{"properties":{"a":[1,{"b":null}]}}`))
	f.Add("POST", "/emails", "", jsonType, "", "", []byte(`{"from":"a@x.example","to":"b@y.example","headers":{"Bcc":"x@y.example"}}`))
	f.Fuzz(func(t *testing.T, method, path, query, contentType, idem, validation string, body []byte) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if idem != "" {
			h.Set("Idempotency-Key", idem)
		}
		if validation != "" {
			h.Set("X-Batch-Validation", validation)
		}
		r := &vendors.Request{Method: method, Host: APIHost, Path: path, Query: query, Header: h, Body: body}
		c, err := Vendor{}.Classify(r)
		if err != nil {
			var inv *vendors.Invalid
			if !errors.As(err, &inv) || !strings.HasPrefix(inv.Code, "keybrake_") || inv.Reason == "" {
				t.Fatalf("Classify refused with %T %v, want *vendors.Invalid keybrake_...", err, err)
			}
			return
		}
		for i := 0; i < len(path); i++ {
			if c := path[i]; c >= 'A' && c <= 'Z' || c >= 0x80 || c == '%' || c == '?' || c == '#' || c == ';' {
				t.Fatalf("accepted path %q", path)
			}
		}
		if len(body) > 0 && !json.Valid(body) {
			t.Fatalf("accepted a body encoding/json refuses: %q", body)
		}
		if len(c.IdempotencyKey) > maxIdemKey || (c.IdempotencyKey != "" && c.Operation != "emails.send" && c.Operation != "emails.batch") {
			t.Fatalf("IdempotencyKey %q on %q", c.IdempotencyKey, c.Operation)
		}
		if c.MovesMoney != (c.Priced != nil) || c.MovesMoney != (c.Count != 0) || c.Count < 0 && c.Priced.Quantity >= 0 {
			t.Fatalf("MovesMoney %v, Priced %+v, Count %d", c.MovesMoney, c.Priced, c.Count)
		}
		if c.MovesMoney && method != "POST" {
			t.Fatalf("a %s moves money", method)
		}
		switch c.Operation {
		case "emails.send":
			var m goEmail
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("encoding/json cannot read an accepted email: %v", err)
			}
			n := count(t, m.To) + count(t, m.Cc) + count(t, m.Bcc)
			if c.Count != 1 || c.Priced.Quantity != 1 || c.Priced.Recipients != n || n < 1 || n > 3*maxRecipients {
				t.Fatalf("Count %d, Priced %+v; encoding/json reads %d recipients", c.Count, c.Priced, n)
			}
			if c.Params.Get("from") != m.From || m.From == "" {
				t.Fatalf("Params from %q, encoding/json reads %q", c.Params.Get("from"), m.From)
			}
			checkParties(t, "Recipients", c.Recipients, written(t, m))
			checkParties(t, "Senders", c.Senders, []string{m.From})
			if c.MostRecipients != n {
				t.Fatalf("MostRecipients %d, encoding/json reads %d recipients", c.MostRecipients, n)
			}
		case "emails.batch":
			var ms []goEmail
			if err := json.Unmarshal(body, &ms); err != nil {
				t.Fatalf("encoding/json cannot read an accepted batch: %v", err)
			}
			var n int64
			var rcpt, from []string
			var most int64
			for _, m := range ms {
				rcpt = append(rcpt, written(t, m)...)
				from = append(from, m.From)
				most = max(most, int64(len(written(t, m))))
				n += count(t, m.To) + count(t, m.Cc) + count(t, m.Bcc)
				if m.From == "" {
					t.Fatal("an email without from")
				}
				if f := c.Params.Get("from"); f != "" && f != m.From {
					t.Fatalf("Params from %q, but an email is from %q", f, m.From)
				}
			}
			if c.Count != int64(len(ms)) || c.Count > maxBatch || c.Priced.Quantity != c.Count || c.Priced.Recipients != n || n < c.Count {
				t.Fatalf("Count %d, Priced %+v; encoding/json reads %d emails, %d recipients", c.Count, c.Priced, len(ms), n)
			}
			checkParties(t, "Recipients", c.Recipients, rcpt)
			checkParties(t, "Senders", c.Senders, from)
			if c.MostRecipients != most {
				t.Fatalf("MostRecipients %d, encoding/json reads at most %d in one email", c.MostRecipients, most)
			}
			if st, ok := c.State.(*state); !ok || st.items != c.Count {
				t.Fatalf("State %+v", c.State)
			}
		case "broadcasts.send", "broadcasts.create":
			if c.MovesMoney && (c.Priced.Item != "broadcast" || c.Priced.Quantity >= 0) {
				t.Fatalf("Priced %+v", c.Priced)
			}
		}
		// Only a broadcast that sends does so to an audience the request
		// does not show; every email names its own.
		if sends := c.MovesMoney && strings.HasPrefix(c.Operation, "broadcasts."); c.AudienceUnknown != sends {
			t.Fatalf("%q (MovesMoney %v) has AudienceUnknown %v", c.Operation, c.MovesMoney, c.AudienceUnknown)
		}
		if c.Operation != "emails.send" && c.Operation != "emails.batch" && (c.Recipients != nil || c.Senders != nil || c.MostRecipients != 0) {
			t.Fatalf("%q has Recipients %q, Senders %q, MostRecipients %d", c.Operation, c.Recipients, c.Senders, c.MostRecipients)
		}
		for k, vs := range c.Params {
			if len(vs) != 1 || k == "" {
				t.Fatalf("Params[%q] = %q", k, vs)
			}
		}
	})
}
