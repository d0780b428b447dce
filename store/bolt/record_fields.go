package bolt

import (
	"slices"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// The record fields added with the policy-changes work, after the rest of
// the record (record.go): what replay needs to decide a call again, then
// the approval a call waited for or used and the shadow policy's decision.

// replayFields writes what replay needs (audit.Record). Most of it is
// already in a parameter (a refund's charge, an SMS's To and From): such
// text is written as a reference to that parameter (paramText), else
// inline, as a run is, since a charge or a number names one object.
// Price items are few and recur: interned.
func (e *encoder) replayFields(r *audit.Record, bits uint64) {
	keys := sortedKeys(r.Params)
	if bits&fCount != 0 {
		e.varint(r.Count)
	}
	if bits&fRefundOf != 0 {
		e.paramText(r.RefundOf, r.Params, keys)
	}
	for _, l := range []struct {
		bit uint64
		l   []string
	}{{fSenders, r.Senders}, {fRecipients, r.Recipients}} {
		if bits&l.bit != 0 {
			e.uvarint(uint64(len(l.l)))
			for _, s := range l.l {
				e.paramText(s, r.Params, keys)
			}
		}
	}
	if q := r.Priced; bits&fPriced != 0 {
		e.text(q.Item, true)
		e.paramText(q.Destination, r.Params, keys)
		e.varint(q.Quantity)
		e.varint(q.Recipients)
	}
	if bits&fMostRecipients != 0 {
		e.varint(r.MostRecipients)
	}
}

// paramText writes s as 1 + the place among keys of the first parameter
// whose value it is, or as 0 and the text inline.
func (e *encoder) paramText(s string, params map[string]string, keys []string) {
	i := -1
	if s != "" {
		i = slices.IndexFunc(keys, func(k string) bool { return params[k] == s })
	}
	e.uvarint(uint64(i + 1))
	if i < 0 {
		e.text(s, false)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// replayFields reads what encoder.replayFields wrote.
func (in *decoder) replayFields(r *audit.Record, bits uint64) {
	flag := func(bit uint64) bool { return bits&bit != 0 }
	r.MovesMoney, r.RecipientsWithheld, r.Uncapped = flag(fMovesMoney), flag(fRecipientsWithheld), flag(fUncapped)
	r.NoCustomer, r.AudienceUnknown = flag(fNoCustomer), flag(fAudienceUnknown)
	r.CreatesCustomer, r.CustomerUnknown = flag(fCreatesCustomer), flag(fCustomerUnknown)
	keys := sortedKeys(r.Params)
	if flag(fCount) {
		r.Count = in.varint("count")
	}
	if flag(fRefundOf) {
		r.RefundOf = in.paramText("refund of", r.Params, keys)
	}
	if flag(fSenders) {
		r.Senders = in.list("senders", r.Params, keys)
	}
	if flag(fRecipients) {
		r.Recipients = in.list("recipients", r.Params, keys)
	}
	if flag(fPriced) {
		q := &policy.PriceQuery{Item: in.text("priced")}
		q.Destination = in.paramText("priced", r.Params, keys)
		q.Quantity, q.Recipients = in.varint("priced"), in.varint("priced")
		r.Priced = q
	}
	if flag(fMostRecipients) {
		r.MostRecipients = in.varint("most recipients")
	}
}

func (in *decoder) paramText(what string, params map[string]string, keys []string) string {
	switch i := in.uvarint(what); {
	case i == 0:
		return in.text(what)
	case i <= uint64(len(keys)):
		return params[keys[i-1]]
	default:
		in.fail(what)
		return ""
	}
}

func (in *decoder) list(what string, params map[string]string, keys []string) []string {
	n := in.uvarint(what)
	if n == 0 || n > uint64(len(in.b)) {
		in.fail(what)
		return nil
	}
	l := make([]string, 0, n)
	for i := uint64(0); i < n && in.err == nil; i++ {
		l = append(l, in.paramText(what, params, keys))
	}
	return l
}

// decisionFields writes the approval and the shadow decision. An approval
// id is used once: inline. A shadow's decision, rule, code and policy
// recur from call to call: interned.
func (e *encoder) decisionFields(r *audit.Record, bits uint64) {
	if bits&fApproval != 0 {
		e.text(r.Approval, false)
	}
	if sh := r.Shadow; bits&fShadow != 0 {
		e.text(string(sh.Decision), true)
		e.text(sh.Rule, true)
		e.text(sh.Code, true)
		e.text(sh.Policy, true)
	}
}

// decisionFields reads what encoder.decisionFields wrote.
func (in *decoder) decisionFields(r *audit.Record, bits uint64) {
	if bits&fApproval != 0 {
		r.Approval = in.text("approval")
	}
	if bits&fShadow != 0 {
		sh := &audit.Shadow{Decision: policy.Decision(in.text("shadow decision"))}
		sh.Rule, sh.Code, sh.Policy = in.text("shadow rule"), in.text("shadow code"), in.text("shadow policy")
		r.Shadow = sh
	}
}
