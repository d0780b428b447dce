package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/internal/pattern"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// The schema of a policy file. Each key a mapping may hold is one line of
// its table; adding a key is adding a line (and a field to fill).

var policySchema = &schema[*Policy]{keys: map[string]key[*Policy]{
	"version":  {decode: decodeVersion, required: true},
	"timezone": {decode: decodeTimezone},
	"halt":     {decode: boolKey(func(p *Policy) *bool { return &p.Halt })},
	"fx":       {decode: decodeFX},
	"vendors":  {decode: decodeVendors},
	"agents":   {decode: decodeAgents, required: true},
}}

// vendorSchemas are the schemas that depend on the vendors a policy is
// parsed for: each vendor's name is a key of the vendors section and of an
// agent's section, and its Info adds keys to its grants and to its shared
// section. Nothing here names a vendor.
type vendorSchemas struct {
	infos   map[string]vendors.Info
	vendors *schema[*Policy]                  // the vendors section
	agent   *schema[*Agent]                   // an agent's section
	grant   map[string]*schema[*Grant]        // a grant, per vendor
	shared  map[string]*schema[*VendorLimits] // a vendor's shared section
}

// newVendorSchemas builds the schemas for vs, refusing a description the
// parser cannot follow (a key declared twice, or where it has no meaning).
func newVendorSchemas(vs []vendors.Vendor) (*vendorSchemas, error) {
	s := &vendorSchemas{
		infos:  make(map[string]vendors.Info, len(vs)),
		grant:  make(map[string]*schema[*Grant], len(vs)),
		shared: make(map[string]*schema[*VendorLimits], len(vs)),
	}
	sections := map[string]key[*Policy]{}
	agent := map[string]key[*Agent]{
		"revoked": {decode: boolKey(func(a *Agent) *bool { return &a.Revoked })},
	}
	for _, v := range vs {
		name, info := v.Name(), v.Info()
		if !agentName.MatchString(name) || name == "revoked" {
			return nil, fmt.Errorf("policy: vendor name %q cannot be a policy key", name)
		}
		if _, dup := s.infos[name]; dup {
			return nil, fmt.Errorf("policy: vendor %q is given twice", name)
		}
		s.infos[name] = info
		g, err := grantSchemaFor(name, info)
		if err != nil {
			return nil, err
		}
		l, err := sharedSchemaFor(name, info)
		if err != nil {
			return nil, err
		}
		s.grant[name], s.shared[name] = g, l
		sections[name] = vendorLimitsKey(name)
		agent[name] = grantKey(name)
	}
	s.vendors = &schema[*Policy]{keys: sections}
	s.agent = &schema[*Agent]{keys: agent}
	return s, nil
}

// grantSchemaFor is the common grant keys and those the vendor declares.
func grantSchemaFor(vendor string, info vendors.Info) (*schema[*Grant], error) {
	keys := make(map[string]key[*Grant], len(grantSchema.keys)+len(info.Grant))
	for k, v := range grantSchema.keys {
		keys[k] = v
	}
	budgetKeys(keys, true)
	approveKeys(keys)
	for i, k := range info.Grant {
		if _, dup := keys[k.Name]; dup || !paramName.MatchString(k.Name) {
			return nil, fmt.Errorf("policy: vendor %s declares grant key %q twice, over a common key, or not as a plain name", vendor, k.Name)
		}
		switch k.Kind {
		case vendors.CustomersKey:
			keys[k.Name] = key[*Grant]{decode: decodeCustomers}
		case vendors.AccountsKey:
			keys[k.Name] = key[*Grant]{decode: decodeAccounts}
		case vendors.ListKey:
			if k.Match == nil || k.Match.Check == nil || k.Match.Match == nil || k.Subject != vendors.Recipients && k.Subject != vendors.Senders {
				return nil, fmt.Errorf("policy: vendor %s: list key %q needs a Matcher and a subject of recipients or senders", vendor, k.Name)
			}
			keys[k.Name] = key[*Grant]{decode: listKey(k, i)}
		case vendors.MaxKey:
			if k.Subject != vendors.RecipientsPerEmail {
				return nil, fmt.Errorf("policy: vendor %s: maximum key %q needs a count subject", vendor, k.Name)
			}
			keys[k.Name] = key[*Grant]{decode: maxKey(k, i)}
		default:
			return nil, fmt.Errorf("policy: vendor %s: grant key %q has a kind a grant cannot hold", vendor, k.Name)
		}
	}
	return &schema[*Grant]{keys: keys, check: grantSchema.check}, nil
}

