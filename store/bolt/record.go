package bolt

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/policy"
)

// A record is stored in a compact binary form (see doc.go, On-disk
// layout); audit.Record's JSON form stays what dumps and the audit log
// show. The form is
//
//	version (1 byte, recordFormat)
//	uvarint ID | uvarint seq (the record's latest journal entry)
//	uvarint presence bits (one a field below, in order)
//	the fields present
//
// Text is a uvarint tag: 0 is the empty string, 1 a UUID in its
// canonical lowercase form (16 bytes follow), an even tag names dictionary
// entry tag>>1, an odd one is followed by tag>>1 bytes of text. Integers are varints. The record's PrevHash is not
// stored: it is the hash of the journal entry before seq, which the
// journal holds.
const recordFormat = 1

// Field presence bits, in the order the fields are written.
const (
	fTime = 1 << iota
	fAgent
	fVendor
	fMethod
	fHost
	fPath
	fOperation
	fEvent
	fDecision
	fCode
	fRule
	fReason
	fParams
	fIdemKey
	fKeyID
	fCustomer
	fAccount
	fCurrency
	fAmount
	fReserved
	fSettled
	fHolds
	fOutcome
	fEstimated
	fObject
	fRetryOf
	fLookup
	fStatus
	fRequestID
	fDuration
	fPolicy
	// The fields added after records were first written in this form
	// come last, so that a record without them has the same bits and
	// bytes it had, and an older record reads as it was written.
	fRun
	fPrincipal
	fWindows // the holds' Windows, one varint each, when any is not zero
	// What replay needs (audit.Record), most common first: the presence
	// bits of a Stripe refund still fit six bytes.
	fMovesMoney
	fCount
	fRefundOf
	fSenders
	fRecipients
	fPriced
	fMostRecipients
	fRecipientsWithheld
	fUncapped
	fNoCustomer
	fAudienceUnknown
	fCreatesCustomer
	fCustomerUnknown
	fApproval
	fShadow // the shadow policy's decision, rule, code and hash
)

// fLast is the last field bit; a record with a higher one is of a newer
// Keybrake, or corrupt.
const fLast = fShadow

type encoder struct {
	d   *dict
	buf []byte
	err error
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }

// text writes s interned (intern true) or inline.
func (e *encoder) text(s string, intern bool) {
	switch {
	case e.err != nil:
	case s == "":
		e.uvarint(0)
	case intern && len(s) <= internMax:
		id, err := e.d.intern(s)
		if err != nil {
			e.err = err
			return
		}
		e.uvarint(id << 1)
	default:
		if u, ok := compactUUID(s); ok {
			e.uvarint(1)
			e.buf = append(e.buf, u[:]...)
			return
		}
		e.uvarint(uint64(len(s))<<1 | 1)
		e.buf = append(e.buf, s...)
	}
}

