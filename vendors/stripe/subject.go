package stripe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/keybrake/keybrake/vendors"
)

// owner is a kind of Stripe object that belongs to a customer, and how
// Keybrake learns which one.
type owner struct {
	collection string // the path under /v1: "charges", "checkout/sessions"
	object     string // its "object" field: "charge", "checkout.session"
	// via, when not empty, are the fields naming the object whose
	// customer this one has, tried in order: a refund is its charge's
	// customer, or its payment intent's when it has no charge. Otherwise
	// the object's own customer field says.
	via []via
	// settled is true when a customer, once set, never changes, so that
	// it may be kept as a fact. No customer is never settled: a charge
	// without one may be given one, a checkout session gets one when paid.
	settled bool
}

type via struct{ field, kind string }

// owners are the kinds of objects a call can act on by ID, or name in a
// parameter, whose customer Keybrake can look up, keyed as idPatterns.
// What the API reference says about each customer field decides settled:
// charges take a customer only while they have none; payment intents,
// setup intents and payment methods (attach, detach) change theirs.
var owners = map[string]owner{
	"charge":                {collection: "charges", object: "charge", settled: true},
	"payment_intent":        {collection: "payment_intents", object: "payment_intent"},
	"invoice":               {collection: "invoices", object: "invoice", settled: true},
	"subscription":          {collection: "subscriptions", object: "subscription", settled: true},
	"setup_intent":          {collection: "setup_intents", object: "setup_intent"},
	"payment_method":        {collection: "payment_methods", object: "payment_method"},
	"checkout_session":      {collection: "checkout/sessions", object: "checkout.session", settled: true},
	"quote":                 {collection: "quotes", object: "quote", settled: true},
	"credit_note":           {collection: "credit_notes", object: "credit_note", settled: true},
	"invoiceitem":           {collection: "invoiceitems", object: "invoiceitem", settled: true},
	"subscription_schedule": {collection: "subscription_schedules", object: "subscription_schedule", settled: true},
	"refund": {collection: "refunds", object: "refund", settled: true,
		via: []via{{"charge", "charge"}, {"payment_intent", "payment_intent"}}},
	"dispute": {collection: "disputes", object: "dispute", settled: true,
		via: []via{{"charge", "charge"}, {"payment_intent", "payment_intent"}}},
	"subscription_item": {collection: "subscription_items", object: "subscription_item", settled: true,
		via: []via{{"subscription", "subscription"}}},
}

// ownerByCollection finds the owner kind of a collection in a path.
var ownerByCollection = func() map[string]string {
	m := make(map[string]string, len(owners))
	for k, o := range owners {
		m[o.collection] = k
	}
	return m
}()

// subjectParams are the top-level parameters that name an object of a
// customer: a refund's charge, a credit note's invoice, an invoice item's
// subscription, a list's filter (GET /v1/refunds?charge=ch_1 lists one
// charge's refunds). Each is looked up in this order. payment_method and
// source are not among them: a new card belongs to no customer yet, so
// looking it up would refuse every payment with one; Stripe itself
// refuses a payment method of one customer used for another.
var subjectParams = []struct{ name, kind string }{
	{"charge", "charge"},
	{"payment_intent", "payment_intent"},
	{"invoice", "invoice"},
	{"subscription", "subscription"},
	{"from_subscription", "subscription"},
	{"schedule", "subscription_schedule"},
	{"setup_intent", "setup_intent"},
	{"refund", "refund"},
}

// customerless are the operations whose objects never belong to a
// customer unless the request names one: Keybrake is certain they touch
// no customer's object and sets NoCustomer when Classify sees them. A
// charge or payment intent created without a customer belongs to none;
// Stripe refuses to charge a customer's saved card or payment method
// without naming the customer.
var customerless = map[string]bool{
	"charges.create":                 true,
	"payment_intents.create":         true,
	"checkout.sessions.create":       true,
	"payment_links.create":           true,
	"payment_links.update":           true,
	"transfers.create":               true,
	"transfer_reversals.create":      true,
	"payouts.create":                 true,
	"payouts.cancel":                 true,
	"topups.create":                  true,
	"topups.cancel":                  true,
	"application_fee_refunds.create": true,
}

// subject is one object whose customer is the call's.
type subject struct {
	kind string // key into owners
	id   string
}

func (s subject) path() string { return "/v1/" + owners[s.kind].collection + "/" + s.id }

// is reports whether path is s.path(), without building it: Classify
// compares every subject with the money lookup.
func (s subject) is(path string) bool {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, owners[s.kind].collection)
	return ok && len(rest) == 1+len(s.id) && rest[0] == '/' && rest[1:] == s.id
}