// sharedSchemaFor is a vendor's shared section: the limits every vendor
// has, its prices, and its own settings.
func sharedSchemaFor(vendor string, info vendors.Info) (*schema[*VendorLimits], error) {
	keys := map[string]key[*VendorLimits]{
		"daily_cap":   {decode: amountKey(func(l *VendorLimits) **money.Amount { return &l.DailyCap })},
		"daily_count": {decode: countKey(func(l *VendorLimits) *int64 { return &l.DailyCount })},
	}
	budgetKeys(keys, false)
	if len(info.Prices) > 0 {
		keys["prices"] = key[*VendorLimits]{decode: pricesKey(info.Prices...)}
	}
	for _, k := range info.Shared {
		if _, dup := keys[k.Name]; dup || !paramName.MatchString(k.Name) {
			return nil, fmt.Errorf("policy: vendor %s declares shared key %q twice, over a common key, or not as a plain name", vendor, k.Name)
		}
		name := k.Name
		switch k.Kind {
		case vendors.CountSetting:
			keys[name] = key[*VendorLimits]{decode: func(d *decoder, at string, kn, v *yaml.Node, l *VendorLimits) error {
				var n int64
				if err := countKey(func(*VendorLimits) *int64 { return &n })(d, at, kn, v, l); err != nil {
					return err
				}
				l.setting(name, n)
				return nil
			}}
		case vendors.FlagSetting:
			keys[name] = key[*VendorLimits]{decode: func(d *decoder, at string, kn, v *yaml.Node, l *VendorLimits) error {
				var b bool
				if err := boolKey(func(*VendorLimits) *bool { return &b })(d, at, kn, v, l); err != nil {
					return err
				}
				if b {
					l.setting(name, 1)
				}
				return nil
			}}
		default:
			return nil, fmt.Errorf("policy: vendor %s: shared key %q has a kind a shared section cannot hold", vendor, k.Name)
		}
	}
	return &schema[*VendorLimits]{keys: keys}, nil
}

func (l *VendorLimits) setting(name string, n int64) {
	if l.Settings == nil {
		l.Settings = make(map[string]int64)
	}
	l.Settings[name] = n
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
	return decodeMapping(d, at, k, v, d.schemas.vendors, p)
}

func vendorLimitsKey(vendor string) key[*Policy] {
	return key[*Policy]{decode: func(d *decoder, at string, k, v *yaml.Node, p *Policy) error {
		l := &VendorLimits{Vendor: vendor, Line: k.Line,
			dailyCapRule: "vendors." + vendor + ".daily_cap", dailyCountRule: "vendors." + vendor + ".daily_count"}
		p.Vendors[vendor] = l
		return decodeMapping(d, at, k, v, d.schemas.shared[vendor], l)
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
		return decodeMapping(d, join(at, name), k, val, d.schemas.agent, a)
	})
	if err == nil && len(p.Agents) == 0 {
		return d.errorf(v, at, "no agents; a policy names at least one")
	}
	return err
}

func grantKey(vendor string) key[*Agent] {
	return key[*Agent]{decode: func(d *decoder, at string, k, v *yaml.Node, a *Agent) error {
		g := &Grant{Vendor: vendor, Line: k.Line, rules: newGrantRules(a.Name, vendor)}
		a.Grants[vendor] = g
		if err := decodeMapping(d, at, k, v, d.schemas.grant[vendor], g); err != nil {
			return err
		}
		sort.SliceStable(g.Lists, func(i, j int) bool { return g.Lists[i].order < g.Lists[j].order })
		for _, r := range g.Allow {
			r.grant = g
		}
		return nil
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
	rules, err := d.ruleList(at, v)
	g.Allow = rules
	return err
}

// ruleList reads a list of rules: allow's, or approve's.
func (d *decoder) ruleList(at string, v *yaml.Node) ([]*Rule, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, d.wrongKind(at, v, `a list of rules such as "POST /v1/refunds"`)
	}
	rules := make([]*Rule, 0, len(v.Content))
	for i, item := range v.Content {
		r := &Rule{ID: fmt.Sprintf("%s[%d]", at, i), Line: item.Line}
		switch item.Kind {
		case yaml.MappingNode:
			if err := decodeMapping(d, r.ID, nil, item, ruleSchema, r); err != nil {
				return nil, err
			}
		case yaml.ScalarNode:
			if err := d.ruleText(item, r); err != nil {
				return nil, err
			}
		default:
			return nil, d.wrongKind(r.ID, item, `"METHOD /path" or a mapping with method and path`)
		}
		rules = append(rules, r)
	}
	return rules, nil
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
