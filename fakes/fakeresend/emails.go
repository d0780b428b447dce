package fakeresend

import (
	"encoding/json"
	"net/http"
	"net/mail"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Resend's limits on one email and one batch.
const (
	MaxRecipients = 50  // addresses in each of to, cc and bcc
	MaxBatch      = 100 // emails in one batch
)

type emailObj struct {
	id          string
	from        string
	to          []string
	cc          []string
	bcc         []string
	replyTo     []string
	subject     string
	html        string
	text        string
	attachments int
	batch       bool
	created     time.Time
}

// Email is an email as fakeresend keeps it.
type Email struct {
	ID          string   //
	From        string   //
	To          []string // as sent: an address or "Name <address>"
	Cc          []string
	Bcc         []string
	ReplyTo     []string
	Subject     string
	HTML        string
	Text        string
	Attachments int       // how many attachments it carried
	Batch       bool      // sent through /emails/batch
	Created     time.Time //
}

func (e *emailObj) export() Email {
	return Email{
		ID: e.id, From: e.from, To: clone(e.to), Cc: clone(e.cc), Bcc: clone(e.bcc), ReplyTo: clone(e.replyTo),
		Subject: e.subject, HTML: e.html, Text: e.text, Attachments: e.attachments, Batch: e.batch, Created: e.created,
	}
}

func clone(s []string) []string { return append([]string(nil), s...) }

func (e *emailObj) recipients() int { return len(e.to) + len(e.cc) + len(e.bcc) }

// Emails returns every email sent so far through /emails and
// /emails/batch, oldest first. Broadcasts are not emails here; see
// Broadcasts.
func (s *Server) Emails() []Email {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Email, len(s.emails))
	for i, e := range s.emails {
		out[i] = e.export()
	}
	return out
}

// Sent returns how many emails were sent through /emails and
// /emails/batch: what Resend counts against a plan's quota.
func (s *Server) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.emails)
}

// Recipients returns how many addresses those emails went to, to, cc and
// bcc together, each counted as often as it was sent to.
func (s *Server) Recipients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.emails {
		n += e.recipients()
	}
	return n
}

// emailFields are the fields of an email fakeresend models: resend-go's
// SendEmailRequest. Any other is refused, so that a test never passes on
// a field that was silently ignored.
var emailFields = []string{"attachments", "bcc", "cc", "from", "headers", "html", "reply_to", "scheduled_at", "subject", "tags", "text", "to"}

var attachmentFields = []string{"content", "content_id", "content_type", "filename", "inline_content_id", "path"}

var tagPart = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// email is one email being read from a request body.
type email struct {
	fields map[string]json.RawMessage
}

// parseEmail reads and validates one email, in a batch or alone.
func parseEmail(raw json.RawMessage, inBatch bool) (*emailObj, *apiError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, invalid("An email must be a JSON object.")
	}
	e := email{fields}
	if err := e.only(emailFields); err != nil {
		return nil, err
	}
	out := &emailObj{batch: inBatch}
	var err *apiError
	from, err := e.str("from")
	if err != nil {
		return nil, err
	}
	if from == "" {
		return nil, missing("from")
	}
	if !validAddress(from) {
		return nil, invalid("Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.")
	}
	out.from = from
	if out.to, err = e.addresses("to"); err != nil {
		return nil, err
	}
	if len(out.to) == 0 {
		return nil, missing("to")
	}
	if out.cc, err = e.addresses("cc"); err != nil {
		return nil, err
	}
	if out.bcc, err = e.addresses("bcc"); err != nil {
		return nil, err
	}
	if out.replyTo, err = e.addresses("reply_to"); err != nil {
		return nil, err
	}
	if out.subject, err = e.str("subject"); err != nil {
		return nil, err
	}
	if out.subject == "" {
		return nil, missing("subject")
	}
	if out.html, err = e.str("html"); err != nil {
		return nil, err
	}
	if out.text, err = e.str("text"); err != nil {
		return nil, err
	}
	if out.html == "" && out.text == "" {
		// Resend also builds bodies from templates and React, which
		// fakeresend does not model.
		return nil, missing("html` or `text")
	}
	if err := e.headers(); err != nil {
		return nil, err
	}
	if err := e.tags(); err != nil {
		return nil, err
	}
	if out.attachments, err = e.attachments(inBatch); err != nil {
		return nil, err
	}
	if at, err := e.str("scheduled_at"); err != nil {
		return nil, err
	} else if at != "" {
		return nil, invalid("fakeresend does not model scheduled emails (`scheduled_at`).")
	}
	return out, nil
}