// subjectPath is the first object whose customer the money lookup does
// not tell, "" when there is none.
func (st *state) subjectPath() string {
	for _, s := range st.subjects {
		if !s.is(st.lookup) {
			return s.path()
		}
	}
	return ""
}

// subjects lists the objects a call acts on or names, in lookup order:
// the object of the path, then those its parameters name. A GET that
// names a customer needs no more: Stripe filters a list by every
// parameter, so the list holds that customer's objects only.
func subjects(method, col, id string, p url.Values) []subject {
	var out []subject
	add := func(s subject) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	if k, ok := ownerByCollection[col]; ok && id != "" {
		add(subject{kind: k, id: id})
	}
	if method == "GET" && p.Get("customer") != "" {
		return out
	}
	for _, sp := range subjectParams {
		// Classify has checked the value is an ID of the kind.
		if v, ok := p[sp.name]; ok {
			add(subject{kind: sp.kind, id: v[0]})
		}
	}
	return out
}

// scope fills in what Classify can tell of the customers a call touches:
// the lookups that will tell the rest (SubjectLookup), NoCustomer for the
// operations that never touch one, the charge a refund draws on, and the
// kind of object a create makes.
func scope(c *vendors.Call, e *endpoint, method, col, id string, vars map[string]string) {
	ss := subjects(method, col, id, c.Params)
	if len(ss) > 0 {
		st, ok := c.State.(*state)
		if !ok {
			st = &state{explicit: -1, before: -1}
			c.State = st
		}
		// The object the money lookup fetches goes first: that GET
		// tells its customer too, and SubjectLookup names only a GET
		// the Lookup does not make.
		for i, s := range ss {
			if st.lookup != "" && s.is(st.lookup) {
				ss[0], ss[i] = ss[i], ss[0]
				break
			}
		}
		st.subjects = ss
		if p := st.subjectPath(); p != "" {
			c.SubjectLookup = "GET " + p
		}
	}
	if e == nil {
		return
	}
	if customerless[e.op] && c.Customer == "" && len(ss) == 0 {
		c.NoCustomer = true
	}
	switch e.kind {
	case kindChargeRefundLegacy, kindChargeRefunds:
		c.RefundOf = vars["charge"]
	case kindRefundCreate:
		// A refund of a payment intent draws on its latest charge, which
		// Resolve reads from the intent.
		c.RefundOf = c.Params.Get("charge")
	}
	if e.op == "customers.create" {
		c.Creates = "customer"
	}
}

// resolveSubjects looks up the customer of every object the call acts on
// or names that the money lookup has not already told, and fills in
// Customer or NoCustomer. Every object must belong to the same customer,
// the one the request names, if any; an object without a customer sets
// NoCustomer, even when the request names one (it would attach the
// object to that customer).
func resolveSubjects(ctx context.Context, c *vendors.Call, st *state, get vendors.Getter, facts *factBook) error {
	for _, s := range st.subjects {
		if s.is(st.decided) {
			continue
		}
		cus, err := customerOf(ctx, c.Account, s, get, facts, 0)
		if err != nil {
			return fmt.Errorf("%w: GET %s: %w", ErrLookup, s.path(), err)
		}
		if err := setSubject(c, owners[s.kind].object+" "+s.id, cus); err != nil {
			return fmt.Errorf("%w: %w", ErrLookup, err)
		}
	}
	return nil
}

// setSubject records that the call touches what, of customer cus ("" for
// none).
func setSubject(c *vendors.Call, what, cus string) error {
	if cus == "" {
		c.NoCustomer = true
		return nil
	}
	if c.Customer != "" && c.Customer != cus {
		return fmt.Errorf("%s belongs to customer %s, the call to %s", what, cus, c.Customer)
	}
	c.Customer = cus
	return nil
}

// customerOf returns the customer of s, "" when it has none: from facts
// when a settled customer is kept there, else by fetching s (and, for a
// refund, dispute or subscription item, the object it belongs to).
func customerOf(ctx context.Context, account string, s subject, get vendors.Getter, facts *factBook, depth int) (string, error) {
	k := owners[s.kind]
	key := objectFactKey(account, k.object, s.id)
	if k.settled {
		if v, ok := facts.fact(ctx, key); ok {
			// A fact without a customer is not settled: look again.
			if f, err := parseObjectFact(v); err == nil && f.customer != "" {
				return f.customer, nil
			}
		}
	}
	status, body, err := get(ctx, s.path())
	if err != nil {
		return "", err
	}
	if status != 200 {
		return "", fmt.Errorf("answered %d", status)
	}
	o, err := parseObject(body, k.object)
	if err != nil {
		return "", err
	}
	if got, err := o.str("id"); err != nil {
		return "", err
	} else if got != s.id {
		return "", fmt.Errorf("answered %s %q, not %q", k.object, got, s.id)
	}
	var cus string
	settled := k.settled
	if len(k.via) == 0 {
		var present bool
		if cus, present, err = o.customer(); err != nil {
			return "", err
		} else if !present {
			return "", fmt.Errorf("the %s has no customer field", k.object)
		}
	} else {
		parent, err := o.parent(k)
		if err != nil {
			return "", err
		}
		if depth > 0 {
			return "", fmt.Errorf("the %s belongs to a %s, one step too many", k.object, parent.kind)
		}
		if cus, err = customerOf(ctx, account, parent, get, facts, depth+1); err != nil {
			return "", fmt.Errorf("its %s %s: %w", owners[parent.kind].object, parent.id, err)
		}
		settled = settled && owners[parent.kind].settled
	}
	if settled && cus != "" {
		cur, _ := o.currency() // kept when the object has one; "-" else
		facts.learn(key, objectFact{currency: cur, customer: cus}.String())
	}
	return cus, nil
}

