package policy

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/internal/pattern"
	"github.com/keybrake/keybrake/money"
)

// The schema of a policy file. Each key a mapping may hold is one line of
// its table; adding a key is adding a line (and a field to fill).

// vendorNames are the vendors a policy can grant and limit: the keys of an
// agent's section and of the vendors section.
var vendorNames = []string{"stripe", "twilio", "resend"}

var policySchema = &schema[*Policy]{keys: map[string]key[*Policy]{
	"version": {decode: decodeVersion, required: true},
	"halt":    {decode: boolKey(func(p *Policy) *bool { return &p.Halt })},
	"fx":      {decode: decodeFX},
	"vendors": {decode: decodeVendors},
	"agents":  {decode: decodeAgents, required: true},
}}

var vendorsSchema = &schema[*Policy]{keys: withVendors(map[string]key[*Policy]{}, vendorLimitsKey)}

// vendorLimitsSchemas are the vendors section's keys, per vendor: the
// limits every vendor has, and the prices of those Keybrake prices itself.
var vendorLimitsSchemas = map[string]*schema[*VendorLimits]{
	"stripe": vendorLimitsSchema(nil),
	"twilio": vendorLimitsSchema(map[string]key[*VendorLimits]{
		"prices":              {decode: pricesKey("sms", "mms", "call_minute")},
		"assume_call_minutes": {decode: countKey(func(l *VendorLimits) *int64 { return &l.AssumeCallMinutes })},
	}),
	"resend": vendorLimitsSchema(map[string]key[*VendorLimits]{
		"prices":             {decode: pricesKey("email")},
		"bill_per_recipient": {decode: boolKey(func(l *VendorLimits) *bool { return &l.BillPerRecipient })},
		"broadcast_emails":   {decode: countKey(func(l *VendorLimits) *int64 { return &l.BroadcastEmails })},
	}),
}

func vendorLimitsSchema(extra map[string]key[*VendorLimits]) *schema[*VendorLimits] {
	keys := map[string]key[*VendorLimits]{
		"daily_cap":   {decode: amountKey(func(l *VendorLimits) **money.Amount { return &l.DailyCap })},
		"daily_count": {decode: countKey(func(l *VendorLimits) *int64 { return &l.DailyCount })},
	}
	for k, v := range extra {
		keys[k] = v
	}
	return &schema[*VendorLimits]{keys: keys}
}

// e164Prefix is a destination prefix in a price table: "+", then 1 to 15
// digits.
var e164Prefix = regexp.MustCompile(`^\+[0-9]{1,15}$`)

// pricesKey decodes a prices mapping whose items are the given names. An
// item is one price ("0.0004 USD") or a table by destination prefix with
// an optional default:
//
//	sms:
//	  default: 0.0079 USD
//	  "+44": 0.0400 USD
func pricesKey(items ...string) func(*decoder, string, *yaml.Node, *yaml.Node, *VendorLimits) error {
	return func(d *decoder, at string, _, v *yaml.Node, l *VendorLimits) error {
		l.Prices = make(map[string]*PriceTable)
		return d.entries(at, v, func(item string, k, val *yaml.Node) error {
			known := false
			for _, it := range items {
				known = known || it == item
			}
			if !known {
				return d.errAt(k.Line, "%s: unknown item; want %s", keyText(item), oneOf(items))
			}
			t := &PriceTable{Line: k.Line}
			l.Prices[item] = t
			at := join(at, item)
			if val.Kind == yaml.ScalarNode {
				p, err := d.price(at, val)
				if err != nil {
					return err
				}
				t.Default = &p
				return nil
			}
			t.Prefixes = make(map[string]money.Amount)
			err := d.entries(at, val, func(prefix string, pk, pv *yaml.Node) error {
				p, err := d.price(join(at, prefix), pv)
				if err != nil {
					return err
				}
				switch {
				case prefix == "default":
					t.Default = &p
				case e164Prefix.MatchString(prefix):
					t.Prefixes[prefix] = p
				default:
					return d.errAt(pk.Line, `%s: want default or a destination prefix such as "+44" (quoted)`, keyText(prefix))
				}
				return nil
			})
			if err == nil && t.Default == nil && len(t.Prefixes) == 0 {
				return d.errorf(val, at, "no prices")
			}
			return err
		})
	}
}

