package resend

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keybrake/keybrake/vendors"
)

// email is what Keybrake reads of one email object, of POST /emails or of
// one batch item.
type email struct {
	from              string   // as written, display name and all
	sender            string   // from's bare address, lower case
	to, cc, bcc       []string // bare addresses, lower case, as many as written
	subject           string
	tags              [][2]string // name, value
	attachments       int
	scheduledAt       string
	template, topicID string
}

// recipients counts the addresses the email goes to, each as Resend's
// quota counts them.
func (m *email) recipients() int64 { return int64(len(m.to) + len(m.cc) + len(m.bcc)) }

var (
	// tagRE is what Resend allows in a tag's name and value.
	tagRE = regexp.MustCompile(`^[A-Za-z0-9_-]{0,256}$`)
	// headerNameRE is an RFC 5322 field name.
	headerNameRE = regexp.MustCompile(`^[!-9;-~]+$`)
	// byteRE is one byte of attachment content as resend-go writes it.
	byteRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,2})$`)
)

// reservedHeaders are email headers an email's "headers" may not set: they
// name recipients or the sender, and so could reach people Keybrake did not
// count or pass for a sender the policy did not allow.
var reservedHeaders = []string{"to", "cc", "bcc", "from", "sender", "reply-to", "return-path"}

// decodeEmail reads one email object strictly: only the fields Resend
// documents and resend-go sends, each of its own JSON type (a number or
// null where a string belongs is refused), from and to present, every
// address one plain address. where prefixes reasons ("email [3]: ").
func decodeEmail(v *jsonValue, where string) (*email, error) {
	if v.kind != jsonObject {
		return nil, invalid(codeBadParam, "%sthe email is %s, not an object", where, v.kind)
	}
	m := &email{}
	var hasFrom, hasTo bool
	for _, f := range v.members {
		var err error
		switch f.key {
		case "from":
			hasFrom = true
			if m.from, err = str(f, where); err == nil {
				m.sender, err = checkAddress(m.from, "from", where)
			}
		case "to":
			hasTo = true
			m.to, err = addresses(f, where, 1)
		case "cc":
			m.cc, err = addresses(f, where, 0)
		case "bcc":
			m.bcc, err = addresses(f, where, 0)
		case "reply_to":
			_, err = addresses(f, where, 0)
		case "subject":
			if m.subject, err = str(f, where); err == nil && hasControl(m.subject) {
				err = invalid(codeBadParam, "%sthe subject holds a control character (a line break could add header lines)", where)
			}
		case "html", "text":
			_, err = str(f, where)
		case "headers":
			err = checkHeaders(f.value, where)
		case "tags":
			m.tags, err = tags(f.value, where)
		case "attachments":
			m.attachments, err = attachments(f.value, where)
		case "scheduled_at":
			m.scheduledAt, err = str(f, where)
		case "topic_id":
			m.topicID, err = str(f, where)
		case "template":
			m.template, err = template(f.value, where)
		default:
			err = invalid(codeUnknownParam, "%sfield %q is not one Keybrake knows in an email; it may change whom or how much Resend sends", where, vendors.Truncate(f.key, vendors.QuoteLimit))
		}
		if err != nil {
			return nil, err
		}
	}
	if !hasFrom {
		return nil, invalid(codeMissingParam, "%sthe email has no from", where)
	}
	if !hasTo {
		return nil, invalid(codeMissingParam, "%sthe email has no to", where)
	}
	return m, nil
}

// str reads a member that must be a JSON string.
func str(f jsonMember, where string) (string, error) {
	if f.value.kind != jsonString {
		return "", invalid(codeBadParam, "%s%s is %s, not a string", where, f.key, f.value.kind)
	}
	return f.value.text, nil
}

// addresses reads to, cc, bcc or reply_to: one address as a string, or an
// array of at least least and at most maxRecipients of them. It returns
// their bare addresses, lower case, one for each entry.
func addresses(f jsonMember, where string, least int) ([]string, error) {
	var list []string
	switch f.value.kind {
	case jsonString:
		list = []string{f.value.text}
	case jsonArray:
		for i, item := range f.value.items {
			if item.kind != jsonString {
				return nil, invalid(codeBadParam, "%s%s[%d] is %s, not a string", where, f.key, i, item.kind)
			}
			list = append(list, item.text)
		}
	default:
		return nil, invalid(codeBadParam, "%s%s is %s, not an address or a list of them", where, f.key, f.value.kind)
	}
	if len(list) < least {
		return nil, invalid(codeBadRecipients, "%s%s is empty; Resend needs at least one recipient", where, f.key)
	}
	if len(list) > maxRecipients {
		return nil, invalid(codeBadRecipients, "%s%s has %d addresses; Resend takes at most %d", where, f.key, len(list), maxRecipients)
	}
	bare := make([]string, len(list))
	for i, a := range list {
		var err error
		if bare[i], err = checkAddress(a, f.key+"["+strconv.Itoa(i)+"]", where); err != nil {
			return nil, err
		}
	}
	return bare, nil
}

// checkAddress accepts "addr@example.com", "<addr@example.com>" and
// "Display Name <addr@example.com>", the name optionally in double quotes,
// and returns the bare address in lower case, as scopes compare it. It
// refuses what could be read as more or fewer than one address, or as
// another sender: commas and semicolons anywhere (a list), "@" in the name
// ("billing@bank.com <x@evil.example>"), angle brackets or quotes out of
// place, control and invisible formatting characters.
func checkAddress(s, field, where string) (string, error) {
	bad := func(why string) (string, error) {
		return "", invalid(codeBadAddress, "%s%s %q: %s", where, field, vendors.Truncate(s, vendors.QuoteLimit), why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > 512 {
		return bad("longer than 512 bytes")
	}
	if strings.ContainsAny(s, ",;") {
		return bad("a comma or semicolon could make it a list; Keybrake counts one recipient per entry")
	}
	addr, name := s, ""
	if strings.HasSuffix(s, ">") {
		lt := strings.LastIndexByte(s, '<')
		if lt < 0 {
			return bad("'>' without '<'")
		}
		addr, name = s[lt+1:len(s)-1], s[:lt]
		if name != "" {
			if !strings.HasSuffix(name, " ") {
				return bad("want Name <address>, with one space before '<'")
			}
			name = name[:len(name)-1]
			if err := checkDisplayName(name); err != "" {
				return bad(err)
			}
		}
	}
	if why := plainAddress(addr); why != "" {
		return bad(why)
	}
	// plainAddress admits ASCII only, so lower-casing is byte by byte:
	// no Unicode case folding can make two addresses one.
	return strings.ToLower(addr), nil
}

// plainAddress checks an address as Keybrake counts it: an ASCII dot-atom
// local part of at most 64 characters, "@", and a domain name of at least
// two labels of letters, digits and inner hyphens; at most 254 in all.
// Quoted local parts, IP literals, comments and internationalised
// addresses are refused: each can be read as something else by some
// parser. It returns why not, or "".
func plainAddress(a string) string {
	at := strings.IndexByte(a, '@')
	if at < 0 || len(a) > 254 {
		return "not a plain address (local@domain, ASCII, at most 254 characters)"
	}
	local, domain := a[:at], a[at+1:]
	if local == "" || len(local) > 64 || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "the local part is not a dot-atom of at most 64 characters"
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !isAlnum(c) && c != '.' && !strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", rune(c)) {
			return "the local part holds a character outside a dot-atom"
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "the domain is not a domain name of two labels or more"
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "the domain has an empty, long or hyphen-edged label"
		}
		for i := 0; i < len(l); i++ {
			if !isAlnum(l[i]) && l[i] != '-' {
				return "the domain holds a character other than letters, digits, '-' and '.'"
			}
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func checkDisplayName(name string) string {
	if name == "" || strings.TrimSpace(name) != name {
		return "the display name is empty or has spaces at an end"
	}
	if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
		name = name[1 : len(name)-1]
	}
	if strings.ContainsAny(name, "\"\\<>@") {
		return "the display name holds a quote, backslash, angle bracket or @"
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "the display name holds a control or invisible formatting character"
		}
	}
	return ""
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// checkHeaders reads an email's custom headers: an object of string values
// whose names are RFC 5322 field names other than the reserved ones, and
// whose values hold no line break (which would add header lines).
func checkHeaders(v *jsonValue, where string) error {
	if v.kind != jsonObject {
		return invalid(codeBadParam, "%sheaders is %s, not an object", where, v.kind)
	}
	for _, h := range v.members {
		if !headerNameRE.MatchString(h.key) {
			return invalid(codeBadParam, "%sheader name %q is not a field name", where, vendors.Truncate(h.key, vendors.QuoteLimit))
		}
		lower := strings.ToLower(h.key)
		if slices.Contains(reservedHeaders, lower) || strings.HasPrefix(lower, "resent-") {
			return invalid(codeBadParam, "%sheader %s names recipients or the sender; use the email's own fields, which Keybrake counts", where, h.key)
		}
		if h.value.kind != jsonString {
			return invalid(codeBadParam, "%sheader %s is %s, not a string", where, h.key, h.value.kind)
		}
		if strings.IndexFunc(h.value.text, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) >= 0 {
			return invalid(codeBadParam, "%sheader %s holds a control character", where, h.key)
		}
	}
	return nil
}

// tags reads [{"name": ..., "value": ...}], as Resend restricts them.
func tags(v *jsonValue, where string) ([][2]string, error) {
	if v.kind != jsonArray {
		return nil, invalid(codeBadParam, "%stags is %s, not an array", where, v.kind)
	}
	out := make([][2]string, 0, len(v.items))
	for i, t := range v.items {
		if t.kind != jsonObject {
			return nil, invalid(codeBadParam, "%stags[%d] is %s, not an object", where, i, t.kind)
		}
		var tag [2]string
		var named bool
		for _, f := range t.members {
			s, err := str(f, where+"tags["+strconv.Itoa(i)+"].")
			if err != nil {
				return nil, err
			}
			switch f.key {
			case "name":
				tag[0], named = s, s != ""
			case "value":
				tag[1] = s
			default:
				return nil, invalid(codeUnknownParam, "%stags[%d] has field %q; a tag has name and value", where, i, vendors.Truncate(f.key, vendors.QuoteLimit))
			}
			if !tagRE.MatchString(s) {
				return nil, invalid(codeBadParam, "%stags[%d].%s %q: ASCII letters, digits, _ and - only, at most 256", where, i, f.key, vendors.Truncate(s, vendors.QuoteLimit))
			}
		}
		if !named {
			return nil, invalid(codeMissingParam, "%stags[%d] has no name", where, i)
		}
		out = append(out, tag)
	}
	return out, nil
}

// attachments reads the attachment list and returns its length. content is
// base64 text (the spec) or an array of byte values (resend-go); the other
// fields are strings.
func attachments(v *jsonValue, where string) (int, error) {
	if v.kind != jsonArray {
		return 0, invalid(codeBadParam, "%sattachments is %s, not an array", where, v.kind)
	}
	for i, a := range v.items {
		at := where + "attachments[" + strconv.Itoa(i) + "]."
		if a.kind != jsonObject {
			return 0, invalid(codeBadParam, "%sattachments[%d] is %s, not an object", where, i, a.kind)
		}
		for _, f := range a.members {
			switch f.key {
			case "content":
				if f.value.kind == jsonArray {
					for _, b := range f.value.items {
						if b.kind != jsonNumber || !byteRE.MatchString(b.text) || len(b.text) == 3 && b.text > "255" {
							return 0, invalid(codeBadParam, "%scontent holds %s, not a byte value", at, b.kind)
						}
					}
					continue
				}
				if _, err := str(f, at); err != nil {
					return 0, err
				}
			case "filename", "path", "content_type", "content_id", "inline_content_id":
				if _, err := str(f, at); err != nil {
					return 0, err
				}
			default:
				return 0, invalid(codeUnknownParam, "%sfield %q is not one Keybrake knows in an attachment", at, vendors.Truncate(f.key, vendors.QuoteLimit))
			}
		}
	}
	return len(v.items), nil
}

// template reads {"id": ..., "variables": {name: string or number}} and
// returns the template's id.
func template(v *jsonValue, where string) (string, error) {
	if v.kind != jsonObject {
		return "", invalid(codeBadParam, "%stemplate is %s, not an object", where, v.kind)
	}
	var id string
	for _, f := range v.members {
		switch f.key {
		case "id":
			s, err := str(f, where+"template.")
			if err != nil {
				return "", err
			}
			id = s
		case "variables":
			if f.value.kind != jsonObject {
				return "", invalid(codeBadParam, "%stemplate.variables is %s, not an object", where, f.value.kind)
			}
			for _, tv := range f.value.members {
				if tv.value.kind != jsonString && tv.value.kind != jsonNumber {
					return "", invalid(codeBadParam, "%stemplate.variables.%s is %s, not a string or number", where, vendors.Truncate(tv.key, vendors.QuoteLimit), tv.value.kind)
				}
			}
		default:
			return "", invalid(codeUnknownParam, "%sfield %q is not one Keybrake knows in a template", where, vendors.Truncate(f.key, vendors.QuoteLimit))
		}
	}
	if id == "" {
		return "", invalid(codeMissingParam, "%sthe template has no id", where)
	}
	return id, nil
}

// flattenEmail writes an email into params as flatten does, with two
// differences: to, cc, bcc and reply_to are always lists (a single address
// is to[0], as Resend reads a string as a list of one), so one policy
// condition holds whichever form the SDK used; and attachment content is
// left out (it is data, not a parameter, and may be large).
func flattenEmail(params map[string][]string, prefix string, v *jsonValue) error {
	for _, f := range v.members {
		key := sub(prefix, f.key)
		switch {
		case (f.key == "to" || f.key == "cc" || f.key == "bcc" || f.key == "reply_to") && f.value.kind == jsonString:
			params[key+"[0]"] = []string{f.value.text}
		case f.key == "attachments":
			for i, a := range f.value.items {
				for _, af := range a.members {
					if af.key == "content" {
						continue
					}
					if err := flatten(params, key+"["+strconv.Itoa(i)+"]["+af.key+"]", af.value); err != nil {
						return err
					}
				}
			}
		default:
			if err := flatten(params, key, f.value); err != nil {
				return err
			}
		}
	}
	return nil
}

// classifyEmail reads POST /emails: one email, Count 1, priced as one
// email to its recipients.
func classifyEmail(c *vendors.Call, body *jsonValue) error {
	m, err := decodeEmail(body, "")
	if err != nil {
		return err
	}
	if err := flattenEmail(c.Params, "", body); err != nil {
		return err
	}
	c.MovesMoney = true
	c.Count = 1
	c.Priced = &vendors.Priced{Item: "email", Quantity: 1, Recipients: m.recipients()}
	c.Recipients, c.Senders = parties([]*email{m})
	c.MostRecipients = m.recipients()
	c.Audit = auditEmails([]*email{m})
	return nil
}

// parties returns the bare addresses, lower case, deduplicated and
// sorted, that emails go to (to, cc and bcc; reply_to receives nothing)
// and come from, for recipient and sender scopes.
func parties(ms []*email) (recipients, senders []string) {
	rcpt, from := map[string]bool{}, map[string]bool{}
	for _, m := range ms {
		from[m.sender] = true
		for _, list := range [][]string{m.to, m.cc, m.bcc} {
			for _, a := range list {
				rcpt[a] = true
			}
		}
	}
	return vendors.SortedKeys(rcpt), vendors.SortedKeys(from)
}

// classifyBatch reads POST /emails/batch: an array of 1 to 100 emails,
// each read as classifyEmail reads one; Count is the number of emails.
// Params hold each email under emails[i] ("emails[0][from]") and, where
// every email has the same value for a top-level string field (from,
// subject...), that field under its own name, so that a policy condition
// on from holds for a batch exactly when it holds for every email in it.
func classifyBatch(c *vendors.Call, body *jsonValue, validation string) error {
	if body.kind != jsonArray {
		return invalid(codeBadBatch, "a batch is a JSON array of emails, not %s", body.kind)
	}
	n := len(body.items)
	if n == 0 || n > maxBatch {
		return invalid(codeBadBatch, "a batch holds 1 to %d emails, not %d", maxBatch, n)
	}
	ms := make([]*email, n)
	st := &state{items: int64(n), recipients: make([]int64, n)}
	var recipients int64
	var common url.Values
	for i, item := range body.items {
		m, err := decodeEmail(item, "email ["+strconv.Itoa(i)+"]: ")
		if err != nil {
			return err
		}
		ms[i] = m
		st.recipients[i] = m.recipients()
		recipients += m.recipients()
		own := url.Values{}
		if err := flattenEmail(own, "", item); err != nil {
			return err
		}
		for k, vs := range own {
			base, rest, _ := strings.Cut(k, "[")
			if rest != "" {
				rest = "[" + rest
			}
			c.Params["emails["+strconv.Itoa(i)+"]["+base+"]"+rest] = vs
		}
		common = intersect(common, own, i == 0)
	}
	for k, vs := range common {
		c.Params[k] = vs
	}
	c.MovesMoney = true
	c.Count = int64(n)
	c.Priced = &vendors.Priced{Item: "email", Quantity: int64(n), Recipients: recipients}
	c.Recipients, c.Senders = parties(ms)
	for _, m := range ms {
		c.MostRecipients = max(c.MostRecipients, m.recipients())
	}
	c.State = st
	c.Audit = auditEmails(ms)
	c.Audit["validation"] = validation
	return nil
}

// intersect keeps, of the top-level scalar fields in common, those own
// has with the same value; first starts the set from own.
func intersect(common, own url.Values, first bool) url.Values {
	if first {
		common = url.Values{}
		for k, vs := range own {
			if !strings.Contains(k, "[") {
				common[k] = vs
			}
		}
		return common
	}
	for k, vs := range common {
		if o, ok := own[k]; !ok || o[0] != vs[0] {
			delete(common, k)
		}
	}
	return common
}

// auditEmails is what the audit log keeps of one or more emails: the
// senders, how many emails and recipients, subject length, attachments,
// tags, schedule, template and topic. Never addresses of recipients,
// bodies, subjects or attachment content: they are personal data.
func auditEmails(ms []*email) map[string]string {
	out := make(map[string]string)
	var recipients int64
	var atts int
	from := map[string]bool{}
	tagValues := map[string][]string{}
	for _, m := range ms {
		recipients += m.recipients()
		atts += m.attachments
		from[m.from] = true
		for _, t := range m.tags {
			if !slices.Contains(tagValues[t[0]], t[1]) {
				tagValues[t[0]] = append(tagValues[t[0]], t[1])
			}
		}
	}
	out["from"] = vendors.RedactText(joinSorted(from))
	out["recipients"] = strconv.FormatInt(recipients, 10)
	out["attachments"] = strconv.Itoa(atts)
	for name, values := range tagValues {
		slices.Sort(values)
		if v, keep := vendors.RedactParam("tags["+name+"]", strings.Join(values, ", ")); keep {
			out["tags["+name+"]"] = v
		}
	}
	if len(ms) == 1 {
		m := ms[0]
		out["subject_length"] = strconv.Itoa(utf8.RuneCountInString(m.subject))
		for k, v := range map[string]string{"scheduled_at": m.scheduledAt, "template": m.template, "topic_id": m.topicID} {
			if v != "" {
				out[k] = vendors.RedactText(vendors.Truncate(v, vendors.QuoteLimit))
			}
		}
	} else {
		out["emails"] = strconv.Itoa(len(ms))
	}
	return out
}

func joinSorted(set map[string]bool) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}
