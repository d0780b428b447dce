package twilio

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybrake/keybrake/vendors"
)

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testMessage = "SM0123456789abcdef0123456789abcdef"
	testMMS     = "MM0123456789abcdef0123456789abcdef"
	testCall    = "CA0123456789abcdef0123456789abcdef"
	testMedia   = "ME0123456789abcdef0123456789abcdef"
	testService = "VA0123456789abcdef0123456789abcdef"
	accountPath = "/2010-04-01/Accounts/" + testAccount
	messages    = accountPath + "/Messages.json"
	calls       = accountPath + "/Calls.json"
)

// req builds a request to api.twilio.com as twilio-go would send it: a
// form Content-Type on every method, the body for POST, the query for GET
// and DELETE.
func req(method, path, params string, header ...string) *vendors.Request {
	r := &vendors.Request{
		Method: method,
		Host:   APIHost,
		Path:   path,
		Header: http.Header{"Content-Type": {formType}},
	}
	if method == "POST" {
		r.Body = []byte(params)
	} else {
		r.Query = params
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			r.Header.Del(header[i])
			continue
		}
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func withHost(r *vendors.Request, host string) *vendors.Request { r.Host = host; return r }

func withQuery(r *vendors.Request, q string) *vendors.Request { r.Query = q; return r }

func withBody(r *vendors.Request, b string) *vendors.Request { r.Body = []byte(b); return r }

func withContentType(r *vendors.Request, ct ...string) *vendors.Request {
	r.Header.Del("Content-Type")
	for _, v := range ct {
		r.Header.Add("Content-Type", v)
	}
	return r
}

// sms is a valid messages.create body with extra parameters.
func sms(extra string) string {
	s := "Body=Hello&From=%2B15005550006&To=%2B15558675310"
	if extra != "" {
		s += "&" + extra
	}
	return s
}

func TestClassifyRefusals(t *testing.T) {
	tests := []struct {
		name string
		req  *vendors.Request
		code string
	}{
		// Methods and hosts.
		{"PUT", req("PUT", messages, sms("")), codeBadMethod},
		{"PATCH", req("PATCH", messages, sms("")), codeBadMethod},
		{"HEAD", req("HEAD", messages, ""), codeBadMethod},
		{"verify path on api host", req("POST", "/v2/Services/"+testService+"/Verifications", "To=%2B15558675310&Channel=sms"), codeWrongHost},
		{"api path on verify host", withHost(req("POST", messages, sms("")), VerifyHost), codeWrongHost},
		{"api path on messaging host", withHost(req("POST", messages, sms("")), MessagingHost), codeWrongHost},
		{"api path on regional messaging host", withHost(req("POST", messages, sms("")), "messaging.dublin.ie1.twilio.com"), codeWrongHost},
		{"v1 on verify host", withHost(req("GET", "/v1/Services", ""), VerifyHost), codeWrongHost},
		{"other version on api host", req("POST", "/2008-08-01/Accounts/"+testAccount+"/SMS/Messages.json", sms("")), codeWrongHost},

		// Paths Twilio's router might read otherwise.
		{"messages without .json", req("POST", accountPath+"/Messages", sms("")), codeBadPath},
		{"messages as XML", req("POST", accountPath+"/Messages.xml", sms("")), codeBadPath},
		{"messages as CSV", req("GET", accountPath+"/Messages.csv", ""), codeBadPath},
		{"double suffix", req("POST", accountPath+"/Messages.json.json", sms("")), codeBadPath},
		{"dot in a segment", req("POST", accountPath+".json/Messages.json", sms("")), codeBadPath},
		{"lower-case collection", req("POST", accountPath+"/messages.json", sms("")), codeBadPath},
		{"upper-case suffix", req("POST", accountPath+"/Messages.JSON", sms("")), codeBadPath},
		{"lower-case accounts", req("POST", "/2010-04-01/accounts/"+testAccount+"/Messages.json", sms("")), codeBadPath},
		{"lower-case calls", req("POST", accountPath+"/calls.json", "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx"), codeBadPath},
		{"old SMS resource in another case", req("POST", accountPath+"/sms/Messages.json", sms("")), codeBadPath},
		{"verify collection in another case", withHost(req("POST", "/v2/Services/"+testService+"/verifications", "To=%2B15558675310&Channel=sms"), VerifyHost), codeBadPath},
		{"verify services in another case", withHost(req("POST", "/v2/services/"+testService+"/Verifications", "To=%2B15558675310&Channel=sms"), VerifyHost), codeBadPath},

		// SIDs.
		{"account SID upper-case hex", req("POST", "/2010-04-01/Accounts/AC0123456789ABCDEF0123456789ABCDEF/Messages.json", sms("")), codeBadID},
		{"account SID short", req("POST", "/2010-04-01/Accounts/AC123/Messages.json", sms("")), codeBadID},
		{"account SID of another kind", req("POST", "/2010-04-01/Accounts/"+strings.Replace(testAccount, "AC", "SK", 1)+"/Messages.json", sms("")), codeBadID},
		{"account SID on retrieve", req("GET", "/2010-04-01/Accounts/ACx.json", ""), codeBadID},
		{"message SID of a call", req("GET", accountPath+"/Messages/"+testCall+".json", ""), codeBadID},
		{"call SID of a message", req("POST", accountPath+"/Calls/"+testMessage+".json", "Status=completed"), codeBadID},
		{"message SID under an unlisted path", req("GET", accountPath+"/Messages/"+testCall+"/Feedback.json", ""), codeBadID},
		{"media SID", req("DELETE", accountPath+"/Messages/"+testMessage+"/Media/"+testCall+".json", ""), codeBadID},
		{"verify service SID", withHost(req("POST", "/v2/Services/MG0123456789abcdef0123456789abcdef/Verifications", "To=%2B15558675310&Channel=sms"), VerifyHost), codeBadID},

		// Content types.
		{"no content type on POST", withContentType(req("POST", messages, sms(""))), codeBadContentType},
		{"json", withContentType(req("POST", messages, `{"To":"+15558675310"}`), "application/json"), codeBadContentType},
		{"multipart", withContentType(req("POST", messages, "x"), "multipart/form-data; boundary=x"), codeBadContentType},
		{"charset", withContentType(req("POST", messages, sms("")), formType+"; charset=utf-8"), codeBadContentType},
		{"two content types", withContentType(req("POST", messages, sms("")), formType, formType), codeBadContentType},
		{"upper-case type", withContentType(req("POST", messages, sms("")), "Application/X-WWW-Form-Urlencoded"), codeBadContentType},
		{"json on GET", withContentType(req("GET", messages, ""), "application/json"), codeBadContentType},

		// Where parameters live.
		{"query on POST", withQuery(req("POST", messages, sms("")), "Body=x"), codeQueryOnWrite},
		{"body on GET", withBody(req("GET", messages, ""), "To=%2B1"), codeBodyOnGet},
		{"query on DELETE", req("DELETE", accountPath+"/Messages/"+testMessage+".json", "x=1"), codeQueryOnWrite},
		{"body on DELETE", withBody(req("DELETE", accountPath+"/Messages/"+testMessage+".json", ""), "x=1"), codeBodyOnGet},

		// Parameter syntax.
		{"semicolon", req("POST", messages, "To=%2B15558675310;Body=x&From=%2B15005550006"), codeBadParams},
		{"bad escape", req("POST", messages, sms("Body=%zz")), codeBadParams},
		{"bad escape in name", req("POST", messages, sms("Bo%zzdy=1")), codeBadParams},
		{"empty pair", req("POST", messages, "To=%2B15558675310&&Body=x"), codeBadParams},
		{"trailing ampersand", req("POST", messages, sms("")+"&"), codeBadParams},
		{"no equals", req("POST", messages, sms("Body")), codeBadParams},
		{"invalid UTF-8", req("POST", messages, "To=%2B15558675310&Body=%FF"), codeBadParams},
		{"empty name", req("POST", messages, sms("=5")), codeBadParamName},
		{"name plus", req("POST", messages, "To+=%2B15558675310&Body=x"), codeBadParamName},
		{"bracketed name", req("POST", messages, sms("MediaUrl[]=https%3A%2F%2Fx")), codeBadParamName},
		{"indexed name", req("POST", messages, sms("MediaUrl[0]=https%3A%2F%2Fx")), codeBadParamName},
		{"underscore name", req("POST", messages, sms("Media_Url=x")), codeBadParamName},
		{"escaped nul", req("POST", messages, sms("To%00=1")), codeBadParamName},
		{"trailing dot", req("GET", messages, "To.=1"), codeBadParamName},
		{"duplicate To", req("POST", messages, sms("To=%2B882000")), codeDuplicateParam},
		{"duplicate Body", req("POST", messages, sms("Body=loooong")), codeDuplicateParam},
		{"duplicate TimeLimit", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=60&TimeLimit=99999"), codeDuplicateParam},
		{"duplicate by escape", req("POST", messages, sms("%42ody=x")), codeDuplicateParam},
		{"case variant", req("POST", messages, sms("body=loooong")), codeDuplicateParam},
		{"case variant of a list", req("POST", messages, sms("MediaUrl=https%3A%2F%2Fa&mediaurl=https%3A%2F%2Fb")), codeDuplicateParam},
		{"duplicate on GET", req("GET", messages, "PageSize=1&PageSize=1000"), codeDuplicateParam},

		// Priced endpoints read only what they define.
		{"unknown parameter on message", req("POST", messages, sms("Channel=whatsapp")), codeUnknownParam},
		{"lower-case only", req("POST", messages, "to=%2B15558675310&Body=x"), codeUnknownParam},
		{"unknown parameter on call", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&Legs=5"), codeUnknownParam},
		{"To missing", req("POST", messages, "Body=Hello&From=%2B15005550006"), codeMissingParam},
		{"call To missing", req("POST", calls, "From=%2B15005550006&Url=https%3A%2F%2Fx"), codeMissingParam},

		// Destinations.
		{"national number", req("POST", messages, "Body=x&To=5558675310"), codeBadDestination},
		{"no plus", req("POST", messages, "Body=x&To=15558675310"), codeBadDestination},
		{"leading zero country", req("POST", messages, "Body=x&To=%2B0123456789"), codeBadDestination},
		{"too long", req("POST", messages, "Body=x&To=%2B1234567890123456"), codeBadDestination},
		{"too short", req("POST", messages, "Body=x&To=%2B12345"), codeBadDestination},
		{"spaces", req("POST", messages, "Body=x&To=%2B1+555+867+5310"), codeBadDestination},
		{"short code", req("POST", messages, "Body=x&To=12345"), codeBadDestination},
		{"fullwidth digits", req("POST", messages, "Body=x&To=%2B%EF%BC%91555"), codeBadDestination},
		{"whatsapp", req("POST", messages, "Body=x&To=whatsapp%3A%2B15558675310&From=whatsapp%3A%2B15005550006"), codeUnsupported},
		{"whatsapp from", req("POST", messages, "Body=x&To=%2B15558675310&From=whatsapp%3A%2B15005550006"), codeUnsupported},
		{"messenger", req("POST", messages, "Body=x&To=messenger%3A1234"), codeUnsupported},
		{"sip call", req("POST", calls, "To=sip%3Aalice%40example.com&From=%2B15005550006&Url=https%3A%2F%2Fx"), codeUnsupported},
		{"client call", req("POST", calls, "To=client%3Aalice&From=%2B15005550006&Url=https%3A%2F%2Fx"), codeUnsupported},
		{"call national", req("POST", calls, "To=5558675310&From=%2B15005550006&Url=https%3A%2F%2Fx"), codeBadDestination},

		// What a message costs must be knowable.
		{"content template", req("POST", messages, "To=%2B15558675310&ContentSid=HX0123456789abcdef0123456789abcdef"), codeAmountUnknown},
		{"content template with body", req("POST", messages, sms("ContentSid=HX0123456789abcdef0123456789abcdef")), codeAmountUnknown},
		{"no body, no media", req("POST", messages, "To=%2B15558675310&From=%2B15005550006"), codeAmountUnknown},
		{"empty body", req("POST", messages, "To=%2B15558675310&Body="), codeAmountUnknown},
		{"shortened links", req("POST", messages, sms("ShortenUrls=true&MessagingServiceSid=MG0123456789abcdef0123456789abcdef")), codeAmountUnknown},
		{"MMS outside +1", req("POST", messages, "To=%2B447700900123&MediaUrl=https%3A%2F%2Fx%2Fa.png"), codeAmountUnknown},
		{"SendAsMms outside +1", req("POST", messages, "To=%2B447700900123&Body=x&SendAsMms=true"), codeAmountUnknown},
		{"SendAsMms not boolean", req("POST", messages, sms("SendAsMms=yes")), codeBadParam},
		{"SendAsMms capitalised", req("POST", messages, sms("SendAsMms=True")), codeBadParam},
		{"ShortenUrls not boolean", req("POST", messages, sms("ShortenUrls=1")), codeBadParam},
		{"empty MediaUrl", req("POST", messages, sms("MediaUrl=")), codeBadParam},
		{"TimeLimit zero", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=0"), codeBadParam},
		{"TimeLimit negative", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=-60"), codeBadParam},
		{"TimeLimit decimal", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=59.5"), codeBadParam},
		{"TimeLimit plus", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=%2B60"), codeBadParam},
		{"TimeLimit leading zero", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=060"), codeBadParam},
		{"TimeLimit huge", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=9999999999"), codeBadParam},
		{"TimeLimit empty", req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit="), codeBadParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			var inv *vendors.Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("Classify = %+v, %v; want *vendors.Invalid %s", c, err, tt.code)
			}
			if inv.Code != tt.code {
				t.Fatalf("code %s (%s), want %s", inv.Code, inv.Reason, tt.code)
			}
			if inv.Reason == "" {
				t.Fatal("no reason")
			}
		})
	}
}

func TestClassify(t *testing.T) {
	long := strings.Repeat("a", 161)
	tests := []struct {
		name      string
		req       *vendors.Request
		op        string
		priced    *vendors.Priced // nil: none
		count     int64
		moves     bool
		audit     map[string]string // entries that must be there ("" value: must be absent)
		listValue []string          // Params["MediaUrl"], when set
	}{
		{name: "sms", req: req("POST", messages, sms("")), op: "messages.create",
			priced: &vendors.Priced{Item: "sms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true,
			audit: map[string]string{"To": "+15558675310", "From": "+15005550006", "Body": "", "Body.chars": "5", "Body.segments": "1", "Body.encoding": GSM7}},
		{name: "long sms", req: req("POST", messages, "To=%2B447700900123&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&Body="+long),
			op: "messages.create", priced: &vendors.Priced{Item: "sms", Destination: "+447700900123", Quantity: 2}, count: 2, moves: true,
			audit: map[string]string{"Body.chars": "161", "Body.segments": "2"}},
		{name: "unicode sms", req: req("POST", messages, "To=%2B33612345678&Body="+url.QueryEscape("Merci 🙏")),
			op: "messages.create", priced: &vendors.Priced{Item: "sms", Destination: "+33612345678", Quantity: 1}, count: 1, moves: true,
			audit: map[string]string{"Body.chars": "7", "Body.encoding": UCS2}},
		{name: "smart encoded counts unconverted", req: req("POST", messages, sms("SmartEncoded=true")), op: "messages.create",
			priced: &vendors.Priced{Item: "sms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
		{name: "mms by media", req: req("POST", messages, sms("MediaUrl=https%3A%2F%2Fx%2Fa.png&MediaUrl=https%3A%2F%2Fx%2Fb.png")),
			op: "messages.create", priced: &vendors.Priced{Item: "mms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true,
			audit:     map[string]string{"MediaUrl[0]": "https://x/a.png", "MediaUrl[1]": "https://x/b.png", "Body.segments": "1"},
			listValue: []string{"https://x/a.png", "https://x/b.png"}},
		{name: "mms without body", req: req("POST", messages, "To=%2B15558675310&MediaUrl=https%3A%2F%2Fx%2Fa.png"),
			op: "messages.create", priced: &vendors.Priced{Item: "mms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
		{name: "mms by SendAsMms", req: req("POST", messages, "To=%2B15558675310&Body="+long+"&SendAsMms=true"),
			op: "messages.create", priced: &vendors.Priced{Item: "mms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
		{name: "SendAsMms false", req: req("POST", messages, sms("SendAsMms=false&ShortenUrls=false")), op: "messages.create",
			priced: &vendors.Priced{Item: "sms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
		{name: "template variables dropped", req: req("POST", messages, sms("ContentVariables=%7B%221%22%3A%22Alice%22%7D")), op: "messages.create",
			priced: &vendors.Priced{Item: "sms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true,
			audit: map[string]string{"ContentVariables": ""}},
		{name: "call with time limit", req: req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=61&StatusCallbackEvent=initiated&StatusCallbackEvent=completed"),
			op: "calls.create", priced: &vendors.Priced{Item: "call_minute", Destination: "+15558675310", Quantity: 2}, count: 1, moves: true,
			audit: map[string]string{"StatusCallbackEvent[0]": "initiated", "StatusCallbackEvent[1]": "completed"}},
		{name: "call of exactly a minute", req: req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Twiml=%3CResponse%2F%3E&TimeLimit=60"),
			op: "calls.create", priced: &vendors.Priced{Item: "call_minute", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
		{name: "call unbounded", req: req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx"),
			op: "calls.create", priced: &vendors.Priced{Item: "call_minute", Destination: "+15558675310", Quantity: -1}, count: 1, moves: true},
		{name: "call SIP password dropped", req: req("POST", calls, "To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&SipAuthUsername=bob&SipAuthPassword=hunter2"),
			op: "calls.create", priced: &vendors.Priced{Item: "call_minute", Destination: "+15558675310", Quantity: -1}, count: 1, moves: true,
			audit: map[string]string{"SipAuthUsername": "bob", "SipAuthPassword": ""}},
		{name: "list messages", req: req("GET", messages, "DateSent%3E=2024-01-01T00%3A00%3A00Z&PageSize=50&To=%2B15558675310"), op: "messages.list",
			audit: map[string]string{"DateSent>": "2024-01-01T00:00:00Z", "PageSize": "50"}},
		{name: "retrieve message", req: req("GET", accountPath+"/Messages/"+testMessage+".json", ""), op: "messages.retrieve"},
		{name: "retrieve mms", req: req("GET", accountPath+"/Messages/"+testMMS+".json", ""), op: "messages.retrieve"},
		{name: "cancel message", req: req("POST", accountPath+"/Messages/"+testMessage+".json", "Status=canceled"), op: "messages.update"},
		{name: "delete message", req: req("DELETE", accountPath+"/Messages/"+testMessage+".json", ""), op: "messages.delete"},
		{name: "media", req: req("GET", accountPath+"/Messages/"+testMMS+"/Media/"+testMedia+".json", ""), op: "messages.media.retrieve"},
		{name: "hang up", req: req("POST", accountPath+"/Calls/"+testCall+".json", "Status=completed"), op: "calls.update"},
		{name: "account", req: req("GET", accountPath+".json", ""), op: "accounts.retrieve"},
		{name: "accounts", req: req("GET", "/2010-04-01/Accounts.json", ""), op: "accounts.list"},
		{name: "balance", req: req("GET", accountPath+"/Balance.json", ""), op: "balance.retrieve"},
		{name: "GET without content type", req: withContentType(req("GET", accountPath+"/Balance.json", "")), op: "balance.retrieve"},
		{name: "unlisted endpoint", req: req("POST", accountPath+"/IncomingPhoneNumbers.json", "PhoneNumber=%2B15005550006"), op: ""},
		{name: "unlisted nested", req: req("GET", accountPath+"/SIP/Domains/SD0123456789abcdef0123456789abcdef/Auth/Calls/CredentialListMappings.json", ""), op: ""},
		{name: "verification", req: withHost(req("POST", "/v2/Services/"+testService+"/Verifications", "To=%2B15558675310&Channel=sms&CustomCode=123456"), VerifyHost),
			op: "verify.verifications.create", count: 1, audit: map[string]string{"Channel": "sms", "CustomCode": ""}},
		{name: "verification check", req: withHost(req("POST", "/v2/Services/"+testService+"/VerificationCheck", "To=%2B15558675310&Code=123456"), VerifyHost),
			op: "verify.verification_checks.create", audit: map[string]string{"Code": ""}},
		{name: "messaging service", req: withHost(req("GET", "/v1/Services", "PageSize=20"), MessagingHost), op: ""},
		{name: "verify entity named like a collection", req: withHost(req("GET", "/v2/Services/"+testService+"/Entities/messages/Factors", ""), VerifyHost), op: ""},
		{name: "regional host", req: withHost(req("POST", messages, sms("")), "api.sydney.au1.twilio.com"), op: "messages.create",
			priced: &vendors.Priced{Item: "sms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
		{name: "configured endpoint", req: withHost(req("POST", messages, sms("")), "127.0.0.1:4010"), op: "messages.create",
			priced: &vendors.Priced{Item: "sms", Destination: "+15558675310", Quantity: 1}, count: 1, moves: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor{}.Classify(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if c.Operation != tt.op {
				t.Errorf("Operation %q, want %q", c.Operation, tt.op)
			}
			if c.MovesMoney != tt.moves || c.Count != tt.count {
				t.Errorf("MovesMoney %v Count %d, want %v %d", c.MovesMoney, c.Count, tt.moves, tt.count)
			}
			switch {
			case tt.priced == nil && c.Priced != nil:
				t.Errorf("Priced %+v, want none", *c.Priced)
			case tt.priced != nil && (c.Priced == nil || *c.Priced != *tt.priced):
				t.Errorf("Priced %+v, want %+v", c.Priced, *tt.priced)
			}
			if !c.Amount.IsZero() || c.Lookup != "" || c.Customer != "" || c.IdempotencyKey != "" {
				t.Errorf("Amount %v Lookup %q Customer %q IdempotencyKey %q: Classify sets none", c.Amount, c.Lookup, c.Customer, c.IdempotencyKey)
			}
			wantAccount := ""
			if strings.HasPrefix(tt.req.Path, accountPath) {
				wantAccount = testAccount
			}
			if c.Account != wantAccount {
				t.Errorf("Account %q, want %q", c.Account, wantAccount)
			}
			for k, want := range tt.audit {
				got, ok := c.Audit[k]
				if want == "" && ok {
					t.Errorf("Audit keeps %s=%q", k, got)
				}
				if want != "" && got != want {
					t.Errorf("Audit[%s] = %q, want %q", k, got, want)
				}
			}
			if _, ok := c.Audit["Body"]; ok {
				t.Errorf("Audit keeps the message text")
			}
			if tt.listValue != nil && strings.Join(c.Params["MediaUrl"], " ") != strings.Join(tt.listValue, " ") {
				t.Errorf("MediaUrl %q", c.Params["MediaUrl"])
			}
		})
	}
}

func TestResolveNeedsNoLookup(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", messages, sms("")))
	if err != nil {
		t.Fatal(err)
	}
	called := false
	learned, err := Vendor{}.Resolve(context.Background(), c, vendors.Need{Customer: true}, func(_ context.Context, path string) (int, []byte, error) {
		called = true
		return 200, nil, nil
	}, nil)
	if err != nil || called || len(learned) != 0 {
		t.Fatalf("Resolve = %v, fetched %v, learned %v", err, called, learned)
	}
	c.Lookup = "GET /x"
	if _, err := (Vendor{}).Resolve(context.Background(), c, vendors.Need{}, nil, nil); err == nil {
		t.Fatal("Resolve accepted a lookup")
	}
}

func TestHosts(t *testing.T) {
	v := Vendor{}
	hs := v.Hosts()
	if len(hs) != 165 {
		t.Fatalf("%d hosts", len(hs))
	}
	seen := map[string]bool{}
	for _, h := range hs {
		if seen[h] {
			t.Errorf("%s twice", h)
		}
		seen[h] = true
		if h != strings.ToLower(h) || !strings.HasSuffix(h, ".twilio.com") {
			t.Errorf("host %q", h)
		}
	}
	for _, h := range []string{APIHost, MessagingHost, VerifyHost, "api.us1.twilio.com", "api.ie1.twilio.com",
		"api.dublin.ie1.twilio.com", "api.sydney.au1.twilio.com", "api.ashburn.us1.twilio.com", "api.london-ix.ie1.twilio.com",
		"verify.frankfurt.ie1.twilio.com"} {
		if !seen[h] {
			t.Errorf("%s missing", h)
		}
	}
	for _, h := range []string{"voice.twilio.com", "lookups.twilio.com", "api.de1.twilio.com", "api.twilio.com.evil.com", "api.mars.us1.twilio.com"} {
		if seen[h] {
			t.Errorf("%s accepted", h)
		}
	}
	hs[0] = "evil.com"
	if v.Hosts()[0] == "evil.com" {
		t.Fatal("Hosts shares its slice")
	}
}

func TestSubjects(t *testing.T) {
	c, err := Vendor{}.Classify(req("POST", "/2010-04-01/Accounts/"+testAccount+"/Messages.json",
		url.Values{"To": {"+15551234567"}, "From": {"+15550001111"}, "Body": {"hi"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Recipients) != 1 || c.Recipients[0] != "+15551234567" || len(c.Senders) != 1 || c.Senders[0] != "+15550001111" {
		t.Fatalf("recipients %v senders %v", c.Recipients, c.Senders)
	}
}
