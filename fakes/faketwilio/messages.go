package faketwilio

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keybrake/keybrake/money"
)

// The parameters a message create models. The ones besides To, From,
// MessagingServiceSid, Body, MediaUrl and SendAsMms are accepted and
// ignored, as nothing faketwilio models depends on them (MaxPrice has had
// no effect at Twilio since 2024). Everything else is refused, notably
// what changes the body or its cost in ways faketwilio does not model:
// ContentSid and ContentVariables (templates), SmartEncoded, ShortenUrls,
// SendAt and ScheduleType (scheduling), PersistentAction.
var (
	messageParams = []string{
		"To", "From", "MessagingServiceSid", "Body", "SendAsMms",
		"StatusCallback", "ApplicationSid", "ProvideFeedback", "Attempt", "ValidityPeriod", "MaxPrice",
	}
	messageLists = []string{"MediaUrl"}
)

var (
	e164           = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	shortCode      = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphaSenderID  = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	hasLetter      = regexp.MustCompile(`[A-Za-z]`)
	messagingSID   = regexp.MustCompile(`^MG[0-9a-f]{32}$`)
	applicationSID = regexp.MustCompile(`^AP[0-9a-f]{32}$`)
)

// Twilio's limits on a message.
const (
	maxBodyChars = 1600
	maxMediaURLs = 10
)

type messageObj struct {
	sid      string
	to       string
	from     string
	service  string
	body     string
	media    []string
	mms      bool
	segments int
	encoding string
	cost     money.Amount // positive, fixed when the message was sent
	created  time.Time
	priced   bool
	pricedAt time.Time
}

// Message is a message as faketwilio keeps it.
type Message struct {
	SID                 string //
	To                  string //
	From                string // "" when sent through a Messaging Service alone
	MessagingServiceSID string //
	Body                string //
	MediaURLs           []string
	MMS                 bool   // sent as MMS (MediaUrl or SendAsMms=true), priced per message
	Segments            int    // SMS segments; 1 for an MMS
	Encoding            string // GSM7 or UCS2
	// Price is what the message costs, positive, fixed when it was sent:
	// segments times the SMS unit price for its destination, or the MMS
	// price. The API shows it (negative) only once Priced.
	Price   money.Amount
	Priced  bool
	Status  string // as the API reports it now
	Created time.Time
}

func (m *messageObj) status() string {
	switch {
	case m.priced:
		return "sent"
	case m.from == "":
		return "accepted"
	}
	return "queued"
}

func (m *messageObj) export() Message {
	return Message{
		SID: m.sid, To: m.to, From: m.from, MessagingServiceSID: m.service, Body: m.body,
		MediaURLs: append([]string(nil), m.media...), MMS: m.mms,
		Segments: m.segments, Encoding: m.encoding, Price: m.cost, Priced: m.priced,
		Status: m.status(), Created: m.created,
	}
}

// Messages returns every message created so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.priceDue()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.export()
	}
	return out
}

// PriceMessages makes the price of every message sent so far visible
// through the API, as Twilio fills it in once a message has gone out: its
// status becomes "sent" and "price" the negative of what it cost. It
// returns how many messages it priced.
func (s *Server) PriceMessages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	n := 0
	for _, m := range s.messages {
		if !m.priced {
			m.priced, m.pricedAt = true, now
			n++
		}
	}
	return n
}

// priceDue prices the messages whose SetPriceDelay has passed. s.mu is
// held.
func (s *Server) priceDue() {
	if s.priceDelay <= 0 {
		return
	}
	now := s.now()
	for _, m := range s.messages {
		if at := m.created.Add(s.priceDelay); !m.priced && !now.Before(at) {
			m.priced, m.pricedAt = true, at.UTC()
		}
	}
}