// price reads a unit price, which may hold a fraction of a minor unit
// ("0.0079 USD"; money.ParsePrice).
func (d *decoder) price(at string, v *yaml.Node) (money.Amount, error) {
	s, err := d.scalar(at, v, `a price such as "0.0079 USD"`)
	if err != nil {
		return money.Amount{}, err
	}
	p, err := money.ParsePrice(s)
	if err != nil {
		return money.Amount{}, d.errorf(v, at, "%v", err)
	}
	return p, nil
}

var agentSchema = &schema[*Agent]{keys: withVendors(map[string]key[*Agent]{
	"revoked": {decode: boolKey(func(a *Agent) *bool { return &a.Revoked })},
}, grantKey)}

// grantSchemas are each vendor's grant keys: the common ones and the
// vendor's scope.
var grantSchemas = map[string]*schema[*Grant]{
	"stripe": grantSchemaWith(map[string]key[*Grant]{
		"customers": {decode: decodeCustomers},
		"accounts":  {decode: decodeAccounts},
	}),
	"twilio": grantSchemaWith(map[string]key[*Grant]{
		"to":   {decode: listKey(func(g *Grant) *[]string { return &g.To }, checkPhone(true))},
		"from": {decode: listKey(func(g *Grant) *[]string { return &g.From }, checkPhoneOrService)},
	}),
	"resend": grantSchemaWith(map[string]key[*Grant]{
		"recipients":     {decode: listKey(func(g *Grant) *[]string { return &g.Recipients }, checkAddress)},
		"from":           {decode: listKey(func(g *Grant) *[]string { return &g.From }, checkAddress)},
		"max_recipients": {decode: countKey(func(g *Grant) *int64 { return &g.MaxRecipients })},
	}),
}

func grantSchemaWith(extra map[string]key[*Grant]) *schema[*Grant] {
	keys := make(map[string]key[*Grant], len(grantSchema.keys)+len(extra))
	for k, v := range grantSchema.keys {
		keys[k] = v
	}
	for k, v := range extra {
		keys[k] = v
	}
	return &schema[*Grant]{keys: keys, check: grantSchema.check}
}

var grantSchema = &schema[*Grant]{keys: map[string]key[*Grant]{
	"daily_cap":    {decode: amountKey(func(g *Grant) **money.Amount { return &g.DailyCap })},
	"per_call_max": {decode: amountKey(func(g *Grant) **money.Amount { return &g.PerCallMax })},
	"daily_count":  {decode: countKey(func(g *Grant) *int64 { return &g.DailyCount })},
	"allow":        {decode: decodeAllow},
}, check: checkGrant}

var ruleSchema = &schema[*Rule]{keys: map[string]key[*Rule]{
	"method":       {decode: decodeMethod, required: true},
	"path":         {decode: decodePath, required: true},
	"params":       {decode: decodeParams},
	"per_call_max": {decode: amountKey(func(r *Rule) **money.Amount { return &r.PerCallMax })},
	"uncapped":     {decode: boolKey(func(r *Rule) *bool { return &r.Uncapped })},
}}

// withVendors adds one key per vendor name to keys.
func withVendors[T any](keys map[string]key[T], each func(vendor string) key[T]) map[string]key[T] {
	for _, v := range vendorNames {
		keys[v] = each(v)
	}
	return keys
}

func decodeVersion(d *decoder, at string, _, v *yaml.Node, p *Policy) error {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Value != "1" {
		return d.errorf(v, at, "want 1, got %s; this Keybrake reads version 1 policies", describe(v))
	}
	p.Version = 1
	return nil
}

