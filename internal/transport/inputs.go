package transport

import (
	"strings"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/vendors"
)

// recordInputs writes into rec what replaying the call's decision under
// another policy needs (keybrake policy replay), as the vendor classified
// it and lookups resolved it: classify calls it, and resolve again once
// the lookups answered. Recipients and senders are kept only where rec's
// audit parameters already hold them, so the record never keeps more
// personal data than the vendor's redaction allows.
func recordInputs(rec *audit.Record, vc *vendors.Call, customerNeeded bool) {
	rec.MovesMoney, rec.Uncapped, rec.Count, rec.RefundOf = vc.MovesMoney, vc.Uncapped != "", vc.Count, vc.RefundOf
	rec.MostRecipients, rec.NoCustomer, rec.AudienceUnknown = vc.MostRecipients, vc.NoCustomer, vc.AudienceUnknown
	rec.CreatesCustomer = vc.Creates == "customer"
	rec.CustomerUnknown = vc.SubjectLookup != "" && vc.Customer == "" && !vc.NoCustomer && !customerNeeded
	rec.Recipients, rec.Senders, rec.RecipientsWithheld = nil, nil, false
	if audited(rec.Params, vc.Recipients) {
		rec.Recipients = vc.Recipients
	} else {
		rec.RecipientsWithheld = true
	}
	if audited(rec.Params, vc.Senders) {
		rec.Senders = vc.Senders
	} else {
		rec.RecipientsWithheld = true
	}
	rec.Priced = nil
	if vc.Priced != nil {
		q := *vc.Priced
		if !audited(rec.Params, []string{q.Destination}) {
			q.Destination, rec.RecipientsWithheld = "", true
		}
		rec.Priced = &q
	}
}

// audited reports whether every value (an address, a number) is already
// in one of the audit parameters; an empty value needs nothing.
func audited(params map[string]string, values []string) bool {
	for _, v := range values {
		if v == "" {
			continue
		}
		v = strings.ToLower(v)
		found := false
		for _, p := range params {
			if strings.Contains(strings.ToLower(p), v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
