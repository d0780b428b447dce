package twilio

import (
	"regexp"
	"strings"

	"github.com/keybrake/keybrake/internal/pattern"
)

// kind is what a call costs; kindNone costs nothing Keybrake can see.
type kind int

const (
	kindNone         kind = iota
	kindMessage           // an SMS or MMS: segments or one MMS, priced by destination
	kindCall              // an outbound call: minutes, priced by destination
	kindVerification      // a Verify message: free to Keybrake, but a billable unit
)

// endpoint is one row of the endpoint table.
type endpoint struct {
	method string
	path   pattern.Pattern
	op     string
	kind   kind
}

func ep(method, template, op string, k kind) endpoint {
	return endpoint{method: method, path: pattern.MustCompile(template), op: op, kind: k}
}

const acct = "/2010-04-01/Accounts/{account}"

// endpoints names the calls Keybrake knows. Placeholder names are SID
// kinds (see sidPatterns), so a path whose SID has the wrong prefix is
// refused rather than matched. A call not listed here gets Operation "" and
// costs nothing as far as Keybrake knows: the policy's allow list alone
// decides whether it passes (doc.go lists what that leaves unprotected).
var endpoints = []endpoint{
	ep("POST", acct+"/Messages.json", "messages.create", kindMessage),
	ep("GET", acct+"/Messages.json", "messages.list", kindNone),
	ep("GET", acct+"/Messages/{message}.json", "messages.retrieve", kindNone),
	ep("POST", acct+"/Messages/{message}.json", "messages.update", kindNone),
	ep("DELETE", acct+"/Messages/{message}.json", "messages.delete", kindNone),
	ep("GET", acct+"/Messages/{message}/Media.json", "messages.media.list", kindNone),
	ep("GET", acct+"/Messages/{message}/Media/{media}.json", "messages.media.retrieve", kindNone),
	ep("DELETE", acct+"/Messages/{message}/Media/{media}.json", "messages.media.delete", kindNone),

	ep("POST", acct+"/Calls.json", "calls.create", kindCall),
	ep("GET", acct+"/Calls.json", "calls.list", kindNone),
	ep("GET", acct+"/Calls/{call}.json", "calls.retrieve", kindNone),
	ep("POST", acct+"/Calls/{call}.json", "calls.update", kindNone),
	ep("DELETE", acct+"/Calls/{call}.json", "calls.delete", kindNone),

	ep("GET", "/2010-04-01/Accounts.json", "accounts.list", kindNone),
	ep("GET", acct+".json", "accounts.retrieve", kindNone),
	ep("GET", acct+"/Balance.json", "balance.retrieve", kindNone),

	ep("POST", "/v2/Services/{verify_service}/Verifications", "verify.verifications.create", kindVerification),
	ep("POST", "/v2/Services/{verify_service}/VerificationCheck", "verify.verification_checks.create", kindNone),
}

