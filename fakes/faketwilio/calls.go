package faketwilio

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/keybrake/keybrake/money"
)

// The parameters a call create models. Besides To, From, Url, Twiml,
// ApplicationSid and TimeLimit, the ones listed are accepted and ignored,
// as nothing faketwilio models depends on them; everything else is
// refused, notably what costs extra (Record, MachineDetection,
// transcription, SIP) or changes who is called (SendDigits, CallerId).
var (
	callParams = []string{
		"To", "From", "Url", "Twiml", "ApplicationSid", "TimeLimit",
		"Method", "Timeout", "StatusCallback", "StatusCallbackMethod", "FallbackUrl", "FallbackMethod",
	}
	callLists = []string{"StatusCallbackEvent"}
)

// Twilio's limits on a call's TimeLimit, in seconds: 4 hours unless set,
// 24 hours at most.
const (
	DefaultTimeLimit = 4 * 60 * 60
	maxTimeLimit     = 24 * 60 * 60
)

var digitsOnly = regexp.MustCompile(`^[0-9]{1,9}$`)

type callObj struct {
	sid       string
	to        string
	from      string
	timeLimit int          // seconds
	perMinute money.Amount // fixed when the call was placed
	created   time.Time

	completed bool
	duration  int          // seconds, once completed
	cost      money.Amount // positive, once completed
	start     time.Time
	end       time.Time
}

// Call is a call as faketwilio keeps it.
type Call struct {
	SID       string //
	To        string //
	From      string //
	TimeLimit int    // seconds: what the call may last at most
	Status    string // queued until completed; completed, or no-answer when it lasted 0 seconds
	Duration  int    // seconds, once completed
	// Price is what the call cost once completed, positive: its started
	// minutes times the per-minute price for its destination when it was
	// placed. Zero while it is in progress.
	Price     money.Amount
	Completed bool
}

func (c *callObj) status() string {
	switch {
	case !c.completed:
		return "queued"
	case c.duration == 0:
		return "no-answer"
	}
	return "completed"
}

// Calls returns every call placed so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = Call{
			SID: c.sid, To: c.to, From: c.from, TimeLimit: c.timeLimit, Status: c.status(),
			Duration: c.duration, Price: c.cost, Completed: c.completed,
		}
	}
	return out
}

// CompleteCalls ends every call still in progress as if it had lasted
// minutes (each at most its TimeLimit), so that it shows its duration
// and a negative price, as Twilio does once a call is over. It returns
// how many calls it completed, and panics if minutes < 0.
func (s *Server) CompleteCalls(minutes int) int {
	if minutes < 0 {
		panic("faketwilio: negative call duration")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	n := 0
	for _, c := range s.calls {
		if !c.completed {
			s.complete(c, minutes*60, now)
			n++
		}
	}
	return n
}

// CompleteCall ends one call in progress as if it had lasted seconds (at
// most its TimeLimit). It reports false when there is no such call or it
// is already over, and panics if seconds < 0.
func (s *Server) CompleteCall(sid string, seconds int) bool {
	if seconds < 0 {
		panic("faketwilio: negative call duration")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c.sid == sid && !c.completed {
			s.complete(c, seconds, s.now().UTC())
			return true
		}
	}
	return false
}

// complete ends a call. Twilio bills voice per started minute. s.mu is
// held.
func (s *Server) complete(c *callObj, seconds int, now time.Time) {
	if seconds > c.timeLimit {
		seconds = c.timeLimit
	}
	minutes := int64((seconds + 59) / 60)
	cost, err := c.perMinute.Times(minutes)
	if err != nil {
		panic(fmt.Sprintf("faketwilio: pricing a call: %v", err))
	}
	c.completed, c.duration, c.cost = true, seconds, cost
	c.end = now
	c.start = now.Add(-time.Duration(seconds) * time.Second)
}

func (s *Server) createCall(c *call) (int, any, *apiError) {
	p := c.params
	to, from := p.str("To"), p.str("From")
	if to == "" {
		return 0, nil, badRequest(codeCallTo, "No 'To' number is specified")
	}
	if !e164.MatchString(to) {
		// Twilio also calls client:, sip: and sim: addresses, which
		// faketwilio does not model.
		return 0, nil, badRequest(codeInvalidTo, "The 'To' number %s is not a valid phone number.", to)
	}
	if from == "" {
		return 0, nil, badRequest(codeCallFrom, "No 'From' number is specified")
	}
	if !e164.MatchString(from) {
		return 0, nil, badRequest(codeInvalidFrom, "The 'From' number %s is not a valid phone number.", from)
	}
	given := 0
	for _, k := range []string{"Url", "Twiml", "ApplicationSid"} {
		if p.str(k) != "" {
			given++
		}
	}
	switch {
	case given == 0:
		return 0, nil, badRequest(codeBadRequest, "Either a 'Url', 'ApplicationSid' or 'Twiml' parameter is required")
	case given > 1:
		return 0, nil, badRequest(codeBadRequest, "faketwilio refuses more than one of Url, Twiml and ApplicationSid (it does not model which Twilio would use)")
	}
	for _, k := range []string{"Url", "StatusCallback", "FallbackUrl"} {
		if v := p.str(k); v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return 0, nil, badRequest(codeInvalidURL, "%s is not a valid URL: %s", k, v)
			}
		}
	}
	if v := p.str("ApplicationSid"); v != "" && !applicationSID.MatchString(v) {
		return 0, nil, badRequest(codeBadRequest, "The ApplicationSid %s is invalid.", v)
	}
	for _, k := range []string{"Method", "StatusCallbackMethod", "FallbackMethod"} {
		if v := p.str(k); p.has(k) && v != "GET" && v != "POST" {
			return 0, nil, badRequest(codeBadRequest, "%s must be GET or POST, got %q", k, v)
		}
	}
	if p.has("Timeout") {
		if n, ok := seconds(p.str("Timeout")); !ok || n < 1 || n > 600 {
			return 0, nil, badRequest(codeBadRequest, "Timeout must be a whole number of seconds from 1 to 600, got %q", p.str("Timeout"))
		}
	}
	limit := DefaultTimeLimit
	if p.has("TimeLimit") {
		n, ok := seconds(p.str("TimeLimit"))
		if !ok || n < 1 || n > maxTimeLimit {
			return 0, nil, badRequest(codeBadRequest, "TimeLimit must be a whole number of seconds from 1 to %d, got %q", maxTimeLimit, p.str("TimeLimit"))
		}
		limit = n
	}
	obj := &callObj{
		sid: s.newSID("CA"), to: to, from: from, timeLimit: limit,
		perMinute: s.callPrices.lookup(to), created: c.now,
	}
	s.calls = append(s.calls, obj)
	return http.StatusCreated, s.renderCall(obj), nil
}