// decodeFX reads "EUR: 1.0850 USD" or "EUR: [1.0850 USD, 164.20 JPY]".
func decodeFX(d *decoder, at string, _, v *yaml.Node, p *Policy) error {
	p.FX = make(map[money.Currency][]money.Rate)
	return d.entries(at, v, func(name string, k, val *yaml.Node) error {
		from := money.Currency(name)
		if _, ok := from.Exponent(); !ok {
			return d.errAt(k.Line, "%s: not an upper-case ISO 4217 currency code Keybrake knows", keyText(name))
		}
		items := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			if len(val.Content) == 0 {
				return d.errorf(val, name, "want at least one rate")
			}
			items = val.Content
		}
		targets := make(map[money.Currency]int)
		for _, item := range items {
			s, err := d.scalar(name, item, `a rate such as "1.0850 USD"`)
			if err != nil {
				return err
			}
			rate, err := money.ParseRate(from, s)
			if err != nil {
				return d.errorf(item, name, "%v", err)
			}
			if line, dup := targets[rate.Per.Currency]; dup {
				return d.errorf(item, name, "a second rate from %s to %s (first at line %d)", from, rate.Per.Currency, line)
			}
			targets[rate.Per.Currency] = item.Line
			p.FX[from] = append(p.FX[from], rate)
		}
		return nil
	})
}

func decodeVendors(d *decoder, at string, k, v *yaml.Node, p *Policy) error {
	p.Vendors = make(map[string]*VendorLimits)
	return decodeMapping(d, at, k, v, vendorsSchema, p)
}

func vendorLimitsKey(vendor string) key[*Policy] {
	return key[*Policy]{decode: func(d *decoder, at string, k, v *yaml.Node, p *Policy) error {
		l := &VendorLimits{Vendor: vendor, Line: k.Line}
		p.Vendors[vendor] = l
		return decodeMapping(d, at, k, v, vendorLimitsSchemas[vendor], l)
	}}
}

var agentName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func decodeAgents(d *decoder, at string, _, v *yaml.Node, p *Policy) error {
	p.Agents = make(map[string]*Agent)
	err := d.entries(at, v, func(name string, k, val *yaml.Node) error {
		if !agentName.MatchString(name) {
			return d.errAt(k.Line, "%s: an agent name is 1 to 63 lower-case letters, digits, _ and -, starting with a letter or digit", keyText(name))
		}
		a := &Agent{Name: name, Grants: make(map[string]*Grant), Line: k.Line}
		p.Agents[name] = a
		return decodeMapping(d, join(at, name), k, val, agentSchema, a)
	})
	if err == nil && len(p.Agents) == 0 {
		return d.errorf(v, at, "no agents; a policy names at least one")
	}
	return err
}

func grantKey(vendor string) key[*Agent] {
	return key[*Agent]{decode: func(d *decoder, at string, k, v *yaml.Node, a *Agent) error {
		g := &Grant{Vendor: vendor, Line: k.Line}
		a.Grants[vendor] = g
		return decodeMapping(d, at, k, v, grantSchemas[vendor], g)
	}}
}

// checkGrant refuses a per-call maximum above the daily cap it sits under:
// it could never be reached, and a reader would believe it could.
func checkGrant(d *decoder, at string, g *Grant) error {
	if g.DailyCap == nil {
		return nil
	}
	above := func(max *money.Amount) bool {
		return max != nil && max.Currency == g.DailyCap.Currency && max.Micros > g.DailyCap.Micros
	}
	if above(g.PerCallMax) {
		return d.errAt(d.lineOf(g.PerCallMax, g.Line), "per_call_max: %s is above the daily_cap of %s", g.PerCallMax, g.DailyCap)
	}
	for _, r := range g.Allow {
		if above(r.PerCallMax) {
			return d.errAt(d.lineOf(r.PerCallMax, r.Line), "per_call_max: %s is above the daily_cap of %s", r.PerCallMax, g.DailyCap)
		}
	}
	return nil
}