// sidPatterns are the SIDs Keybrake checks, by placeholder name. Twilio
// issues SIDs as two upper-case letters and 32 lower-case hex digits; its
// OpenAPI description also allows upper-case hex, which Twilio does not
// issue, so a SID spelt so is refused rather than guessed at.
var sidPatterns = map[string]*regexp.Regexp{
	"account":        regexp.MustCompile(`^AC[0-9a-f]{32}$`),
	"message":        regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`),
	"call":           regexp.MustCompile(`^CA[0-9a-f]{32}$`),
	"media":          regexp.MustCompile(`^ME[0-9a-f]{32}$`),
	"verify_service": regexp.MustCompile(`^VA[0-9a-f]{32}$`),
}

// literals are the fixed path segments of the endpoint table and their
// neighbours. A segment equal to one of them but for case is refused:
// Keybrake cannot know that Twilio's router tells "messages.json" from
// "Messages.json", and a create it did not recognise would go uncapped.
var literals = func() map[string]string {
	m := map[string]string{}
	add := func(s string) { m[strings.ToLower(s)] = s }
	for _, e := range endpoints {
		for _, seg := range strings.Split(e.path.String()[1:], "/") {
			if !strings.Contains(seg, "{") {
				add(seg)
			}
		}
	}
	for _, s := range []string{"Accounts", "Messages", "Calls", "Media", "Services", "Verifications", "SMS"} {
		add(s)
	}
	return m
}()

// checkPath refuses what Twilio's router might read otherwise than the
// endpoint table does. Under /2010-04-01 the resource format is part of
// the path, and only ".json" is read: "Messages" and "Messages.xml" create
// messages as surely as "Messages.json", so the last segment must end in
// ".json" and no other segment may hold a dot. A known segment written in
// another case is refused, anywhere under /2010-04-01 (whose segments are
// all Twilio's) and where Verify names its collections (elsewhere a
// segment may be the caller's own name, a Verify entity's identity). The
// SID after Accounts, Messages, Calls and Media, and after a Verify
// /v2/Services, must be of its kind, wherever the path goes on.
func checkPath(path string) error {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch segs[0] {
	case "2010-04-01":
		if err := checkCase(segs...); err != nil {
			return err
		}
		for i, s := range segs {
			last := i == len(segs)-1
			dots := strings.Count(s, ".")
			switch {
			case i == 0:
			case last && (dots != 1 || !strings.HasSuffix(s, ".json")):
				return invalid(codeBadPath, "path %q: Keybrake reads only .json resources", path)
			case !last && dots > 0:
				return invalid(codeBadPath, "path %q has a dot inside segment %q", path, s)
			}
		}
		return checkSIDs(segs)
	case "v2":
		if len(segs) > 3 {
			if err := checkCase(segs[3]); err != nil {
				return err
			}
		}
		if len(segs) > 1 {
			if err := checkCase(segs[1]); err != nil {
				return err
			}
		}
		if len(segs) > 2 && segs[1] == "Services" {
			return checkSID(segs[2], "verify_service")
		}
	}
	return nil
}

// checkCase refuses a segment that is one of the endpoint table's in
// another case.
func checkCase(segs ...string) error {
	for _, s := range segs {
		if lit, ok := literals[strings.ToLower(s)]; ok && lit != s {
			return invalid(codeBadPath, "path segment %q is %q in another case", s, lit)
		}
	}
	return nil
}

// checkSIDs checks the SIDs of a /2010-04-01 path by position:
// Accounts/{account}/Messages/{message}/Media/{media} and
// Accounts/{account}/Calls/{call}. Deeper resources (recordings, SIP
// domains, ...) are not checked; their calls cost nothing Keybrake counts.
func checkSIDs(segs []string) error {
	if len(segs) < 3 || segs[1] != "Accounts" {
		return nil
	}
	if err := checkSID(segs[2], "account"); err != nil {
		return err
	}
	if len(segs) < 5 {
		return nil
	}
	switch segs[3] {
	case "Messages":
		if err := checkSID(segs[4], "message"); err != nil {
			return err
		}
		if len(segs) > 6 && segs[5] == "Media" {
			return checkSID(segs[6], "media")
		}
	case "Calls":
		return checkSID(segs[4], "call")
	}
	return nil
}

func checkSID(seg, kind string) error {
	id := strings.TrimSuffix(seg, ".json")
	if re := sidPatterns[kind]; !re.MatchString(id) {
		return invalid(codeBadID, "path segment %q is not a %s SID (%s)", seg, kind, re)
	}
	return nil
}

// match finds the endpoint of a call. A nil endpoint is a call Keybrake
// does not know. checkPath has already checked the SIDs.
func match(method, path string) *endpoint {
	for i := range endpoints {
		e := &endpoints[i]
		if e.method != method {
			continue
		}
		if _, ok := e.path.Match(path); ok {
			return e
		}
	}
	return nil
}

func kindOf(op string) kind {
	if op == "" {
		return kindNone
	}
	for i := range endpoints {
		if endpoints[i].op == op {
			return endpoints[i].kind
		}
	}
	return kindNone
}
