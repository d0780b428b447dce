package twilio

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keybrake/keybrake/vendors"
)

// FuzzClassify checks that Classify never panics, refuses only with an
// *vendors.Invalid, and that whatever it accepts reads the same to Go's
// parser as to Keybrake: valid names, one value per name but for Twilio's
// lists, no names differing only in case, and a priced call whose
// destination, quantity and count agree with what was sent.
func FuzzClassify(f *testing.F) {
	f.Add("POST", APIHost, messages, "", formType, []byte(sms("")))
	f.Add("POST", APIHost, messages, "", formType, []byte(sms("MediaUrl=https%3A%2F%2Fx%2Fa.png&MediaUrl=https%3A%2F%2Fx%2Fb.png")))
	f.Add("POST", APIHost, messages, "", formType, []byte("To=%2B15558675310&Body="+url.QueryEscape(strings.Repeat("€", 81))))
	f.Add("POST", APIHost, calls, "", formType, []byte("To=%2B15558675310&From=%2B15005550006&Url=https%3A%2F%2Fx&TimeLimit=61&StatusCallbackEvent=initiated&StatusCallbackEvent=completed"))
	f.Add("GET", APIHost, messages, "DateSent%3C=2026-01-01T00%3A00%3A00Z&PageSize=50", formType, []byte(""))
	f.Add("POST", APIHost, messages, "", formType, []byte(sms("Body=x")))
	f.Add("POST", APIHost, messages, "", formType, []byte(sms("body=x")))
	f.Add("POST", APIHost, accountPath+"/Messages", "", formType, []byte(sms("")))
	f.Add("POST", VerifyHost, "/v2/Services/"+testService+"/Verifications", "", formType, []byte("To=%2B15558675310&Channel=sms"))
	f.Fuzz(func(t *testing.T, method, host, path, query, contentType string, body []byte) {
		r := &vendors.Request{Method: method, Host: host, Path: path, Query: query, Body: body,
			Header: http.Header{"Content-Type": {contentType}}}
		c, err := Vendor{}.Classify(r)
		if err != nil {
			var inv *vendors.Invalid
			if !errors.As(err, &inv) || !strings.HasPrefix(inv.Code, "keybrake_") || inv.Reason == "" {
				t.Fatalf("Classify refused with %T %v, want *vendors.Invalid keybrake_...", err, err)
			}
			return
		}
		raw := query
		if method == "POST" {
			raw = string(body)
		}
		goParsed, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("accepted %q, which url.ParseQuery refuses: %v", raw, err)
		}
		if len(goParsed) != len(c.Params) {
			t.Fatalf("Params %v, url.ParseQuery %v", c.Params, goParsed)
		}
		folded := map[string]string{}
		for k, vs := range c.Params {
			if strings.Join(vs, "\x00") != strings.Join(goParsed[k], "\x00") {
				t.Fatalf("key %q: Params %q, url.ParseQuery %q", k, vs, goParsed[k])
			}
			if !keyRE.MatchString(k) {
				t.Fatalf("accepted key %q", k)
			}
			if len(vs) > 1 && !listParams[k] {
				t.Fatalf("accepted %q %d times", k, len(vs))
			}
			if prev, ok := folded[strings.ToLower(k)]; ok {
				t.Fatalf("accepted %q and %q", prev, k)
			}
			folded[strings.ToLower(k)] = k
			for _, v := range vs {
				if !utf8.ValidString(v) {
					t.Fatalf("accepted invalid UTF-8 in %q", k)
				}
			}
		}
		if _, ok := c.Audit["Body"]; ok {
			t.Fatal("Audit keeps the message text")
		}
		if c.MovesMoney && method != "POST" {
			t.Fatalf("a %s moves money: %+v", method, c)
		}
		if c.MovesMoney != (c.Priced != nil) {
			t.Fatalf("MovesMoney %v with Priced %+v", c.MovesMoney, c.Priced)
		}
		if p := c.Priced; p != nil {
			if !e164RE.MatchString(p.Destination) || p.Destination != c.Params.Get("To") {
				t.Fatalf("Destination %q, To %q", p.Destination, c.Params.Get("To"))
			}
			switch p.Item {
			case "sms":
				n, _ := Segments(c.Params.Get("Body"))
				if p.Quantity < 1 || p.Quantity != int64(n) || c.Count != p.Quantity {
					t.Fatalf("sms Quantity %d Count %d, Segments %d", p.Quantity, c.Count, n)
				}
				if _, media := c.Params["MediaUrl"]; media {
					t.Fatal("a message with media priced as SMS")
				}
			case "mms":
				if p.Quantity != 1 || c.Count != 1 || !strings.HasPrefix(p.Destination, "+1") {
					t.Fatalf("mms %+v Count %d", p, c.Count)
				}
			case "call_minute":
				if p.Quantity == 0 || p.Quantity < -1 || c.Count != 1 {
					t.Fatalf("call %+v Count %d", p, c.Count)
				}
				if _, limited := c.Params["TimeLimit"]; limited != (p.Quantity > 0) {
					t.Fatalf("call %+v with TimeLimit %q", p, c.Params["TimeLimit"])
				}
			default:
				t.Fatalf("Item %q", p.Item)
			}
			if _, tmpl := c.Params["ContentSid"]; tmpl {
				t.Fatal("a template message priced")
			}
		}
		if !c.MovesMoney && c.Count != 0 && c.Operation != "verify.verifications.create" {
			t.Fatalf("Count %d on %q", c.Count, c.Operation)
		}
	})
}

// FuzzSegments checks Segments against the brute-force reference, and
// that it never counts fewer parts than the minimum rule of keeping only
// escape pairs and surrogate pairs whole.
func FuzzSegments(f *testing.F) {
	for _, s := range []string{"", "Hello", strings.Repeat("a", 161), strings.Repeat("€", 81), strings.Repeat("中", 71),
		"e\u0301\u0301", "🇺🇸🇫🇷🇩", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "a\r\nb", "\xff\xfe", "\u1100\u1161\u11a8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 4000 {
			return // the reference is quadratic
		}
		n, enc := Segments(body)
		ref, refEnc := refSegments(body)
		if n != ref || enc != refEnc {
			t.Fatalf("Segments = %d, %s; reference %d, %s", n, enc, ref, refEnc)
		}
		if min := surrogateOnly(body); n < min {
			t.Fatalf("Segments = %d, fewer than %d", n, min)
		}
		if (body == "") != (n == 0) {
			t.Fatalf("Segments(%q) = %d", body, n)
		}
	})
}
