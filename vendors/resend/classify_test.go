package resend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

const (
	uuid1 = "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"
	uuid2 = "78261eea-8f8b-4381-83c6-79fa7120f1cf"
)

// req builds a request as the transport hands it over: a JSON
// Content-Type when there is a body, then any header pairs.
func req(method, path, body string, header ...string) *vendors.Request {
	r := &vendors.Request{Method: method, Host: APIHost, Path: path, Header: http.Header{}, Body: []byte(body)}
	if body != "" {
		r.Header.Set("Content-Type", jsonType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func withQuery(r *vendors.Request, q string) *vendors.Request { r.Query = q; return r }

// emailJSON is a minimal valid email with extra members appended.
func emailJSON(extra string) string {
	s := `{"from":"Acme <billing@acme.example>","to":["a@x.example"],"subject":"Invoice"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func batchJSON(n int, each func(i int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = emailJSON(each(i))
	}
	return "[" + strings.Join(items, ",") + "]"
}

func addressList(n int) string {
	a := make([]string, n)
	for i := range a {
		a[i] = fmt.Sprintf(`"u%d@x.example"`, i)
	}
	return "[" + strings.Join(a, ",") + "]"
}

func TestClassifyRefuses(t *testing.T) {
	send := func(body string) *vendors.Request { return req("POST", "/emails", body) }
	tests := []struct {
		name string
		r    *vendors.Request
		code string
	}{
		// Methods and paths.
		{"put", req("PUT", "/emails", emailJSON("")), codeBadMethod},
		{"lower-case method", req("post", "/emails", emailJSON("")), codeBadMethod},
		{"upper-case path", req("POST", "/EMAILS", emailJSON("")), codeBadPath},
		{"upper-case id", req("GET", "/emails/"+strings.ToUpper(uuid1), ""), codeBadPath},
		{"id not a uuid", req("GET", "/emails/re_123", ""), codeBadID},
		{"broadcast id not a uuid", req("POST", "/broadcasts/all/send", ""), codeBadID},
		{"second id not a uuid", req("GET", "/audiences/"+uuid1+"/contacts/ann", ""), codeBadID},
		{"contact by address", req("GET", "/audiences/"+uuid1+"/contacts/a@x.example", ""), codeBadPath},
		{"non-ascii path", req("GET", "/emails/\u0435", ""), codeBadPath},
		{"colon in path", req("POST", "/emails:send", emailJSON("")), codeBadPath},
		{"relative path", req("GET", "emails", ""), codeBadPath},
		{"get batch", req("GET", "/emails/batch", ""), codeBadID},

		// Content type, query, body placement.
		{"no content type", &vendors.Request{Method: "POST", Path: "/emails", Header: http.Header{}, Body: []byte(emailJSON(""))}, codeBadContentType},
		{"form content type", &vendors.Request{Method: "POST", Path: "/emails", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte(emailJSON(""))}, codeBadContentType},
		{"two content types", req("POST", "/emails", emailJSON(""), "Content-Type", jsonType), codeBadContentType},
		{"json with latin1", &vendors.Request{Method: "POST", Path: "/emails", Header: http.Header{"Content-Type": {"application/json; charset=latin1"}}, Body: []byte(emailJSON(""))}, codeBadContentType},
		{"json with extra param", &vendors.Request{Method: "POST", Path: "/emails", Header: http.Header{"Content-Type": {"application/json; charset=utf-8; x=y"}}, Body: []byte(emailJSON(""))}, codeBadContentType},
		{"text content type on empty post", &vendors.Request{Method: "POST", Path: "/emails/" + uuid1 + "/cancel", Header: http.Header{"Content-Type": {"text/plain"}}}, codeBadContentType},
		{"empty send", req("POST", "/emails", ""), codeBadContentType},
		{"empty send with json type", &vendors.Request{Method: "POST", Path: "/emails", Header: http.Header{"Content-Type": {jsonType}}}, codeBadJSON},
		{"query on write", withQuery(req("POST", "/emails", emailJSON("")), "from=x"), codeQueryOnWrite},
		{"query on delete", withQuery(req("DELETE", "/domains/"+uuid1, ""), "force=true"), codeQueryOnWrite},
		{"body on get", req("GET", "/emails/"+uuid1, `{}`), codeUnexpectedBody},
		{"body on delete", req("DELETE", "/domains/"+uuid1, `{}`), codeUnexpectedBody},
		{"duplicate query", withQuery(req("GET", "/emails", ""), "limit=1&limit=100"), codeDuplicateParam},
		{"semicolon query", withQuery(req("GET", "/emails", ""), "limit=1;after=x"), codeBadParams},
		{"bracket query", withQuery(req("GET", "/emails", ""), "limit[x]=1"), codeBadParamName},
		{"empty query pair", withQuery(req("GET", "/emails", ""), "limit=1&"), codeBadParams},

		// JSON.
		{"duplicate key", send(`{"from":"a@x.example","to":"b@y.example","to":"c@z.example"}`), codeDuplicateKey},
		{"case-variant key", send(`{"from":"a@x.example","to":"b@y.example","TO":"c@z.example"}`), codeDuplicateKey},
		{"unicode fold variant", send(`{"from":"a@x.example","to":"b@y.example","subject":"a","ſubject":"b"}`), codeDuplicateKey},
		{"nested duplicate", send(emailJSON(`"headers":{"X-A":"1","X-A":"2"}`)), codeDuplicateKey},
		{"nested case variant", send(emailJSON(`"headers":{"X-Entity-Ref":"1","x-entity-ref":"2"}`)), codeDuplicateKey},
		{"duplicate in batch item", req("POST", "/emails/batch", `[{"from":"a@x.example","from":"b@x.example","to":"c@y.example"}]`), codeDuplicateKey},
		{"duplicate in other endpoint", req("POST", "/audiences", `{"name":"a","name":"b"}`), codeDuplicateKey},
		{"trailing data", send(emailJSON("") + `{"to":"b@y.example"}`), codeBadJSON},
		{"trailing garbage", send(emailJSON("") + `x`), codeBadJSON},
		{"two values", send(emailJSON("") + "\n" + emailJSON("")), codeBadJSON},
		{"invalid utf-8", send(emailJSON(`"text":"caf` + "\xe9" + `"`)), codeBadJSON},
		{"lone surrogate", send(emailJSON(`"text":"\ud800"`)), codeBadJSON},
		{"byte order mark", send("\xef\xbb\xbf" + emailJSON("")), codeBadJSON},
		{"too deep", send(emailJSON(`"template":{"id":"t","variables":{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}}`)), codeBadJSON},
		{"too deep elsewhere", req("PATCH", "/contacts/"+uuid1, strings.Repeat(`{"a":`, 17)+"1"+strings.Repeat("}", 17)), codeBadJSON},
		{"single quotes", send(`{'from':'a@x.example'}`), codeBadJSON},
		{"comment", send(`{"from":"a@x.example" /* x */, "to":"b@y.example"}`), codeBadJSON},
		{"leading zero", req("PATCH", "/contacts/"+uuid1, `{"n":01}`), codeBadJSON},
		{"bracket key", req("PATCH", "/contacts/"+uuid1, `{"properties":{"a[b]":"1"}}`), codeBadParamName},
		{"empty key", req("PATCH", "/contacts/"+uuid1, `{"":"1"}`), codeBadParamName},
		{"array body elsewhere", req("POST", "/audiences", `[{"name":"a"}]`), codeBadParam},

		// Emails.
		{"number for string", send(`{"from":"a@x.example","to":"b@y.example","subject":5}`), codeBadParam},
		{"number for to", send(`{"from":"a@x.example","to":5}`), codeBadParam},
		{"null to", send(`{"from":"a@x.example","to":null,"subject":""}`), codeBadParam},
		{"number in to list", send(`{"from":"a@x.example","to":["b@y.example",5]}`), codeBadParam},
		{"object for from", send(`{"from":{"email":"a@x.example"},"to":"b@y.example"}`), codeBadParam},
		{"no from", send(`{"to":"b@y.example","subject":"x"}`), codeMissingParam},
		{"no to", send(`{"from":"a@x.example","subject":"x"}`), codeMissingParam},
		{"0 recipients", send(`{"from":"a@x.example","to":[]}`), codeBadRecipients},
		{"51 recipients", send(`{"from":"a@x.example","to":` + addressList(51) + `}`), codeBadRecipients},
		{"51 bcc", send(emailJSON(`"bcc":` + addressList(51))), codeBadRecipients},
		{"bad from", send(`{"from":"billing","to":"b@y.example"}`), codeBadAddress},
		{"empty from", send(`{"from":"","to":"b@y.example"}`), codeBadAddress},
		{"from with two addresses", send(`{"from":"a@x.example, b@x.example","to":"b@y.example"}`), codeBadAddress},
		{"from display name is an address", send(`{"from":"billing@bank.example <x@evil.example>","to":"b@y.example"}`), codeBadAddress},
		{"from with bidi override", send(`{"from":"Acme \u202e <a@x.example>","to":"b@y.example"}`), codeBadAddress},
		{"from without space", send(`{"from":"Acme<a@x.example>","to":"b@y.example"}`), codeBadAddress},
		{"to list in one string", send(`{"from":"a@x.example","to":"b@y.example; c@z.example"}`), codeBadAddress},
		{"to with line break", send(`{"from":"a@x.example","to":"b@y.example\r\nBcc: c@z.example"}`), codeBadAddress},
		{"quoted local part", send(`{"from":"a@x.example","to":"\"b c\"@y.example"}`), codeBadAddress},
		{"ip literal", send(`{"from":"a@x.example","to":"b@[127.0.0.1]"}`), codeBadAddress},
		{"bad cc", send(emailJSON(`"cc":"nobody"`)), codeBadAddress},
		{"bad reply_to", send(emailJSON(`"reply_to":["ok@x.example","nope"]`)), codeBadAddress},
		{"unknown field", send(emailJSON(`"audience_id":"` + uuid1 + `"`)), codeUnknownParam},
		{"bcc header", send(emailJSON(`"headers":{"Bcc":"c@z.example"}`)), codeBadParam},
		{"resent header", send(emailJSON(`"headers":{"Resent-To":"c@z.example"}`)), codeBadParam},
		{"header line break", send(emailJSON(`"headers":{"X-A":"1\r\nBcc: c@z.example"}`)), codeBadParam},
		{"header number", send(emailJSON(`"headers":{"X-A":1}`)), codeBadParam},
		{"header bad name", send(emailJSON(`"headers":{"X A":"1"}`)), codeBadParam},
		{"subject line break", send(`{"from":"a@x.example","to":"b@y.example","subject":"a\nBcc: c@z.example"}`), codeBadParam},
		{"bad tag", send(emailJSON(`"tags":[{"name":"a b","value":"x"}]`)), codeBadParam},
		{"tag without name", send(emailJSON(`"tags":[{"value":"x"}]`)), codeMissingParam},
		{"tag extra field", send(emailJSON(`"tags":[{"name":"a","value":"x","z":"1"}]`)), codeUnknownParam},
		{"attachment byte 256", send(emailJSON(`"attachments":[{"filename":"a","content":[1,256]}]`)), codeBadParam},
		{"attachment byte negative", send(emailJSON(`"attachments":[{"filename":"a","content":[-1]}]`)), codeBadParam},
		{"attachment unknown field", send(emailJSON(`"attachments":[{"filename":"a","url":"x"}]`)), codeUnknownParam},
		{"template without id", send(emailJSON(`"template":{"variables":{"a":"b"}}`)), codeMissingParam},
		{"template variable object", send(emailJSON(`"template":{"id":"t","variables":{"a":{"b":1}}}`)), codeBadParam},
		{"body is an array", send(`[` + emailJSON("") + `]`), codeBadParam},

		// Batches.
		{"batch of 0", req("POST", "/emails/batch", `[]`), codeBadBatch},
		{"batch of 101", req("POST", "/emails/batch", batchJSON(101, func(int) string { return "" })), codeBadBatch},
		{"batch object", req("POST", "/emails/batch", emailJSON("")), codeBadBatch},
		{"batch with a bad item", req("POST", "/emails/batch", batchJSON(3, func(i int) string {
			if i == 2 {
				return `"cc":"x"`
			}
			return ""
		})), codeBadAddress},
		{"batch item with 51", req("POST", "/emails/batch", `[`+emailJSON("")+`,{"from":"a@x.example","to":`+addressList(51)+`}]`), codeBadRecipients},
		{"bad batch validation", req("POST", "/emails/batch", batchJSON(1, func(int) string { return "" }), "X-Batch-Validation", "lenient"), codeBadHeader},
		{"upper-case batch validation", req("POST", "/emails/batch", batchJSON(1, func(int) string { return "" }), "X-Batch-Validation", "STRICT"), codeBadHeader},
		{"two batch validations", req("POST", "/emails/batch", batchJSON(1, func(int) string { return "" }), "X-Batch-Validation", "strict", "X-Batch-Validation", "permissive"), codeBadHeader},
		{"batch validation on send", req("POST", "/emails", emailJSON(""), "X-Batch-Validation", "strict"), codeBadHeader},

		// Idempotency keys.
		{"long idempotency key", req("POST", "/emails", emailJSON(""), "Idempotency-Key", strings.Repeat("k", 257)), codeBadHeader},
		{"empty idempotency key", req("POST", "/emails", emailJSON(""), "Idempotency-Key", ""), codeBadHeader},
		{"two idempotency keys", req("POST", "/emails", emailJSON(""), "Idempotency-Key", "a", "Idempotency-Key", "b"), codeBadHeader},
		{"idempotency key with control", req("POST", "/emails", emailJSON(""), "Idempotency-Key", "a\x00b"), codeBadHeader},
		{"idempotency key with spaces", req("POST", "/emails", emailJSON(""), "Idempotency-Key", " a "), codeBadHeader},
		{"idempotency key on broadcast", req("POST", "/broadcasts/"+uuid1+"/send", "", "Idempotency-Key", "a"), codeBadHeader},
		{"idempotency key on get", req("GET", "/emails/"+uuid1, "", "Idempotency-Key", "a"), codeBadHeader},

		// Broadcasts.
		{"broadcast other id", req("POST", "/broadcasts/"+uuid1+"/send", `{"broadcast_id":"`+uuid2+`"}`), codeBadParam},
		{"broadcast unknown field", req("POST", "/broadcasts/"+uuid1+"/send", `{"audience_id":"`+uuid2+`"}`), codeUnknownParam},
		{"broadcast scheduled number", req("POST", "/broadcasts/"+uuid1+"/send", `{"scheduled_at":1}`), codeBadParam},
		{"broadcast create send string", req("POST", "/broadcasts", `{"segment_id":"`+uuid1+`","from":"a@x.example","subject":"s","send":"false"}`), codeBadParam},
		{"broadcast create send null", req("POST", "/broadcasts", `{"segment_id":"`+uuid1+`","send":null}`), codeBadParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			var inv *vendors.Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("Classify = %+v, %v; want *vendors.Invalid %s", c, err, tt.code)
			}
			if inv.Code != tt.code {
				t.Fatalf("code %s (%s), want %s", inv.Code, inv.Reason, tt.code)
			}
			if inv.Reason == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

func TestClassifyEmail(t *testing.T) {
	tests := []struct {
		name       string
		r          *vendors.Request
		recipients int64
		params     url.Values // a subset of Params
		audit      map[string]string
		idem       string
	}{
		{
			name:       "string to",
			r:          req("POST", "/emails", `{"from":"billing@acme.example","to":"a@x.example","subject":"Hi","html":"<p>secret</p>"}`),
			recipients: 1,
			params:     url.Values{"from": {"billing@acme.example"}, "to[0]": {"a@x.example"}, "subject": {"Hi"}, "html": {"<p>secret</p>"}},
			audit:      map[string]string{"from": "billing@acme.example", "recipients": "1", "subject_length": "2", "attachments": "0"},
		},
		{
			name: "everything resend-go sends",
			r: req("POST", "/emails", `{"from":"\"Acme Billing\" <billing@acme.example>","to":["a@x.example","b@y.example"],"subject":"Ünïcode",`+
				`"bcc":["c@z.example"],"cc":["Dee <d@z.example>"],"reply_to":"r@acme.example","html":"<b>x</b>","text":"x",`+
				`"tags":[{"name":"category","value":"invoice"}],"attachments":[{"content":[104,105],"filename":"a.txt"},{"path":"https://acme.example/i.pdf","filename":"i.pdf"}],`+
				`"headers":{"X-Entity-Ref-ID":"123"},"scheduled_at":"2030-01-01T00:00:00Z"}`+"\n",
				"Idempotency-Key", "welcome-user/123456789"),
			recipients: 4,
			params: url.Values{"from": {`"Acme Billing" <billing@acme.example>`}, "to[1]": {"b@y.example"}, "cc[0]": {"Dee <d@z.example>"},
				"bcc[0]": {"c@z.example"}, "reply_to[0]": {"r@acme.example"}, "tags[0][name]": {"category"}, "tags[0][value]": {"invoice"},
				"headers[X-Entity-Ref-ID]": {"123"}, "attachments[0][filename]": {"a.txt"}, "attachments[1][path]": {"https://acme.example/i.pdf"}},
			audit: map[string]string{"from": `"Acme Billing" <billing@acme.example>`, "recipients": "4", "subject_length": "7", "attachments": "2",
				"tags[category]": "invoice", "scheduled_at": "2030-01-01T00:00:00Z"},
			idem: "welcome-user/123456789",
		},
		{
			name:       "template and topic",
			r:          req("POST", "/emails", emailJSON(`"template":{"id":"order-confirmation","variables":{"name":"Ann","total":12.5}},"topic_id":"`+uuid1+`"`)),
			recipients: 1,
			params:     url.Values{"template[id]": {"order-confirmation"}, "template[variables][total]": {"12.5"}, "topic_id": {uuid1}},
			audit:      map[string]string{"template": "order-confirmation", "topic_id": uuid1, "recipients": "1"},
		},
		{
			name:       "50 recipients and charset",
			r:          &vendors.Request{Method: "POST", Path: "/emails", Header: http.Header{"Content-Type": {"application/json; charset=UTF-8"}}, Body: []byte(`{"from":"billing@acme.example","to":` + addressList(50) + `}`)},
			recipients: 50,
			params:     url.Values{"to[49]": {"u49@x.example"}},
		},
		{
			name:       "escaped key names the field",
			r:          req("POST", "/emails", `{"from":"billing@acme.example","\u0074o":"b@y.example"}`),
			recipients: 1,
			params:     url.Values{"to[0]": {"b@y.example"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if c.Operation != "emails.send" || !c.MovesMoney || c.Count != 1 {
				t.Fatalf("Operation %q MovesMoney %v Count %d", c.Operation, c.MovesMoney, c.Count)
			}
			want := vendors.Priced{Item: "email", Quantity: 1, Recipients: tt.recipients}
			if c.Priced == nil || *c.Priced != want {
				t.Fatalf("Priced %+v, want %+v", c.Priced, want)
			}
			for k, v := range tt.params {
				if !reflect.DeepEqual(c.Params[k], v) {
					t.Errorf("Params[%q] = %q, want %q", k, c.Params[k], v)
				}
			}
			for k, v := range tt.audit {
				if c.Audit[k] != v {
					t.Errorf("Audit[%q] = %q, want %q", k, c.Audit[k], v)
				}
			}
			if c.IdempotencyKey != tt.idem {
				t.Errorf("IdempotencyKey %q, want %q", c.IdempotencyKey, tt.idem)
			}
			if _, ok := c.Params["attachments[0][content][0]"]; ok {
				t.Error("attachment content in Params")
			}
			checkAuditPrivate(t, tt.r, c.Audit)
		})
	}
}

// checkAuditPrivate fails when the audit map repeats a recipient, the
// subject, a body or attachment content.
func checkAuditPrivate(t *testing.T, r *vendors.Request, a map[string]string) {
	t.Helper()
	for _, secret := range []string{"a@x.example", "b@y.example", "c@z.example", "d@z.example", "secret", "<b>x</b>", "Invoice", "Ünïcode", "104,105", "Ann"} {
		if !strings.Contains(string(r.Body), secret) {
			continue
		}
		for k, v := range a {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("audit %s=%q repeats %q", k, v, secret)
			}
		}
	}
}

func TestClassifyBatch(t *testing.T) {
	body := `[` +
		`{"from":"Acme <billing@acme.example>","to":["a@x.example","b@y.example"],"subject":"One","cc":"c@z.example","tags":[{"name":"run","value":"7"}]},` +
		`{"from":"Acme <billing@acme.example>","to":"d@z.example","subject":"Two","tags":[{"name":"run","value":"7"}]},` +
		`{"from":"Acme <billing@acme.example>","to":["e@z.example"],"bcc":["f@z.example","g@z.example"],"subject":"Three"}]`
	c, err := Vendor{}.Classify(req("POST", "/emails/batch", body, "Idempotency-Key", "batch-1", "X-Batch-Validation", "permissive"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Operation != "emails.batch" || !c.MovesMoney || c.Count != 3 {
		t.Fatalf("Operation %q MovesMoney %v Count %d", c.Operation, c.MovesMoney, c.Count)
	}
	if want := (vendors.Priced{Item: "email", Quantity: 3, Recipients: 7}); *c.Priced != want {
		t.Fatalf("Priced %+v, want %+v", *c.Priced, want)
	}
	if c.IdempotencyKey != "batch-1" {
		t.Errorf("IdempotencyKey %q", c.IdempotencyKey)
	}
	wantParams := map[string][]string{
		"from":                      {"Acme <billing@acme.example>"}, // the same in every email
		"emails[0][to][1]":          {"b@y.example"},
		"emails[0][cc][0]":          {"c@z.example"},
		"emails[1][to][0]":          {"d@z.example"},
		"emails[2][bcc][1]":         {"g@z.example"},
		"emails[1][subject]":        {"Two"},
		"emails[0][tags][0][value]": {"7"},
	}
	for k, v := range wantParams {
		if !reflect.DeepEqual(c.Params[k], v) {
			t.Errorf("Params[%q] = %q, want %q", k, c.Params[k], v)
		}
	}
	if _, ok := c.Params["subject"]; ok {
		t.Errorf("subject differs between emails but Params has %q", c.Params["subject"])
	}
	wantAudit := map[string]string{"emails": "3", "recipients": "7", "from": "Acme <billing@acme.example>", "tags[run]": "7",
		"validation": "permissive", "attachments": "0"}
	if !reflect.DeepEqual(c.Audit, wantAudit) {
		t.Errorf("Audit %v, want %v", c.Audit, wantAudit)
	}

	// A second sender removes the common from, so a policy condition on
	// from no longer holds.
	body2 := `[` + emailJSON("") + `,{"from":"other@acme.example","to":"a@x.example"}]`
	c2, err := Vendor{}.Classify(req("POST", "/emails/batch", body2))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.Params["from"]; ok {
		t.Errorf("two senders, Params from = %q", c2.Params["from"])
	}
	if c2.Audit["validation"] != "strict" || c2.Audit["from"] != "Acme <billing@acme.example>, other@acme.example" {
		t.Errorf("Audit %v", c2.Audit)
	}

	// Senders of the same length, one letter apart.
	c4, err := Vendor{}.Classify(req("POST", "/emails/batch", `[{"from":"a@acme.example","to":"x@y.example"},{"from":"b@acme.example","to":"x@y.example"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c4.Params["from"]; ok || !reflect.DeepEqual(c4.Params["to[0]"], []string(nil)) {
		t.Errorf("two senders: Params from %q, to[0] %q", c4.Params["from"], c4.Params["to[0]"])
	}

	// 100 emails of 50 recipients: the largest batch.
	big := batchJSON(100, func(int) string { return `"cc":` + addressList(49) })
	c3, err := Vendor{}.Classify(req("POST", "/emails/batch", big))
	if err != nil {
		t.Fatal(err)
	}
	if c3.Count != 100 || c3.Priced.Recipients != 5000 {
		t.Errorf("Count %d Recipients %d", c3.Count, c3.Priced.Recipients)
	}
}

func TestClassifyBroadcasts(t *testing.T) {
	broadcast := vendors.Priced{Item: "broadcast", Quantity: -1}
	tests := []struct {
		name   string
		r      *vendors.Request
		op     string
		moves  bool
		params url.Values
	}{
		{"send as resend-go", req("POST", "/broadcasts/"+uuid1+"/send", `{"broadcast_id":"`+uuid1+`","scheduled_at":""}`), "broadcasts.send", true,
			url.Values{"broadcast_id": {uuid1}}},
		{"send as the spec", req("POST", "/broadcasts/"+uuid1+"/send", `{"scheduled_at":"in 1 min"}`), "broadcasts.send", true,
			url.Values{"scheduled_at": {"in 1 min"}}},
		{"send without body", req("POST", "/broadcasts/"+uuid1+"/send", ""), "broadcasts.send", true, nil},
		{"create and send", req("POST", "/broadcasts", `{"segment_id":"`+uuid1+`","from":"a@x.example","subject":"s","send":true}`), "broadcasts.create", true,
			url.Values{"send": {"true"}, "segment_id": {uuid1}}},
		{"create draft", req("POST", "/broadcasts", `{"segment_id":"`+uuid1+`","from":"a@x.example","subject":"s","send":false}`), "broadcasts.create", false,
			url.Values{"send": {"false"}}},
		{"create as resend-go", req("POST", "/broadcasts", `{"audience_id":"`+uuid1+`","from":"a@x.example","subject":"s","name":"n"}`), "broadcasts.create", false,
			url.Values{"audience_id": {uuid1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if c.Operation != tt.op || c.MovesMoney != tt.moves {
				t.Fatalf("Operation %q MovesMoney %v", c.Operation, c.MovesMoney)
			}
			if tt.moves && (c.Priced == nil || *c.Priced != broadcast || c.Count != -1) {
				t.Fatalf("Priced %+v Count %d", c.Priced, c.Count)
			}
			if !tt.moves && (c.Priced != nil || c.Count != 0) {
				t.Fatalf("a draft is priced: %+v Count %d", c.Priced, c.Count)
			}
			// The audience of a broadcast is saved at Resend: a scope
			// on recipients or senders cannot admit what it sends to.
			if c.AudienceUnknown != tt.moves {
				t.Errorf("AudienceUnknown %v for MovesMoney %v", c.AudienceUnknown, tt.moves)
			}
			for k, v := range tt.params {
				if !reflect.DeepEqual(c.Params[k], v) {
					t.Errorf("Params[%q] = %q, want %q", k, c.Params[k], v)
				}
			}
		})
	}
}

func TestClassifyOther(t *testing.T) {
	tests := []struct {
		name   string
		r      *vendors.Request
		op     string
		params url.Values
		audit  map[string]string
	}{
		{"get email", req("GET", "/emails/"+uuid1, ""), "emails.get", url.Values{}, map[string]string{}},
		{"list with pagination", withQuery(req("GET", "/emails", ""), "limit=10&after="+uuid1), "emails.list",
			url.Values{"limit": {"10"}, "after": {uuid1}}, map[string]string{"limit": "10", "after": uuid1}},
		{"receiving is not an id", req("GET", "/emails/receiving", ""), "emails.list_receiving", url.Values{}, map[string]string{}},
		{"cancel without body", req("POST", "/emails/"+uuid1+"/cancel", ""), "emails.cancel", url.Values{}, map[string]string{}},
		{"verify with json type", &vendors.Request{Method: "POST", Path: "/domains/" + uuid1 + "/verify", Header: http.Header{"Content-Type": {jsonType}}}, "domains.verify", url.Values{}, map[string]string{}},
		{"update contact", req("PATCH", "/audiences/"+uuid1+"/contacts/"+uuid2, `{"id":"`+uuid2+`","email":"ann@x.example","audience_id":"`+uuid1+`","unsubscribed":true,"n":1.5e3,"x":null}`),
			"audiences.contacts.update",
			url.Values{"id": {uuid2}, "email": {"ann@x.example"}, "audience_id": {uuid1}, "unsubscribed": {"true"}, "n": {"1.5e3"}},
			map[string]string{"fields": "audience_id,email,id,n,unsubscribed,x"}},
		{"nested properties", req("POST", "/contacts", `{"email":"ann@x.example","properties":{"plan":"pro"},"segments":["`+uuid1+`"]}`), "contacts.create",
			url.Values{"properties[plan]": {"pro"}, "segments[0]": {uuid1}}, map[string]string{"fields": "email,properties,segments"}},
		{"delete", req("DELETE", "/domains/"+uuid1, ""), "domains.remove", url.Values{}, map[string]string{}},
		{"unknown endpoint", req("GET", "/new-thing", ""), "", url.Values{}, map[string]string{}},
		{"unknown endpoint with a body", req("POST", "/new-thing/x", `{"a":"b"}`), "", url.Values{"a": {"b"}}, map[string]string{"fields": "a"}},
		{"api key create", req("POST", "/api-keys", `{"name":"agent","permission":"full_access"}`), "api_keys.create",
			url.Values{"permission": {"full_access"}}, map[string]string{"fields": "name,permission"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if c.Operation != tt.op || c.MovesMoney || c.Count != 0 || c.Priced != nil || c.IdempotencyKey != "" {
				t.Fatalf("%+v", c)
			}
			for k, v := range tt.params {
				if !reflect.DeepEqual(c.Params[k], v) {
					t.Errorf("Params[%q] = %q, want %q", k, c.Params[k], v)
				}
			}
			if len(tt.params) == 0 && len(c.Params) != 0 {
				t.Errorf("Params %v, want none", c.Params)
			}
			if !reflect.DeepEqual(c.Audit, tt.audit) {
				t.Errorf("Audit %v, want %v", c.Audit, tt.audit)
			}
			if strings.Contains(fmt.Sprint(c.Audit), "ann@x.example") {
				t.Error("audit keeps a contact's address")
			}
		})
	}
}

func TestEveryEndpointClassifies(t *testing.T) {
	// Each row of the table is reachable: a path built from its template
	// with UUIDs gives its own operation back.
	seen := map[string]bool{}
	for _, e := range endpoints {
		if seen[e.method+" "+e.template] {
			t.Errorf("%s %s listed twice", e.method, e.template)
		}
		seen[e.method+" "+e.template] = true
		path := strings.ReplaceAll(e.template, "{id}", uuid1)
		body := ""
		switch e.kind {
		case kindEmailSend:
			body = emailJSON("")
		case kindEmailBatch:
			body = "[" + emailJSON("") + "]"
		case kindNone, kindBroadcastSend, kindBroadcastCreate:
			if e.method == "POST" || e.method == "PATCH" {
				body = "{}"
			}
		}
		c, err := Vendor{}.Classify(req(e.method, path, body))
		if err != nil {
			t.Errorf("%s %s: %v", e.method, path, err)
			continue
		}
		if c.Operation != e.op {
			t.Errorf("%s %s: operation %q, want %q", e.method, path, c.Operation, e.op)
		}
		if (e.kind == kindEmailSend || e.kind == kindEmailBatch || e.kind == kindBroadcastSend) != c.MovesMoney {
			t.Errorf("%s %s: MovesMoney %v", e.method, path, c.MovesMoney)
		}
	}
}

func TestResolve(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", "/emails", emailJSON("")))
	if err != nil {
		t.Fatal(err)
	}
	if learned, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, nil, nil); err != nil || len(learned) != 0 {
		t.Fatalf("Resolve = %v, learned %v", err, learned)
	}
	c.Lookup = "GET /emails/" + uuid1
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, nil, nil); err == nil {
		t.Fatal("Resolve accepted a lookup")
	}
}
