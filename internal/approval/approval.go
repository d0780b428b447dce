// Package approval keeps the approvals a person gives held calls
// (approve_above and approve in the policy), in the store every process of
// a Brake shares, so that an approval is seen everywhere, survives a
// restart and is used exactly once.
//
// An approval is bound to one exact request: its agent, vendor, method,
// path, parameters, amount and run hash to its Binding. The first held call
// of a binding opens an approval request; every retry of the same request
// finds that one (a thousand retries, one request). Once a person approves
// it, the next call of that binding uses it up, and the binding after that
// needs a new approval. Each approval's life is a handful of store facts,
// which are written once and never changed (store.Store.SetFact refuses to
// change one on every store), so each step is a compare-and-set the store
// decides, even between processes on many machines:
//
//	approval/<id>/request    the request, as the audit log may keep it (JSON)
//	approval/<id>/decision   approved or denied, by whom, when, until when
//	approval/<id>/closed     used by a call, or expired
//
// The ids of one binding are a sequence: apr_ and 16 hex digits of the
// SHA-256 of the binding and the approval's place in it, so every process
// finds the same current approval without an index: the first whose
// request is not closed.
package approval

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/keybrake/keybrake/money"
	"github.com/keybrake/keybrake/store"
)

// DefaultTTL is how long an approval request waits for a person, how long
// an approval stands once given, and how long a denial holds.
const DefaultTTL = time.Hour

// Lookback is how far back the held calls are read to find the open
// approvals (Book.Open): a request is asked for at most DefaultTTL before
// it is decided, and an approval given with the defaults stands a day at
// most.
const Lookback = 24*time.Hour + DefaultTTL

// maxSequence bounds the approvals of one binding a lookup walks: a
// request approved this many times is refused rather than walked further.
const maxSequence = 10000

// State is where an approval stands.
type State string

// The states.
const (
	Pending  State = "pending"  // waiting for a person
	Approved State = "approved" // the next call of its binding may use it
	Denied   State = "denied"   // refused by a person; calls of its binding are refused until it expires
	Used     State = "used"     // a call used it up
	Expired  State = "expired"  // nobody decided in time, or it was not used in time
)