// encodeRecord writes r with seq as its latest journal entry. The caller
// checked it with checkEncodable.
func encodeRecord(d *dict, r *audit.Record, seq uint64) ([]byte, error) {
	cur := recordCurrency(r)
	var bits uint64
	set := func(bit uint64, present bool) {
		if present {
			bits |= bit
		}
	}
	set(fTime, !r.Time.IsZero())
	set(fAgent, r.Agent != "")
	set(fVendor, r.Vendor != "")
	set(fMethod, r.Method != "")
	set(fHost, r.Host != "")
	set(fPath, r.Path != "")
	set(fOperation, r.Operation != "")
	set(fEvent, r.Event != "")
	set(fDecision, r.Decision != "")
	set(fCode, r.Code != "")
	set(fRule, r.Rule != "")
	set(fReason, r.Reason != "")
	set(fParams, len(r.Params) > 0)
	set(fIdemKey, r.IdempotencyKey != "")
	set(fKeyID, r.KeyID != "")
	set(fCustomer, r.Customer != "")
	set(fAccount, r.Account != "")
	set(fCurrency, cur != "")
	set(fAmount, r.Amount.Micros != 0)
	set(fReserved, r.Reserved.Micros != 0)
	set(fSettled, r.Settled.Micros != 0)
	set(fHolds, len(r.Holds) > 0)
	set(fOutcome, r.Outcome != "")
	set(fEstimated, r.Estimated)
	set(fObject, r.Object != "")
	set(fRetryOf, r.RetryOf != 0)
	set(fLookup, r.Lookup != "")
	set(fStatus, r.Status != 0)
	set(fRequestID, r.RequestID != "")
	set(fDuration, r.Duration.Microseconds() != 0)
	set(fPolicy, r.PolicyHash != "")
	set(fRun, r.Run != "")
	set(fPrincipal, r.Principal != "")
	set(fWindows, slices.ContainsFunc(r.Holds, func(h audit.Hold) bool { return h.Window != 0 }))
	set(fMovesMoney, r.MovesMoney)
	set(fCount, r.Count != 0)
	set(fRefundOf, r.RefundOf != "")
	set(fSenders, len(r.Senders) > 0)
	set(fRecipients, len(r.Recipients) > 0)
	set(fPriced, r.Priced != nil)
	set(fMostRecipients, r.MostRecipients != 0)
	set(fRecipientsWithheld, r.RecipientsWithheld)
	set(fUncapped, r.Uncapped)
	set(fNoCustomer, r.NoCustomer)
	set(fAudienceUnknown, r.AudienceUnknown)
	set(fCreatesCustomer, r.CreatesCustomer)
	set(fCustomerUnknown, r.CustomerUnknown)
	set(fApproval, r.Approval != "")
	set(fShadow, r.Shadow != nil)

	e := &encoder{d: d, buf: make([]byte, 0, 256)}
	e.buf = append(e.buf, recordFormat)
	e.uvarint(r.ID)
	e.uvarint(seq)
	e.uvarint(bits)
	if bits&fTime != 0 {
		t := r.Time.UTC()
		e.varint(t.Unix())
		e.uvarint(uint64(t.Nanosecond()))
	}
	for _, f := range []struct {
		bit    uint64
		s      string
		intern bool
	}{
		{fAgent, r.Agent, true}, {fVendor, r.Vendor, true}, {fMethod, r.Method, true}, {fHost, r.Host, true},
		{fPath, r.Path, true}, {fOperation, r.Operation, true}, {fEvent, r.Event, true},
		{fDecision, string(r.Decision), true}, {fCode, r.Code, true}, {fRule, r.Rule, true}, {fReason, r.Reason, true},
	} {
		if bits&f.bit != 0 {
			e.text(f.s, f.intern)
		}
	}
	if bits&fParams != 0 {
		keys := sortedKeys(r.Params)
		e.uvarint(uint64(len(keys)))
		for _, k := range keys {
			e.text(k, true)
			e.text(r.Params[k], false)
		}
	}
	for _, f := range []struct {
		bit    uint64
		s      string
		intern bool
	}{
		{fIdemKey, r.IdempotencyKey, false}, {fKeyID, r.KeyID, true}, {fCustomer, r.Customer, true},
		{fAccount, r.Account, true}, {fCurrency, string(cur), true},
	} {
		if bits&f.bit != 0 {
			e.text(f.s, f.intern)
		}
	}
	for _, f := range []struct {
		bit uint64
		v   int64
	}{{fAmount, r.Amount.Micros}, {fReserved, r.Reserved.Micros}, {fSettled, r.Settled.Micros}} {
		if bits&f.bit != 0 {
			e.varint(f.v)
		}
	}
	if bits&fHolds != 0 {
		e.uvarint(uint64(len(r.Holds)))
		for _, h := range r.Holds {
			e.text(h.Key, true)
			e.text(h.Unit, true)
			e.varint(h.Limit)
			e.varint(h.Amount)
			e.varint(h.Settled)
		}
	}
	if bits&fOutcome != 0 {
		e.text(string(r.Outcome), true)
	}
	if bits&fObject != 0 {
		e.text(r.Object, false)
	}
	if bits&fRetryOf != 0 {
		e.uvarint(r.RetryOf)
	}
	if bits&fLookup != 0 {
		e.text(r.Lookup, true)
	}
	if bits&fStatus != 0 {
		e.varint(int64(r.Status))
	}
	if bits&fRequestID != 0 {
		e.text(r.RequestID, false)
	}
	if bits&fDuration != 0 {
		e.varint(r.Duration.Microseconds())
	}
	if bits&fPolicy != 0 {
		e.text(r.PolicyHash, true)
	}
	// A run names one task and is seldom seen again once it ends: inline,
	// so that the dictionary, which is never pruned, does not grow by one
	// entry a run forever. Principals are few and recur.
	if bits&fRun != 0 {
		e.text(r.Run, false)
	}
	if bits&fPrincipal != 0 {
		e.text(r.Principal, true)
	}
	if bits&fWindows != 0 {
		for _, h := range r.Holds {
			e.varint(int64(h.Window))
		}
	}
	e.replayFields(r, bits)
	e.decisionFields(r, bits)
	if e.err != nil {
		return nil, e.err
	}
	return e.buf, nil
}