func (e email) only(known []string) *apiError {
	keys := make([]string, 0, len(e.fields))
	for k := range e.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(known, k) {
			return invalid("Unknown field `%s` (fakeresend models only: %s).", k, strings.Join(known, ", "))
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

func isNull(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

// str reads a string field; absent and null read as "".
func (e email) str(field string) (string, *apiError) {
	raw := e.fields[field]
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("Invalid `%s` field: it must be a string.", field)
	}
	return s, nil
}

// addresses reads an address field: one address as a string, or an array
// of them, at most MaxRecipients.
func (e email) addresses(field string) ([]string, *apiError) {
	raw := e.fields[field]
	if isNull(raw) {
		return nil, nil
	}
	var list []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one != "" {
			list = []string{one}
		}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid("Invalid `%s` field: it must be a string or an array of strings.", field)
	}
	if len(list) > MaxRecipients {
		return nil, invalid("Invalid `%s` field: %d addresses, at most %d.", field, len(list), MaxRecipients)
	}
	for _, a := range list {
		if !validAddress(a) {
			return nil, invalid("Invalid `%s` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.", field)
		}
	}
	return list, nil
}

// validAddress accepts "user@example.com" and "Name <user@example.com>":
// one address, whose domain has a dot.
func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return false
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 {
		return false
	}
	domain := a.Address[at+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".") &&
		!strings.ContainsAny(a.Address, " \t\r\n")
}

func (e email) headers() *apiError {
	raw := e.fields["headers"]
	if isNull(raw) {
		return nil
	}
	var h map[string]string
	if err := json.Unmarshal(raw, &h); err != nil {
		return invalid("Invalid `headers` field: it must be an object of strings.")
	}
	return nil
}

func (e email) tags() *apiError {
	raw := e.fields["tags"]
	if isNull(raw) {
		return nil
	}
	var tags []struct {
		Name  *string `json:"name"`
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(raw, &tags); err != nil {
		return invalid("Invalid `tags` field: it must be an array of {name, value}.")
	}
	for _, t := range tags {
		if t.Name == nil || !tagPart.MatchString(*t.Name) || (t.Value != nil && !tagPart.MatchString(*t.Value)) {
			return invalid("Invalid `tags` field: names and values may hold only ASCII letters, digits, underscores and dashes.")
		}
	}
	return nil
}

func (e email) attachments(inBatch bool) (int, *apiError) {
	raw := e.fields["attachments"]
	if isNull(raw) {
		return 0, nil
	}
	if inBatch {
		return 0, invalid("Attachments are not supported in batch emails.")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, invalid("Invalid `attachments` field: it must be an array.")
	}
	for _, a := range list {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(a, &fields); err != nil || fields == nil {
			return 0, invalid("Invalid `attachments` field: each attachment must be an object.")
		}
		att := email{fields}
		if err := att.only(attachmentFields); err != nil {
			return 0, err
		}
		if isNull(fields["content"]) && isNull(fields["path"]) {
			return 0, &apiError{status: http.StatusUnprocessableEntity, name: nameInvalidAttachment, message: "Attachment must have either a `content` or `path`."}
		}
	}
	return len(list), nil
}

// newEmailID returns the next email ID, UUID-shaped and counting from 1
// ("00000000-0000-4000-8000-000000000001"), so that tests and examples
// can name them.
func (s *Server) newEmailID() string {
	s.emailSeq++
	return "00000000-0000-4000-8000-" + hex12(s.emailSeq)
}

func hex12(n int) string {
	const digits = "0123456789abcdef"
	b := []byte("000000000000")
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		b[i] = digits[n%16]
		n /= 16
	}
	return string(b)
}