// Request is what a held call asks a person to approve: the exact call,
// as the audit log may keep it (secrets dropped, card numbers masked).
type Request struct {
	Binding string            `json:"binding"`
	Agent   string            `json:"agent"`
	Vendor  string            `json:"vendor"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Params  map[string]string `json:"params,omitempty"`
	Amount  money.Amount      `json:"-"`
	// AmountText is Amount as the audit log writes it: "250.00 USD".
	AmountText string    `json:"amount,omitempty"`
	Customer   string    `json:"customer,omitempty"`
	Account    string    `json:"account,omitempty"`
	Run        string    `json:"run,omitempty"`
	Rule       string    `json:"rule"`   // the policy rule that held it
	Reason     string    `json:"reason"` // why it was held, for a person
	Time       time.Time `json:"time"`   // when it was first held
	// Key is the held call's idempotency key, "" for none: a retry of
	// the call that used an approval, with the same key, is that call
	// (the store replays or takes it over), not a new request. Hold reads
	// it; it is kept with the Closing, not the request.
	Key string `json:"-"`
}

// UnmarshalJSON reads a Request, its Amount from AmountText.
func (r *Request) UnmarshalJSON(b []byte) error {
	type plain Request
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.AmountText != "" {
		a, err := money.ParsePrice(p.AmountText)
		if err != nil {
			return fmt.Errorf("approval: amount %q: %w", p.AmountText, err)
		}
		p.Amount = a
	}
	*r = Request(p)
	return nil
}

// Decision is a person's answer.
type Decision struct {
	Approved bool      `json:"approved"`
	By       string    `json:"by"`
	Time     time.Time `json:"time"`
	Until    time.Time `json:"until"` // an approval must be used, a denial holds, until then
}

// Closing is how an approval ended: used by a call, or expired.
type Closing struct {
	Used bool      `json:"used"`
	By   string    `json:"by,omitempty"`  // the call that used it: a token naming it
	Key  string    `json:"key,omitempty"` // that call's idempotency key
	Time time.Time `json:"time"`
}

// Approval is one approval request and what became of it.
type Approval struct {
	ID       string    `json:"id"`
	Request  Request   `json:"request"`
	Decision *Decision `json:"decision,omitempty"` // nil while pending
	Closing  *Closing  `json:"closing,omitempty"`  // nil while open
}

// State says where a is at now.
func (a *Approval) State(now time.Time) State {
	switch {
	case a.Closing != nil && a.Closing.Used:
		return Used
	case a.Closing != nil:
		return Expired
	case a.Decision == nil:
		if !now.Before(a.Request.Time.Add(DefaultTTL)) {
			return Expired
		}
		return Pending
	case !now.Before(a.Decision.Until):
		return Expired
	case a.Decision.Approved:
		return Approved
	default:
		return Denied
	}
}

// Bind is the binding of an exact request: everything an approval
// approves. Two requests differing in anything the policy or the vendor
// can see (a parameter, the amount by one minor unit, the run) bind
// differently.
func Bind(agent, vendor, method, path string, params url.Values, amount money.Amount, run string) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	for _, s := range [...]string{agent, vendor, method, path, run, string(amount.Currency), strconv.FormatInt(amount.Micros, 10)} {
		field(s)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(strconv.Itoa(len(params[k])))
		for _, v := range params[k] {
			field(v)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// idOf is the id of the n-th approval of binding.
func idOf(binding string, n int) string {
	sum := sha256.Sum256([]byte(binding + "/" + strconv.Itoa(n)))
	return "apr_" + hex.EncodeToString(sum[:8])
}

// ValidID reports whether id reads as an approval id.
func ValidID(id string) bool {
	if len(id) != len("apr_")+16 || id[:4] != "apr_" {
		return false
	}
	_, err := hex.DecodeString(id[4:])
	return err == nil
}

// ErrNotFound: no approval has that id.
var ErrNotFound = errors.New("approval: no such approval")

// ErrDecided: the approval was already approved or denied, or it is
// closed.
var ErrDecided = errors.New("approval: already decided")

// Book keeps approvals in a store.
type Book struct {
	st  store.Store
	now func() time.Time
}

// NewBook returns the approvals kept in st, on the clock now (nil:
// time.Now).
func NewBook(st store.Store, now func() time.Time) *Book {
	if now == nil {
		now = time.Now
	}
	return &Book{st: st, now: now}
}

func requestKey(id string) string  { return "approval/" + id + "/request" }
func decisionKey(id string) string { return "approval/" + id + "/decision" }
func closedKey(id string) string   { return "approval/" + id + "/closed" }

// Get reads the approval id.
func (b *Book) Get(ctx context.Context, id string) (*Approval, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not an approval id (apr_ and 16 hex digits)", ErrNotFound, id)
	}
	a, ok, err := b.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return a, nil
}

func (b *Book) read(ctx context.Context, id string) (*Approval, bool, error) {
	a := &Approval{ID: id}
	ok, err := b.fact(ctx, requestKey(id), &a.Request)
	if err != nil || !ok {
		return nil, false, err
	}
	var d Decision
	if ok, err := b.fact(ctx, decisionKey(id), &d); err != nil {
		return nil, false, err
	} else if ok {
		a.Decision = &d
	}
	var c Closing
	if ok, err := b.fact(ctx, closedKey(id), &c); err != nil {
		return nil, false, err
	} else if ok {
		a.Closing = &c
	}
	return a, true, nil
}

func (b *Book) fact(ctx context.Context, key string, v any) (bool, error) {
	s, ok, err := b.st.Fact(ctx, key)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return false, fmt.Errorf("approval: %s holds %q: %w", key, s, err)
	}
	return true, nil
}

// set writes a fact once; won is false when another writer set it first
// to something else.
func (b *Book) set(ctx context.Context, key string, v any) (won bool, err error) {
	data, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	serr := b.st.SetFact(ctx, key, string(data))
	if serr == nil {
		return true, nil
	}
	// SetFact refuses to change a fact: read which write won. A store
	// that failed outright fails the read too, or shows nothing there.
	got, ok, err := b.st.Fact(ctx, key)
	switch {
	case err != nil:
		return false, err
	case !ok:
		return false, serr
	}
	return got == string(data), nil
}

// retryOfUse says whether a retry at now of a call whose idempotency key
// was first used with an approval at used is still that call: while the
// store replays it or takes it over (store.ReplayWindow, counted from the
// key's first record, a moment before it was used). A minute short of
// that, so that no retry is both past the store's window, a new call that
// moves money again, and inside this one, admitted without an approval.
// (A key first used by a call no approval covered is the transport's to
// catch: useApproval holds a retry the store did not take for the call
// that used the approval.)
func retryOfUse(used, now time.Time) bool {
	return now.Sub(used) < store.ReplayWindow-time.Minute
}

// Hold finds the approval a held call of req.Binding is to use or wait
// for, and opens one when there is none: the current approval of the
// binding, if pending, approved or denied; the used one, when the call is
// a retry with the idempotency key of the call that used it (req.Key),
// within retryOfUse; else a new pending one. opened is true only for the call that opened
// it, so a storm of retries opens (and alerts) once.
func (b *Book) Hold(ctx context.Context, req Request) (a *Approval, opened bool, err error) {
	now := b.now()
	var keyUsed time.Time // when the first approval used with req.Key was used
	for n := 0; n < maxSequence; n++ {
		id := idOf(req.Binding, n)
		cur, ok, err := b.read(ctx, id)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			r := req
			r.Time = now.UTC()
			if !r.Amount.IsZero() {
				r.AmountText = r.Amount.String()
			}
			won, err := b.set(ctx, requestKey(id), r)
			if err != nil {
				return nil, false, err
			}
			if !won { // another call opened it at the same moment
				n--
				continue
			}
			return &Approval{ID: id, Request: r}, true, nil
		}
		switch cur.State(now) {
		case Pending, Approved, Denied:
			return cur, false, nil
		case Used:
			if req.Key != "" && cur.Closing.Key == req.Key {
				if keyUsed.IsZero() {
					keyUsed = cur.Closing.Time // the oldest first: the key's first use
				}
				if retryOfUse(keyUsed, now) {
					return cur, false, nil
				}
			}
		case Expired:
			if cur.Closing == nil {
				if _, err := b.set(ctx, closedKey(id), Closing{Time: now.UTC()}); err != nil {
					return nil, false, err
				}
			}
		}
	}
	return nil, false, fmt.Errorf("approval: binding %.16s has %d approvals; refusing to look further", req.Binding, maxSequence)
}

// Use uses up the approved approval id for the call by (a Token), whose
// idempotency key is key ("" for none); used is false when it is not
// approved and open now, or another call used it first. Exactly one call
// uses an approval, however many processes race for it.
func (b *Book) Use(ctx context.Context, id, by, key string) (used bool, err error) {
	a, err := b.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if a.State(b.now()) != Approved {
		return false, nil
	}
	return b.set(ctx, closedKey(id), Closing{Used: true, By: by, Key: key, Time: b.now().UTC()})
}

// Decide approves (or denies) the pending approval id for ttl (0:
// DefaultTTL), as by. It returns the approval as decided. An approval
// already decided, used or expired is ErrDecided; two people deciding at
// once: the first decision stands, the second gets ErrDecided.
func (b *Book) Decide(ctx context.Context, id string, approve bool, by string, ttl time.Duration) (*Approval, error) {
	if by == "" {
		return nil, errors.New("approval: say who decides")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	a, err := b.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	now := b.now()
	if st := a.State(now); st != Pending {
		return a, fmt.Errorf("%w: %s is %s", ErrDecided, id, st)
	}
	d := Decision{Approved: approve, By: by, Time: now.UTC(), Until: now.Add(ttl).UTC()}
	won, err := b.set(ctx, decisionKey(id), d)
	if err != nil {
		return nil, err
	}
	if !won {
		a, err = b.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return a, fmt.Errorf("%w: %s was decided by %s first", ErrDecided, id, a.Decision.By)
	}
	a.Decision = &d
	return a, nil
}

// Token names a call that used an approval before its record was written:
// "call-" and 16 random hex digits.
func Token() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "call-" + hex.EncodeToString(b[:])
}