// recordCurrency is the one currency of r's amounts (checkEncodable made
// sure there is at most one), "" when every amount is zero.
func recordCurrency(r *audit.Record) money.Currency {
	for _, a := range [...]money.Amount{r.Amount, r.Reserved, r.Settled} {
		if a.Micros != 0 && a.Currency != "" {
			return a.Currency
		}
	}
	return ""
}

type decoder struct {
	d   *dict
	b   []byte
	err error
}

func (r *decoder) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed at %s", what)
	}
}

func (r *decoder) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) text(what string) string {
	tag := r.uvarint(what)
	switch {
	case r.err != nil || tag == 0:
		return ""
	case tag == 1:
		if len(r.b) < 16 {
			r.fail(what)
			return ""
		}
		s := expandUUID(r.b[:16])
		r.b = r.b[16:]
		return s
	case tag&1 == 0:
		s, err := r.d.text(tag >> 1)
		if err != nil {
			r.err = err
		}
		return s
	}
	n := tag >> 1
	if n > uint64(len(r.b)) {
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// recordHeader reads a stored record's ID and latest journal entry
// without decoding the rest.
func recordHeader(b []byte) (id, seq uint64, err error) {
	if len(b) == 0 || b[0] != recordFormat {
		return 0, 0, fmt.Errorf("not a record of format %d", recordFormat)
	}
	r := decoder{b: b[1:]}
	id = r.uvarint("id")
	seq = r.uvarint("seq")
	return id, seq, r.err
}

// decodeRecord reads a stored record. Its PrevHash is left empty: getRecord
// sets it from the journal.
func decodeRecord(d *dict, key uint64, b []byte) (*audit.Record, uint64, error) {
	if len(b) == 0 || b[0] != recordFormat {
		return nil, 0, corrupt("record %d is not of format %d", key, recordFormat)
	}
	in := &decoder{d: d, b: b[1:]}
	r := &audit.Record{ID: in.uvarint("id")}
	seq := in.uvarint("seq")
	bits := in.uvarint("fields")
	if bits&fTime != 0 {
		sec := in.varint("time")
		nsec := in.uvarint("time")
		if nsec >= 1e9 {
			in.fail("time")
		}
		r.Time = time.Unix(sec, int64(nsec)).UTC()
	}
	str := func(bit uint64, p *string, what string) {
		if bits&bit != 0 {
			*p = in.text(what)
		}
	}
	var decision, outcome, cur string
	str(fAgent, &r.Agent, "agent")
	str(fVendor, &r.Vendor, "vendor")
	str(fMethod, &r.Method, "method")
	str(fHost, &r.Host, "host")
	str(fPath, &r.Path, "path")
	str(fOperation, &r.Operation, "operation")
	str(fEvent, &r.Event, "event")
	str(fDecision, &decision, "decision")
	str(fCode, &r.Code, "code")
	str(fRule, &r.Rule, "rule")
	str(fReason, &r.Reason, "reason")
	if bits&fParams != 0 {
		n := in.uvarint("params")
		if n > uint64(len(in.b)) {
			in.fail("params")
		}
		r.Params = make(map[string]string, n)
		for i := uint64(0); i < n && in.err == nil; i++ {
			k := in.text("param")
			r.Params[k] = in.text("param")
		}
	}
	str(fIdemKey, &r.IdempotencyKey, "idempotency key")
	str(fKeyID, &r.KeyID, "key id")
	str(fCustomer, &r.Customer, "customer")
	str(fAccount, &r.Account, "account")
	str(fCurrency, &cur, "currency")
	amount := func(bit uint64, a *money.Amount, what string) {
		if bits&bit != 0 {
			*a = money.Amount{Micros: in.varint(what), Currency: money.Currency(cur)}
		}
	}
	amount(fAmount, &r.Amount, "amount")
	amount(fReserved, &r.Reserved, "reserved")
	amount(fSettled, &r.Settled, "settled")
	if bits&fHolds != 0 {
		n := in.uvarint("holds")
		if n > uint64(len(in.b)) {
			in.fail("holds")
		}
		r.Holds = make([]audit.Hold, 0, n)
		for i := uint64(0); i < n && in.err == nil; i++ {
			var h audit.Hold
			h.Key = in.text("hold")
			h.Unit = in.text("hold")
			h.Limit = in.varint("hold")
			h.Amount = in.varint("hold")
			h.Settled = in.varint("hold")
			r.Holds = append(r.Holds, h)
		}
	}
	str(fOutcome, &outcome, "outcome")
	r.Estimated = bits&fEstimated != 0
	str(fObject, &r.Object, "object")
	if bits&fRetryOf != 0 {
		r.RetryOf = in.uvarint("retry of")
	}
	str(fLookup, &r.Lookup, "lookup")
	if bits&fStatus != 0 {
		st := in.varint("status")
		if st < math.MinInt32 || st > math.MaxInt32 {
			in.fail("status")
		}
		r.Status = int(st)
	}
	str(fRequestID, &r.RequestID, "request id")
	if bits&fDuration != 0 {
		us := in.varint("duration")
		if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
			in.fail("duration")
		}
		r.Duration = time.Duration(us) * time.Microsecond
	}
	str(fPolicy, &r.PolicyHash, "policy")
	str(fRun, &r.Run, "run")
	str(fPrincipal, &r.Principal, "principal")
	if bits&fWindows != 0 {
		if len(r.Holds) == 0 {
			in.fail("windows")
		}
		for i := range r.Holds {
			if r.Holds[i].Window = time.Duration(in.varint("window")); r.Holds[i].Window < 0 {
				in.fail("window")
			}
		}
	}
	in.replayFields(r, bits)
	in.decisionFields(r, bits)
	r.Decision, r.Outcome = policy.Decision(decision), audit.Outcome(outcome)
	switch {
	case in.err != nil:
		return nil, 0, corrupt("record %d: %v", key, in.err)
	case len(in.b) != 0:
		return nil, 0, corrupt("record %d: %d bytes after its last field", key, len(in.b))
	case bits >= fLast<<1:
		return nil, 0, corrupt("record %d: unknown fields %#x", key, bits)
	case r.ID != key:
		return nil, 0, corrupt("record under key %d says it is %d", key, r.ID)
	}
	return r, seq, nil
}

// compactUUID reads a UUID in its canonical lowercase form.
func compactUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	h := make([]byte, 0, 32)
	h = append(h, s[:8]...)
	h = append(h, s[9:13]...)
	h = append(h, s[14:18]...)
	h = append(h, s[19:23]...)
	h = append(h, s[24:]...)
	if !lowerHex(h) {
		return u, false
	}
	hex.Decode(u[:], h)
	return u, true
}

func expandUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func lowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
