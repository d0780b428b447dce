package faketwilio

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// apiError is an answer in Twilio's error shape, the one twilio-go decodes
// into *client.TwilioRestError:
// {"code":..,"message":..,"more_info":..,"status":..}. twilio-go reads
// Status from the body, not from the HTTP status, so both are the same.
type apiError struct {
	status  int
	code    int
	message string
}

func (e *apiError) Error() string { return e.message }

type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func (e *apiError) body() []byte {
	return mustJSON(errorBody{
		Code:     e.code,
		Message:  e.message,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", e.code),
		Status:   e.status,
	})
}

// The Twilio error codes faketwilio answers with. Twilio documents each at
// https://www.twilio.com/docs/errors/<code>.
const (
	codeBadRequest       = 20001 // a parameter Twilio refuses, or one faketwilio does not model
	codeAuthenticate     = 20003 // wrong or missing credentials
	codeNotFound         = 20404 // no such resource or route
	codeTooManyRequests  = 20429
	codeInternal         = 20500
	codeUnavailable      = 20503
	codeCallTo           = 21201 // a call without To
	codeInvalidURL       = 21205 // a call's Url is not a URL
	codeInvalidTo        = 21211 // To is not a phone number
	codeInvalidFrom      = 21212 // From is not a phone number, short code or sender ID
	codeCallFrom         = 21213 // a call without From
	codeMessageBody      = 21602 // a message with neither Body nor MediaUrl
	codeMessageFrom      = 21603 // a message with neither From nor MessagingServiceSid
	codeMessageTo        = 21604 // a message without To
	codeBodyTooLong      = 21617 // a Body over 1600 characters
	codeInvalidMediaURL  = 21620
	codeTooManyMediaURLs = 21623
)

func badRequest(code int, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func notFound(path string) *apiError {
	return &apiError{
		status:  http.StatusNotFound,
		code:    codeNotFound,
		message: fmt.Sprintf("The requested resource %s was not found", path),
	}
}

func unauthorized() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: codeAuthenticate, message: "Authenticate"}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("faketwilio: render %T: %v", v, err))
	}
	return append(b, '\n')
}

// nullable is text that Twilio writes as null when absent.
type nullable string

func (n nullable) MarshalJSON() ([]byte, error) {
	if n == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(n))
}

// params are a write's decoded form parameters. Lists (MediaUrl,
// StatusCallbackEvent) come as repeated keys, as twilio-go sends them; any
// other key sent twice is refused, because which of the values Twilio
// would use is not something faketwilio knows, and a test must not pass
// on a guess.
type params struct {
	v url.Values
}

// check refuses a parameter the endpoint does not model (Twilio itself
// ignores unknown parameters, but a fake that ignored one could let a test
// pass on behaviour it never checked) and a scalar sent more than once.
func (p params) check(scalars, lists []string) *apiError {
	keys := make([]string, 0, len(p.v))
	for k := range p.v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case contains(lists, k):
		case contains(scalars, k):
			if len(p.v[k]) > 1 {
				return badRequest(codeBadRequest, "Parameter '%s' was sent %d times (faketwilio refuses a repeated scalar parameter)", k, len(p.v[k]))
			}
		default:
			all := append(append([]string{}, scalars...), lists...)
			sort.Strings(all)
			return badRequest(codeBadRequest, "Unknown parameter '%s' (faketwilio models only: %s)", k, strings.Join(all, ", "))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p params) has(k string) bool { _, ok := p.v[k]; return ok }

// str returns a scalar parameter; check has already refused repeats.
func (p params) str(k string) string { return p.v.Get(k) }

func (p params) list(k string) []string { return p.v[k] }

// clone returns a copy of the parameters for the log.
func (p params) clone() url.Values {
	out := url.Values{}
	for k, vs := range p.v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