func (s *Server) createMessage(c *call) (int, any, *apiError) {
	p := c.params
	to := p.str("To")
	if to == "" {
		return 0, nil, badRequest(codeMessageTo, "A 'To' phone number is required.")
	}
	if !e164.MatchString(to) {
		return 0, nil, badRequest(codeInvalidTo, "The 'To' number %s is not a valid phone number.", to)
	}
	from, service := p.str("From"), p.str("MessagingServiceSid")
	if from == "" && service == "" {
		return 0, nil, badRequest(codeMessageFrom, "A 'From' phone number is required.")
	}
	if from != "" && !e164.MatchString(from) && !shortCode.MatchString(from) &&
		!(alphaSenderID.MatchString(from) && hasLetter.MatchString(from)) {
		return 0, nil, badRequest(codeInvalidFrom, "The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", from)
	}
	if service != "" && !messagingSID.MatchString(service) {
		return 0, nil, badRequest(codeBadRequest, "The MessagingServiceSid %s is invalid.", service)
	}

	body, media := p.str("Body"), p.list("MediaUrl")
	if body == "" && len(media) == 0 {
		return 0, nil, badRequest(codeMessageBody, "Message body is required.")
	}
	if !utf8.ValidString(body) {
		return 0, nil, badRequest(codeBadRequest, "Body is not valid UTF-8 (faketwilio refuses it rather than guess how Twilio would read it)")
	}
	if utf8.RuneCountInString(body) > maxBodyChars {
		return 0, nil, badRequest(codeBodyTooLong, "The concatenated message body exceeds the %d character limit.", maxBodyChars)
	}
	if len(media) > maxMediaURLs {
		return 0, nil, badRequest(codeTooManyMediaURLs, "Too many media URLs: %d, at most %d.", len(media), maxMediaURLs)
	}
	for _, m := range media {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return 0, nil, badRequest(codeInvalidMediaURL, "Media URL %s is not a valid URL.", m)
		}
	}
	sendAsMMS := false
	if p.has("SendAsMms") {
		switch p.str("SendAsMms") {
		case "true":
			sendAsMMS = true
		case "false":
		default:
			return 0, nil, badRequest(codeBadRequest, "SendAsMms must be true or false, got %q.", p.str("SendAsMms"))
		}
	}

	mms := len(media) > 0 || sendAsMMS
	segments, encoding := Segments(body)
	var cost money.Amount
	if mms {
		if !strings.HasPrefix(to, "+1") {
			// Twilio sends MMS only within the US and Canada and turns
			// it into an SMS with a link elsewhere, priced by segments of
			// a body faketwilio does not know.
			return 0, nil, badRequest(codeBadRequest, "faketwilio models MMS only to +1 destinations, not %s", to)
		}
		segments, cost = 1, s.mmsPrices.lookup(to)
	} else {
		var err error
		if cost, err = s.smsPrices.lookup(to).Times(int64(segments)); err != nil {
			return 0, nil, badRequest(codeBadRequest, "faketwilio: pricing: %v", err)
		}
	}
	m := &messageObj{
		sid: s.newSID("SM"), to: to, from: from, service: service, body: body,
		media: append([]string(nil), media...), mms: mms,
		segments: segments, encoding: encoding, cost: cost, created: c.now,
	}
	s.messages = append(s.messages, m)
	return http.StatusCreated, s.renderMessage(m), nil
}

func (s *Server) getMessage(c *call) (int, any, *apiError) {
	for _, m := range s.messages {
		if m.sid == c.vars["Sid"] {
			return http.StatusOK, s.renderMessage(m), nil
		}
	}
	return 0, nil, notFound(c.r.URL.EscapedPath())
}

// messageJSON is a Message resource with the field names of the spec and
// of twilio-go's ApiV2010Message.
type messageJSON struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            nullable          `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        nullable          `json:"error_message"`
	From                nullable          `json:"from"`
	MessagingServiceSID nullable          `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               nullable          `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

func (s *Server) renderMessage(m *messageObj) messageJSON {
	u := uri(s.accountSID, "Messages", m.sid)
	j := messageJSON{
		AccountSID:          s.accountSID,
		APIVersion:          APIVersion,
		Body:                m.body,
		DateCreated:         m.created.Format(rfc2822),
		DateUpdated:         m.created.Format(rfc2822),
		Direction:           "outbound-api",
		From:                nullable(m.from),
		MessagingServiceSID: nullable(m.service),
		NumMedia:            strconv.Itoa(len(m.media)),
		NumSegments:         strconv.Itoa(m.segments),
		PriceUnit:           string(PriceUnit),
		SID:                 m.sid,
		Status:              m.status(),
		SubresourceURIs:     map[string]string{"media": strings.TrimSuffix(u, ".json") + "/Media.json"},
		To:                  m.to,
		URI:                 u,
	}
	if m.priced {
		j.Price = nullable(formatPrice(m.cost))
		j.DateSent = nullable(m.pricedAt.Format(rfc2822))
		j.DateUpdated = m.pricedAt.Format(rfc2822)
	} else if m.from == "" {
		// A Messaging Service picks the sender later; until then
		// Twilio reports 0 segments (see the spec's num_segments).
		j.NumSegments = "0"
	}
	return j
}
