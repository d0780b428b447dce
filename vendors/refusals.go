package vendors

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"sync"
)

// Some SDKs keep nothing of an error response but its message (resend-go
// turns every non-2xx but 429 into errors.New("[ERROR]: " + message)). For
// those, Deny puts a token in the message and remembers the refusal's
// details under it, so keybrake.AsDenial can find the whole decision again
// from the error the SDK returned, in this process.

// refusalMemory is how many refusals are remembered; the oldest are
// forgotten first.
const refusalMemory = 4096

var refusals = struct {
	sync.Mutex
	byToken map[string]*list.Element
	order   *list.List // of *remembered, oldest at the front
}{byToken: map[string]*list.Element{}, order: list.New()}

type remembered struct {
	token   string
	details []byte
}

// NewRefusalToken returns a token that names one refusal, unique in this
// process and across processes with overwhelming likelihood: "kbr_" and 16
// hex digits.
func NewRefusalToken() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "kbr_" + hex.EncodeToString(b[:])
}

// RememberRefusal keeps details under token. Safe for concurrent use.
func RememberRefusal(token string, details []byte) {
	refusals.Lock()
	defer refusals.Unlock()
	if e, ok := refusals.byToken[token]; ok {
		refusals.order.MoveToBack(e)
		e.Value.(*remembered).details = details
		return
	}
	refusals.byToken[token] = refusals.order.PushBack(&remembered{token: token, details: details})
	for refusals.order.Len() > refusalMemory {
		oldest := refusals.order.Front()
		refusals.order.Remove(oldest)
		delete(refusals.byToken, oldest.Value.(*remembered).token)
	}
}

// RecallRefusal returns the details remembered under token.
func RecallRefusal(token string) ([]byte, bool) {
	refusals.Lock()
	defer refusals.Unlock()
	e, ok := refusals.byToken[token]
	if !ok {
		return nil, false
	}
	return e.Value.(*remembered).details, true
}
