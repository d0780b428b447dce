package resend

import (
	"context"
	"reflect"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

// TestRecipientsAndSenders checks the addresses a recipient or sender
// scope compares: bare, lower case, deduplicated, sorted; to, cc and bcc
// of every email, never reply_to.
func TestRecipientsAndSenders(t *testing.T) {
	tests := []struct {
		name       string
		r          *vendors.Request
		recipients []string
		senders    []string
		most       int64
	}{
		{"one address", req("POST", "/emails", `{"from":"billing@acme.example","to":"a@x.example"}`),
			[]string{"a@x.example"}, []string{"billing@acme.example"}, 1},
		{"display names and brackets dropped",
			req("POST", "/emails", `{"from":"\"Acme Billing\" <Billing@Acme.Example>","to":["Ann <ANN@X.example>","<b@y.example>"],"cc":"Dee <d@z.example>","bcc":["c@z.example"]}`),
			[]string{"ann@x.example", "b@y.example", "c@z.example", "d@z.example"}, []string{"billing@acme.example"}, 4},
		{"reply_to is no recipient",
			req("POST", "/emails", `{"from":"a@acme.example","to":"b@y.example","reply_to":["boss@acme.example","r@evil.example"]}`),
			[]string{"b@y.example"}, []string{"a@acme.example"}, 1},
		{"the same address in to, cc and bcc, in any case, is one",
			req("POST", "/emails", `{"from":"a@acme.example","to":["b@y.example","B@Y.EXAMPLE"],"cc":"Bee <b@y.example>","bcc":"b@Y.example"}`),
			[]string{"b@y.example"}, []string{"a@acme.example"}, 4},
		{"batch: every email's",
			req("POST", "/emails/batch", `[{"from":"Acme <a@acme.example>","to":["z@x.example","b@y.example"],"cc":"c@z.example"},`+
				`{"from":"news@acme.example","to":"d@z.example","bcc":"B@y.example"},{"from":"A@ACME.example","to":"z@x.example"}]`),
			[]string{"b@y.example", "c@z.example", "d@z.example", "z@x.example"}, []string{"a@acme.example", "news@acme.example"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Recipients, tt.recipients) {
				t.Errorf("Recipients %q, want %q", c.Recipients, tt.recipients)
			}
			if !reflect.DeepEqual(c.Senders, tt.senders) {
				t.Errorf("Senders %q, want %q", c.Senders, tt.senders)
			}
			if c.MostRecipients != tt.most {
				t.Errorf("MostRecipients %d, want %d", c.MostRecipients, tt.most)
			}
			if c.SubjectLookup != "" || c.Customer != "" || c.NoCustomer || c.RefundOf != "" || c.Creates != "" {
				t.Errorf("a Resend call with a customer subject: %+v", c)
			}
		})
	}
}

// TestRecipientsCountUnchanged checks that deduplicating the scope's
// addresses leaves the quota count alone: Resend counts every entry.
func TestRecipientsCountUnchanged(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", "/emails", `{"from":"a@acme.example","to":["b@y.example","B@y.example"],"cc":"b@y.example"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Priced.Recipients != 3 || len(c.Recipients) != 1 {
		t.Errorf("Priced.Recipients %d, Recipients %q; want 3 counted, 1 address", c.Priced.Recipients, c.Recipients)
	}
}

// TestNoPartiesOutsideEmails checks that calls whose recipients Keybrake
// cannot see, broadcasts above all, carry no Recipients and no Senders,
// and that those which send say AudienceUnknown: a scope then refuses
// them rather than passing an empty list.
func TestNoPartiesOutsideEmails(t *testing.T) {
	for _, tt := range []struct {
		r     *vendors.Request
		sends bool
	}{
		{req("POST", "/broadcasts/"+uuid1+"/send", `{"scheduled_at":""}`), true},
		{req("POST", "/broadcasts", `{"segment_id":"`+uuid1+`","from":"a@x.example","subject":"s","send":true}`), true},
		{req("PATCH", "/broadcasts/"+uuid1, `{"from":"a@x.example"}`), false},
		{req("GET", "/emails/"+uuid1, ""), false},
		{req("POST", "/contacts", `{"email":"ann@x.example"}`), false},
	} {
		r := tt.r
		c, err := Vendor{}.Classify(r)
		if err != nil {
			t.Fatalf("%s %s: %v", r.Method, r.Path, err)
		}
		if c.Recipients != nil || c.Senders != nil || c.MostRecipients != 0 {
			t.Errorf("%s %s: Recipients %q, Senders %q, MostRecipients %d; want none", r.Method, r.Path, c.Recipients, c.Senders, c.MostRecipients)
		}
		if c.AudienceUnknown != tt.sends {
			t.Errorf("%s %s: AudienceUnknown %v, want %v", r.Method, r.Path, c.AudienceUnknown, tt.sends)
		}
	}
}

func TestResolveRefusesSubjectLookup(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", "/emails", emailJSON("")))
	if err != nil {
		t.Fatal(err)
	}
	scope := vendors.Need{Customer: true}
	if _, err := (Vendor{}).Resolve(context.Background(), c, scope, nil, nil); err != nil {
		t.Fatalf("Need.Customer alone: %v", err)
	}
	c.SubjectLookup = "GET /contacts/" + uuid1
	if _, err := (Vendor{}).Resolve(context.Background(), c, scope, nil, nil); err == nil {
		t.Fatal("Resolve accepted a subject lookup")
	}
}
