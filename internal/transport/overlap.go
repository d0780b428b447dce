package transport

import (
	"fmt"
	"net/http"

	"github.com/keybrake/keybrake/store"
)

// A call that cannot move money (a GET, or a call the vendor classifies as
// moving nothing that counts against no limit and carries no idempotency
// key for the store to check) has nothing to hold before it is sent, and
// sending it cannot spend what another call was promised. What it must not
// do is reach the agent unaudited: its record has to be durable before its
// answer is handed over, not before its request leaves. So its write
// overlaps the vendor call, and the agent waits for the longer of the two
// rather than their sum. A call that can move money is still reserved,
// durably, before a byte of it leaves (reserve).
//
// The record is the same reservation record a money call gets, Reserved
// until its completion, so a crash in between leaves the same trace. If
// it cannot be written, the answer is withheld: the agent gets the 503
// store error every unwritable call gets, the vendor's body is closed
// unread, and the refusal is appended to the log if the store takes it.

// holdsNothing reports whether c may be sent while its record is written.
func (t *RoundTripper) holdsNothing(c *call) bool {
	return !c.vc.MovesMoney && c.vc.Uncapped == "" && len(c.charge.Limits) == 0 &&
		c.charge.Amount.IsZero() && !t.idempotent(c)
}

// written is the store's answer to a reservation written in the background.
type written struct {
	r   *store.Reservation
	adm store.Admission
	err error
}

// sendRecording writes the call's record while the call is on the wire,
// and answers once both are done. The write is made on the call's behalf
// even when the caller gives up, since the request may have reached the
// vendor: the caller then gets its context's error at once, and the record
// is finished in the background (Drain waits for it).
func (t *RoundTripper) sendRecording(c *call) (*http.Response, error) {
	r := t.reservation(c)
	done := make(chan written, 1)
	go func() {
		ctx, cancel := t.env.writeContext(c.req.Context())
		defer cancel()
		adm, err := t.env.store.Reserve(ctx, r)
		done <- written{r, adm, err}
	}()
	resp, err := t.next.RoundTrip(t.outgoing(c))
	ctx := c.req.Context()
	select {
	case w := <-done:
		return t.recorded(c, w, resp, err)
	case <-ctx.Done():
	}
	go func() {
		if resp, _ := t.recorded(c, <-done, resp, err); resp != nil {
			resp.Body.Close()
		}
	}()
	return nil, ctx.Err()
}

// recorded answers a call sent while its record was written: with the
// vendor's answer once the record is durable, else with a refusal in its
// place.
func (t *RoundTripper) recorded(c *call, w written, resp *http.Response, err error) (*http.Response, error) {
	if w.err == nil {
		v, ok := t.admitted(c, w.r, w.adm)
		if ok {
			return t.answer(c, w.adm, resp, err)
		}
		return t.withheld(c, v.Reason, resp, err)
	}
	return t.withheld(c, "the call's audit record could not be written: "+w.err.Error(), resp, err)
}

// withheld refuses a call that was sent but could not be recorded: the
// vendor's answer is closed unread and the refusal says what happened to
// the call.
func (t *RoundTripper) withheld(c *call, why string, resp *http.Response, err error) (*http.Response, error) {
	sent := "no answer came: " + fmt.Sprint(err)
	if resp != nil {
		resp.Body.Close()
		c.rec.RequestID = t.requestID(resp.Header)
		sent = fmt.Sprintf("its answer (%d) was withheld", resp.StatusCode)
	}
	return t.refuse(c, storeError(why+"; the call, which moves no money, had been sent and "+sent))
}