// seconds reads a plain decimal count.
func seconds(v string) (int, bool) {
	if !digitsOnly.MatchString(v) {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func (s *Server) getCall(c *call) (int, any, *apiError) {
	for _, obj := range s.calls {
		if obj.sid == c.vars["Sid"] {
			return http.StatusOK, s.renderCall(obj), nil
		}
	}
	return 0, nil, notFound(c.r.URL.EscapedPath())
}

// callJSON is a Call resource with the field names of the spec and of
// twilio-go's ApiV2010Call.
type callJSON struct {
	AccountSID      string            `json:"account_sid"`
	AnsweredBy      nullable          `json:"answered_by"`
	APIVersion      string            `json:"api_version"`
	CallerName      nullable          `json:"caller_name"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	Direction       string            `json:"direction"`
	Duration        nullable          `json:"duration"`
	EndTime         nullable          `json:"end_time"`
	ForwardedFrom   nullable          `json:"forwarded_from"`
	From            string            `json:"from"`
	FromFormatted   string            `json:"from_formatted"`
	GroupSID        nullable          `json:"group_sid"`
	ParentCallSID   nullable          `json:"parent_call_sid"`
	PhoneNumberSID  nullable          `json:"phone_number_sid"`
	Price           nullable          `json:"price"`
	PriceUnit       string            `json:"price_unit"`
	QueueTime       string            `json:"queue_time"`
	SID             string            `json:"sid"`
	StartTime       nullable          `json:"start_time"`
	Status          string            `json:"status"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	To              string            `json:"to"`
	ToFormatted     string            `json:"to_formatted"`
	TrunkSID        nullable          `json:"trunk_sid"`
	URI             string            `json:"uri"`
}

func (s *Server) renderCall(c *callObj) callJSON {
	u := uri(s.accountSID, "Calls", c.sid)
	base := u[:len(u)-len(".json")]
	j := callJSON{
		AccountSID:    s.accountSID,
		APIVersion:    APIVersion,
		DateCreated:   c.created.Format(rfc2822),
		DateUpdated:   c.created.Format(rfc2822),
		Direction:     "outbound-api",
		From:          c.from,
		FromFormatted: formatNumber(c.from),
		PriceUnit:     string(PriceUnit),
		QueueTime:     "0",
		SID:           c.sid,
		Status:        c.status(),
		SubresourceURIs: map[string]string{
			"notifications": base + "/Notifications.json",
			"recordings":    base + "/Recordings.json",
		},
		To:          c.to,
		ToFormatted: formatNumber(c.to),
		URI:         u,
	}
	if c.completed {
		j.Duration = nullable(strconv.Itoa(c.duration))
		j.Price = nullable(formatPrice(c.cost))
		j.StartTime = nullable(c.start.Format(rfc2822))
		j.EndTime = nullable(c.end.Format(rfc2822))
		j.DateUpdated = c.end.Format(rfc2822)
	}
	return j
}

// formatNumber writes a North American number as Twilio displays it,
// "(415) 867-5309", and any other as it is.
func formatNumber(n string) string {
	if len(n) == 12 && n[:2] == "+1" {
		return "(" + n[2:5] + ") " + n[5:8] + "-" + n[8:]
	}
	return n
}