func (s *Server) store(e *emailObj, now time.Time) {
	e.id, e.created = s.newEmailID(), now
	s.emails = append(s.emails, e)
}

type idJSON struct {
	ID string `json:"id"`
}

func (s *Server) sendEmail(c *call) (any, *apiError) {
	e, err := parseEmail(c.body, false)
	if err != nil {
		return nil, err
	}
	s.store(e, c.now)
	return idJSON{e.id}, nil
}

// batchError is one refused email of a permissive batch.
type batchError struct {
	Index   int    `json:"index"`
	Message string `json:"message"`
}

type batchJSON struct {
	Data   []idJSON      `json:"data"`
	Errors *[]batchError `json:"errors,omitempty"` // only in permissive mode, where it is always there
}

// The values of the x-batch-validation header.
const (
	Strict     = "strict"     // any invalid email refuses the whole batch (the default)
	Permissive = "permissive" // valid emails are sent, invalid ones reported
)

func (s *Server) sendBatch(c *call) (any, *apiError) {
	mode := c.r.Header.Get("X-Batch-Validation")
	switch mode {
	case "":
		mode = Strict
	case Strict, Permissive:
	default:
		return nil, invalid("Invalid `x-batch-validation` header: it must be %s or %s.", Strict, Permissive)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(c.body, &items); err != nil {
		return nil, invalid("The request body must be an array of emails.")
	}
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, invalid("A batch holds 1 to %d emails, not %d.", MaxBatch, len(items))
	}
	parsed := make([]*emailObj, len(items))
	var refused []batchError
	for i, raw := range items {
		e, err := parseEmail(raw, true)
		if err != nil {
			if mode == Strict {
				err.message = "emails[" + itoa(i) + "]: " + err.message
				return nil, err
			}
			refused = append(refused, batchError{Index: i, Message: err.message})
			continue
		}
		parsed[i] = e
	}
	out := batchJSON{Data: []idJSON{}}
	for _, e := range parsed {
		if e != nil {
			s.store(e, c.now)
			out.Data = append(out.Data, idJSON{e.id})
		}
	}
	if mode == Permissive {
		if refused == nil {
			refused = []batchError{}
		}
		out.Errors = &refused
	}
	return out, nil
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// emailJSON is an email as GET /emails/{id} answers it, with the field
// names of resend-go's Email.
type emailJSON struct {
	Object    string   `json:"object"`
	ID        string   `json:"id"`
	To        []string `json:"to"`
	From      string   `json:"from"`
	CreatedAt string   `json:"created_at"`
	Subject   string   `json:"subject"`
	HTML      *string  `json:"html"`
	Text      *string  `json:"text"`
	Bcc       []string `json:"bcc"`
	Cc        []string `json:"cc"`
	ReplyTo   []string `json:"reply_to"`
	LastEvent string   `json:"last_event"`
}

func (s *Server) getEmail(c *call) (any, *apiError) {
	id := c.vars["id"]
	if !uuidPattern.MatchString(id) {
		return nil, &apiError{status: http.StatusUnprocessableEntity, name: nameInvalidParameter, message: "The `id` must be a valid UUID."}
	}
	for _, e := range s.emails {
		if e.id == id {
			j := emailJSON{
				Object: "email", ID: e.id, To: clone(e.to), From: e.from,
				CreatedAt: e.created.UTC().Format("2006-01-02T15:04:05.000000-07:00"),
				Subject:   e.subject, Bcc: e.bcc, Cc: e.cc, ReplyTo: e.replyTo,
				// Delivery is not modelled: every email stays sent.
				LastEvent: "sent",
			}
			if e.html != "" {
				j.HTML = &e.html
			}
			if e.text != "" {
				j.Text = &e.text
			}
			return j, nil
		}
	}
	return nil, notFound("Email not found")
}
