package resend

import (
	"regexp"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

// kind is what an operation costs; kindNone moves no money.
type kind int

const (
	kindNone kind = iota
	kindEmailSend
	kindEmailBatch
	kindBroadcastSend
	kindBroadcastCreate // sends at once when its body says "send": true
)

// endpoint is one row of the endpoint table. A template is "/" and
// segments; a segment "{id}" stands for one Resend ID (a UUID), anything
// else is literal.
type endpoint struct {
	method   string
	template string
	segments []string
	op       string
	kind     kind
}

func ep(method, template, op string, k kind) endpoint {
	return endpoint{method: method, template: template, segments: strings.Split(template[1:], "/"), op: op, kind: k}
}

// endpoints are the calls Keybrake knows: every path resend-go v2.28 calls
// and every path of Resend's OpenAPI spec 1.5.0. Operation names follow the
// spec's operationId ("emails/get" is "emails.get"); the three that send
// mail are emails.send, emails.batch and broadcasts.send, and
// broadcasts.create sends when asked to. A call not listed here gets
// Operation "" and moves no money as far as Keybrake knows: the policy's
// allowlist alone decides whether it passes.
var endpoints = []endpoint{
	// Calls that send mail.
	ep("POST", "/emails", "emails.send", kindEmailSend),
	ep("POST", "/emails/batch", "emails.batch", kindEmailBatch),
	ep("POST", "/broadcasts/{id}/send", "broadcasts.send", kindBroadcastSend),
	ep("POST", "/broadcasts", "broadcasts.create", kindBroadcastCreate),

	ep("GET", "/emails", "emails.list", kindNone),
	ep("GET", "/emails/metrics", "emails.metrics", kindNone),
	ep("GET", "/emails/receiving", "emails.list_receiving", kindNone),
	ep("GET", "/emails/receiving/{id}", "emails.get_receiving", kindNone),
	ep("GET", "/emails/receiving/{id}/attachments", "emails.list_receiving_attachments", kindNone),
	ep("GET", "/emails/receiving/{id}/attachments/{id}", "emails.get_receiving_attachment", kindNone),
	ep("GET", "/emails/{id}", "emails.get", kindNone),
	ep("PATCH", "/emails/{id}", "emails.update", kindNone),
	ep("POST", "/emails/{id}/cancel", "emails.cancel", kindNone),
	ep("POST", "/emails/{id}/share", "emails.share", kindNone),
	ep("GET", "/emails/{id}/attachments", "emails.list_attachments", kindNone),
	ep("GET", "/emails/{id}/attachments/{id}", "emails.get_attachment", kindNone),

	ep("GET", "/broadcasts", "broadcasts.list", kindNone),
	ep("GET", "/broadcasts/{id}", "broadcasts.get", kindNone),
	ep("PATCH", "/broadcasts/{id}", "broadcasts.update", kindNone),
	ep("DELETE", "/broadcasts/{id}", "broadcasts.remove", kindNone),
	ep("POST", "/broadcasts/{id}/cancel", "broadcasts.cancel", kindNone),
	ep("GET", "/broadcasts/{id}/recipients", "broadcasts.recipients", kindNone),
	ep("GET", "/broadcasts/{id}/clicked-links", "broadcasts.list_clicked_links", kindNone),

	ep("POST", "/domains", "domains.create", kindNone),
	ep("GET", "/domains", "domains.list", kindNone),
	ep("POST", "/domains/claim", "domains.create_claim", kindNone),
	ep("GET", "/domains/{id}", "domains.get", kindNone),
	ep("PATCH", "/domains/{id}", "domains.update", kindNone),
	ep("DELETE", "/domains/{id}", "domains.remove", kindNone),
	ep("POST", "/domains/{id}/verify", "domains.verify", kindNone),
	ep("GET", "/domains/{id}/claim", "domains.get_claim", kindNone),
	ep("POST", "/domains/{id}/claim/verify", "domains.verify_claim", kindNone),

	ep("POST", "/api-keys", "api_keys.create", kindNone),
	ep("GET", "/api-keys", "api_keys.list", kindNone),
	ep("PATCH", "/api-keys/{id}", "api_keys.update", kindNone),
	ep("DELETE", "/api-keys/{id}", "api_keys.remove", kindNone),
	ep("GET", "/oauth/grants", "oauth.list_grants", kindNone),
	ep("DELETE", "/oauth/grants/{id}", "oauth.revoke_grant", kindNone),

	ep("POST", "/audiences", "audiences.create", kindNone),
	ep("GET", "/audiences", "audiences.list", kindNone),
	ep("GET", "/audiences/{id}", "audiences.get", kindNone),
	ep("DELETE", "/audiences/{id}", "audiences.remove", kindNone),
	// resend-go v2.28 reaches contacts through their audience.
	ep("POST", "/audiences/{id}/contacts", "audiences.contacts.create", kindNone),
	ep("GET", "/audiences/{id}/contacts", "audiences.contacts.list", kindNone),
	ep("GET", "/audiences/{id}/contacts/{id}", "audiences.contacts.get", kindNone),
	ep("PATCH", "/audiences/{id}/contacts/{id}", "audiences.contacts.update", kindNone),
	ep("DELETE", "/audiences/{id}/contacts/{id}", "audiences.contacts.remove", kindNone),

	ep("POST", "/contacts", "contacts.create", kindNone),
	ep("GET", "/contacts", "contacts.list", kindNone),
	ep("GET", "/contacts/imports", "contacts.list_imports", kindNone),
	ep("POST", "/contacts/imports", "contacts.create_import", kindNone),
	ep("GET", "/contacts/imports/{id}", "contacts.get_import", kindNone),
	ep("GET", "/contacts/{id}", "contacts.get", kindNone),
	ep("PATCH", "/contacts/{id}", "contacts.update", kindNone),
	ep("DELETE", "/contacts/{id}", "contacts.remove", kindNone),
	ep("GET", "/contacts/{id}/segments", "contacts.list_segments", kindNone),
	ep("POST", "/contacts/{id}/segments/{id}", "contacts.add_segment", kindNone),
	ep("DELETE", "/contacts/{id}/segments/{id}", "contacts.remove_segment", kindNone),
	ep("GET", "/contacts/{id}/topics", "contacts.list_topics", kindNone),
	ep("PATCH", "/contacts/{id}/topics", "contacts.update_topics", kindNone),

	ep("POST", "/templates", "templates.create", kindNone),
	ep("GET", "/templates", "templates.list", kindNone),
	ep("GET", "/templates/{id}", "templates.get", kindNone),
	ep("PATCH", "/templates/{id}", "templates.update", kindNone),
	ep("DELETE", "/templates/{id}", "templates.remove", kindNone),
	ep("POST", "/templates/{id}/publish", "templates.publish", kindNone),
	ep("POST", "/templates/{id}/duplicate", "templates.duplicate", kindNone),

	ep("POST", "/webhooks", "webhooks.create", kindNone),
	ep("GET", "/webhooks", "webhooks.list", kindNone),
	ep("GET", "/webhooks/{id}", "webhooks.get", kindNone),
	ep("PATCH", "/webhooks/{id}", "webhooks.update", kindNone),
	ep("DELETE", "/webhooks/{id}", "webhooks.remove", kindNone),

	ep("POST", "/segments", "segments.create", kindNone),
	ep("GET", "/segments", "segments.list", kindNone),
	ep("GET", "/segments/{id}", "segments.get", kindNone),
	ep("DELETE", "/segments/{id}", "segments.remove", kindNone),
	ep("POST", "/topics", "topics.create", kindNone),
	ep("GET", "/topics", "topics.list", kindNone),
	ep("GET", "/topics/{id}", "topics.get", kindNone),
	ep("PATCH", "/topics/{id}", "topics.update", kindNone),
	ep("DELETE", "/topics/{id}", "topics.remove", kindNone),
	ep("POST", "/contact-properties", "contact_properties.create", kindNone),
	ep("GET", "/contact-properties", "contact_properties.list", kindNone),
	ep("GET", "/contact-properties/{id}", "contact_properties.get", kindNone),
	ep("PATCH", "/contact-properties/{id}", "contact_properties.update", kindNone),
	ep("DELETE", "/contact-properties/{id}", "contact_properties.remove", kindNone),

	ep("GET", "/logs", "logs.list", kindNone),
	ep("GET", "/logs/{id}", "logs.get", kindNone),

	// Automations and events send mail on Resend's side, later; doc.go
	// says why Keybrake cannot count it.
	ep("POST", "/automations", "automations.create", kindNone),
	ep("GET", "/automations", "automations.list", kindNone),
	ep("GET", "/automations/{id}", "automations.get", kindNone),
	ep("PATCH", "/automations/{id}", "automations.update", kindNone),
	ep("DELETE", "/automations/{id}", "automations.remove", kindNone),
	ep("POST", "/automations/{id}/duplicate", "automations.duplicate", kindNone),
	ep("POST", "/automations/{id}/stop", "automations.stop", kindNone),
	ep("GET", "/automations/{id}/runs", "automations.list_runs", kindNone),
	ep("GET", "/automations/{id}/runs/{id}", "automations.get_run", kindNone),
	ep("POST", "/events", "events.create", kindNone),
	ep("GET", "/events", "events.list", kindNone),
	ep("POST", "/events/send", "events.send", kindNone),
	ep("GET", "/events/{id}", "events.get", kindNone),
	ep("PATCH", "/events/{id}", "events.update", kindNone),
	ep("DELETE", "/events/{id}", "events.remove", kindNone),

	ep("POST", "/suppressions", "suppressions.add", kindNone),
	ep("GET", "/suppressions", "suppressions.list", kindNone),
	ep("POST", "/suppressions/batch/add", "suppressions.batch_add", kindNone),
	ep("POST", "/suppressions/batch/remove", "suppressions.batch_remove", kindNone),
	ep("GET", "/suppressions/{id}", "suppressions.get", kindNone),
	ep("DELETE", "/suppressions/{id}", "suppressions.remove", kindNone),
}

// idRE is a Resend ID: a UUID, in lower case as Resend writes them.
var idRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// match finds the endpoint a call is addressed to and the IDs its path
// names, in order. Literal segments win over IDs ("/emails/batch" is not an
// email named "batch"). A path shaped like a known endpoint whose ID is not
// a UUID is refused rather than treated as unknown: otherwise
// POST /broadcasts/x/send would pass as a call that moves nothing.
func match(method, path string) (*endpoint, []string, error) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var bad *endpoint
	var badID string
	for i := range endpoints {
		e := &endpoints[i]
		if e.method != method || len(e.segments) != len(segs) {
			continue
		}
		ids, wrong, ok := e.fit(segs)
		if !ok {
			continue
		}
		if wrong == "" {
			return e, ids, nil
		}
		if bad == nil {
			bad, badID = e, wrong
		}
	}
	if bad != nil {
		// A literal route of the same shape would have matched above.
		return nil, nil, invalid(codeBadID, "%s %s: %q is not a Resend ID (a lower-case UUID) in %s", method, vendors.Truncate(path, vendors.QuoteLimit), vendors.Truncate(badID, vendors.QuoteLimit), bad.template)
	}
	return nil, nil, nil
}

// fit reports whether segs have the endpoint's shape (its literals in
// place), the IDs, and the first placeholder value that is not an ID.
func (e *endpoint) fit(segs []string) (ids []string, wrong string, ok bool) {
	for i, s := range e.segments {
		if s != "{id}" {
			if segs[i] != s {
				return nil, "", false
			}
			continue
		}
		if !idRE.MatchString(segs[i]) {
			if wrong == "" {
				wrong = segs[i]
			}
			continue
		}
		ids = append(ids, segs[i])
	}
	return ids, wrong, true
}

// kindOf returns the kind of an operation by name.
func kindOf(op string) kind {
	for i := range endpoints {
		if endpoints[i].op == op {
			return endpoints[i].kind
		}
	}
	return kindNone
}