func decodeAllow(d *decoder, at string, _, v *yaml.Node, g *Grant) error {
	if v.Kind != yaml.SequenceNode {
		return d.wrongKind(at, v, `a list of rules such as "POST /v1/refunds"`)
	}
	g.Allow = make([]*Rule, 0, len(v.Content))
	for i, item := range v.Content {
		r := &Rule{ID: fmt.Sprintf("%s[%d]", at, i), Line: item.Line}
		switch item.Kind {
		case yaml.MappingNode:
			if err := decodeMapping(d, r.ID, nil, item, ruleSchema, r); err != nil {
				return err
			}
		case yaml.ScalarNode:
			if err := d.ruleText(item, r); err != nil {
				return err
			}
		default:
			return d.wrongKind(r.ID, item, `"METHOD /path" or a mapping with method and path`)
		}
		g.Allow = append(g.Allow, r)
	}
	return nil
}

// ruleText reads the short form of a rule: "POST /v1/refunds", the method,
// exactly one space, and the path.
func (d *decoder) ruleText(v *yaml.Node, r *Rule) error {
	s, err := d.scalar(r.ID, v, `"METHOD /path"`)
	if err != nil {
		return err
	}
	method, path, ok := strings.Cut(s, " ")
	if !ok || strings.ContainsAny(path, " \t") || strings.ContainsAny(method, "\t") {
		return d.errorf(v, r.ID, "rule %q: want the method, one space and the path, as \"POST /v1/refunds\"", s)
	}
	if err := d.method(r.ID, v, method, r); err != nil {
		return err
	}
	return d.path(r.ID, v, path, r)
}

var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

func decodeMethod(d *decoder, at string, _, v *yaml.Node, r *Rule) error {
	s, err := d.scalar(at, v, "a method such as POST")
	if err != nil {
		return err
	}
	return d.method(parent(at), v, s, r)
}

func (d *decoder) method(at string, v *yaml.Node, s string, r *Rule) error {
	for _, m := range methods {
		if s == m {
			r.Method = m
			return nil
		}
	}
	return d.errorf(v, at, "method %q: want %s, in upper case", s, oneOf(methods))
}

func decodePath(d *decoder, at string, _, v *yaml.Node, r *Rule) error {
	s, err := d.scalar(at, v, "a path such as /v1/refunds")
	if err != nil {
		return err
	}
	return d.path(parent(at), v, s, r)
}

// parent drops the last key of a dotted path: a rule's method or path is
// reported against the rule ("allow[3]: method \"HEAD\": ..."), as the
// short form is.
func parent(at string) string {
	if i := strings.LastIndexByte(at, '.'); i >= 0 {
		return at[:i]
	}
	return at
}

func (d *decoder) path(at string, v *yaml.Node, s string, r *Rule) error {
	p, err := pattern.Compile(s)
	if err != nil {
		return d.errorf(v, at, "%v", err)
	}
	r.Path = p
	return nil
}

// paramName is a decoded parameter key as vendors send it: "capture_method",
// "metadata[tier]", "expand[]".
var paramName = regexp.MustCompile(`^[A-Za-z0-9_]+(\[[A-Za-z0-9_]*\])*$`)

func decodeParams(d *decoder, at string, _, v *yaml.Node, r *Rule) error {
	params := make(map[string][]string)
	err := d.entries(at, v, func(name string, k, val *yaml.Node) error {
		if !paramName.MatchString(name) {
			return d.errAt(k.Line, "%s: not a parameter name; want letters, digits and _, with [key] parts as the vendor sends them", keyText(name))
		}
		items := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			if len(val.Content) == 0 {
				return d.errAt(val.Line, "%s: an empty list allows no value; remove the rule instead", name)
			}
			items = val.Content
		}
		values := make([]string, 0, len(items))
		for _, item := range items {
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
				return d.errAt(item.Line, "%s: want a value or a list of values, got %s", name, describe(item))
			}
			for _, seen := range values {
				if seen == item.Value {
					return d.errAt(item.Line, "%s: value %q is listed twice", name, item.Value)
				}
			}
			values = append(values, item.Value)
		}
		params[name] = values
		return nil
	})
	if len(params) > 0 {
		r.Params = params
	}
	return err
}