// customer reads an object's customer field: an ID, an expanded customer
// (deleted or not), or null. present is false when the field is missing.
func (o object) customer() (cus string, present bool, err error) {
	if _, ok := o["customer"]; !ok {
		return "", false, nil
	}
	cus, ok, err := o.optionalID("customer")
	if err != nil {
		return "", true, err
	}
	if ok && !idPatterns["customer"].MatchString(cus) {
		return "", true, fmt.Errorf("customer %q is not a customer ID", vendors.Truncate(cus, vendors.QuoteLimit))
	}
	return cus, true, nil
}

// parent reads which object a refund, dispute or subscription item
// belongs to: the first of its via fields that is not null.
func (o object) parent(k owner) (subject, error) {
	for _, v := range k.via {
		id, ok, err := o.optionalID(v.field)
		if err != nil {
			return subject{}, err
		}
		if !ok {
			continue
		}
		if !idPatterns[v.kind].MatchString(id) {
			return subject{}, fmt.Errorf("%s %q is not a %s ID", v.field, vendors.Truncate(id, vendors.QuoteLimit), v.kind)
		}
		return subject{kind: v.kind, id: id}, nil
	}
	names := make([]string, len(k.via))
	for i, v := range k.via {
		names[i] = v.field
	}
	return subject{}, fmt.Errorf("the %s names no %v, so its customer is unknown", k.object, names)
}

// CustomerMetadata fetches customer with get and returns its metadata, for
// scopes that select customers by it. It refuses, wrapping ErrLookup, an ID
// that is not cus_..., a fetch that fails or does not answer 200, an answer
// that is not that customer, a deleted customer, and metadata that is
// missing, null, or holds anything but strings. The map is the caller's.
// CustomerMetadata is safe for concurrent use.
func (Vendor) CustomerMetadata(ctx context.Context, customer string, get vendors.Getter) (map[string]string, error) {
	if !idPatterns["customer"].MatchString(customer) {
		return nil, fmt.Errorf("%w: %q is not a customer ID", ErrLookup, vendors.Truncate(customer, vendors.QuoteLimit))
	}
	path := "/v1/customers/" + customer
	status, body, err := get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrLookup, path, err)
	}
	if status != 200 {
		return nil, fmt.Errorf("%w: GET %s answered %d", ErrLookup, path, status)
	}
	md, err := customerMetadata(body, customer)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrLookup, path, err)
	}
	return md, nil
}

var _ vendors.CustomerReader = Vendor{}

func customerMetadata(body []byte, id string) (map[string]string, error) {
	o, err := parseObject(body, "customer")
	if err != nil {
		return nil, err
	}
	if got, err := o.str("id"); err != nil {
		return nil, err
	} else if got != id {
		return nil, fmt.Errorf("answered customer %q, not %q", vendors.Truncate(got, vendors.QuoteLimit), id)
	}
	if _, ok := o["deleted"]; ok {
		// A deleted customer answers {"id", "object": "customer",
		// "deleted": true} and has no metadata left to select by.
		deleted, err := o.boolean("deleted")
		if err != nil {
			return nil, err
		}
		if deleted {
			return nil, fmt.Errorf("customer %s is deleted", id)
		}
	}
	raw, ok := o["metadata"]
	if !ok {
		return nil, fmt.Errorf("customer %s has no metadata field", id)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("metadata is not an object: %s", vendors.Truncate(string(raw), vendors.QuoteLimit))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	md := make(map[string]string, len(fields))
	for k, v := range fields {
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return nil, fmt.Errorf("metadata[%s] is not a string: %s", vendors.Truncate(k, vendors.QuoteLimit), vendors.Truncate(string(v), vendors.QuoteLimit))
		}
		md[k] = s
	}
	return md, nil
}
