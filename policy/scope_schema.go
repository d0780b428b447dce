package policy

import (
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/vendors"
)

// The scope keys of a grant: whom an agent may act on.

var customerScopeSchema = &schema[*CustomerScope]{keys: map[string]key[*CustomerScope]{
	"created_by_agent":       {decode: boolKey(func(c *CustomerScope) *bool { return &c.CreatedByAgent })},
	"ids":                    {decode: decodeCustomerIDs},
	"metadata":               {decode: decodeMetadata},
	"allow_no_customer":      {decode: boolKey(func(c *CustomerScope) *bool { return &c.AllowNoCustomer })},
	"daily_cap":              {decode: amountKey(func(c *CustomerScope) **money.Amount { return &c.DailyCap })},
	"daily_count":            {decode: countKey(func(c *CustomerScope) *int64 { return &c.DailyCount })},
	"max_refunds_per_charge": {decode: countKey(func(c *CustomerScope) *int64 { return &c.MaxRefundsPerCharge })},
}, check: checkCustomerScope}

var accountScopeSchema = &schema[*AccountScope]{keys: map[string]key[*AccountScope]{
	"ids":      {decode: decodeAccountIDs},
	"platform": {decode: boolKey(func(a *AccountScope) *bool { return &a.Platform })},
}}

func decodeCustomers(d *decoder, at string, k, v *yaml.Node, g *Grant) error {
	c := &CustomerScope{Line: k.Line}
	g.Customers = c
	if err := decodeMapping(d, at, k, v, customerScopeSchema, c); err != nil {
		return err
	}
	if c.MaxRefundsPerCharge == 0 {
		c.MaxRefundsPerCharge = 1
	}
	return nil
}

// checkCustomerScope refuses a scope that admits nobody: it would read as
// a limit and act as a wall.
func checkCustomerScope(d *decoder, at string, c *CustomerScope) error {
	if !c.CreatedByAgent && len(c.IDs) == 0 && len(c.Metadata) == 0 && !c.AllowNoCustomer {
		return d.errAt(c.Line, "%s: admits no customer; set created_by_agent, ids or metadata", lastKey(at))
	}
	return nil
}

func decodeAccounts(d *decoder, at string, k, v *yaml.Node, g *Grant) error {
	a := &AccountScope{Line: k.Line}
	g.Accounts = a
	return decodeMapping(d, at, k, v, accountScopeSchema, a)
}

var (
	customerID = regexp.MustCompile(`^cus_[A-Za-z0-9]+$`)
	accountID  = regexp.MustCompile(`^acct_[A-Za-z0-9]+$`)
)

func decodeCustomerIDs(d *decoder, at string, _, v *yaml.Node, c *CustomerScope) error {
	ids, err := d.stringList(at, v, func(s string) error {
		if !customerID.MatchString(s) {
			return fmt.Errorf("%q is not a customer ID (cus_...)", s)
		}
		return nil
	})
	c.IDs = ids
	return err
}

func decodeAccountIDs(d *decoder, at string, _, v *yaml.Node, a *AccountScope) error {
	ids, err := d.stringList(at, v, func(s string) error {
		if !accountID.MatchString(s) {
			return fmt.Errorf("%q is not a connected account ID (acct_...)", s)
		}
		return nil
	})
	a.IDs = ids
	return err
}

func decodeMetadata(d *decoder, at string, _, v *yaml.Node, c *CustomerScope) error {
	c.Metadata = make(map[string]string)
	err := d.entries(at, v, func(name string, k, val *yaml.Node) error {
		s, err := d.scalar(join(at, name), val, "a value")
		if err != nil {
			return err
		}
		c.Metadata[name] = s
		return nil
	})
	if err == nil && len(c.Metadata) == 0 {
		return d.errorf(v, at, "no metadata to select by")
	}
	return err
}

// stringList reads a non-empty list of distinct strings, each checked.
func (d *decoder) stringList(at string, v *yaml.Node, check func(string) error) (map[string]bool, error) {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return nil, d.wrongKind(at, v, "a non-empty list")
	}
	out := make(map[string]bool, len(v.Content))
	for _, item := range v.Content {
		s, err := d.scalar(at, item, "a string")
		if err != nil {
			return nil, err
		}
		if err := check(s); err != nil {
			return nil, d.errorf(item, at, "%v", err)
		}
		if out[s] {
			return nil, d.errorf(item, at, "%q is listed twice", s)
		}
		out[s] = true
	}
	return out, nil
}

// listKey decodes a vendor's list key (the k'th it declares) into a
// ListScope: a non-empty list of distinct entries, each checked by the
// key's matcher, in file order.
func listKey(k vendors.Key, order int) func(*decoder, string, *yaml.Node, *yaml.Node, *Grant) error {
	return func(d *decoder, at string, _, v *yaml.Node, g *Grant) error {
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			return d.wrongKind(at, v, "a non-empty list")
		}
		ls := &ListScope{Key: k.Name, Subject: k.Subject, Match: k.Match, order: order}
		seen := map[string]bool{}
		for _, item := range v.Content {
			s, err := d.scalar(at, item, "a string")
			if err != nil {
				return err
			}
			if err := k.Match.Check(s); err != nil {
				return d.errorf(item, at, "%v", err)
			}
			if seen[s] {
				return d.errorf(item, at, "%q is listed twice", s)
			}
			seen[s] = true
			ls.Entries = append(ls.Entries, s)
		}
		g.Lists = append(g.Lists, ls)
		return nil
	}
}

// maxKey decodes a vendor's maximum key into a ListScope with Max set.
func maxKey(k vendors.Key, order int) func(*decoder, string, *yaml.Node, *yaml.Node, *Grant) error {
	return func(d *decoder, at string, kn, v *yaml.Node, g *Grant) error {
		ls := &ListScope{Key: k.Name, Subject: k.Subject, order: order}
		if err := countKey(func(*Grant) *int64 { return &ls.Max })(d, at, kn, v, g); err != nil {
			return err
		}
		g.Lists = append(g.Lists, ls)
		return nil
	}
}
