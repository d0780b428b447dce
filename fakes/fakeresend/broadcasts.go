package fakeresend

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

type broadcastObj struct {
	id         string
	recipients int
	sent       bool
	sentAt     time.Time
}

// Broadcast is a broadcast as fakeresend keeps it.
type Broadcast struct {
	ID         string    //
	Recipients int       // the contacts of its audience
	Sent       bool      // sent through POST /broadcasts/{id}/send
	SentAt     time.Time // zero until sent
}

var broadcastID = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// AddBroadcast seeds a draft broadcast whose audience has recipients
// contacts, for POST /broadcasts/{id}/send. It panics on an ID that is
// not made of letters, digits, "_" and "-", on recipients < 0, and on an
// ID already taken, as a broken test setup should.
func (s *Server) AddBroadcast(id string, recipients int) {
	if !broadcastID.MatchString(id) {
		panic(fmt.Sprintf("fakeresend: broadcast ID %q", id))
	}
	if recipients < 0 {
		panic(fmt.Sprintf("fakeresend: broadcast %s with %d recipients", id, recipients))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.broadcasts {
		if b.id == id {
			panic(fmt.Sprintf("fakeresend: broadcast %s added twice", id))
		}
	}
	s.broadcasts = append(s.broadcasts, &broadcastObj{id: id, recipients: recipients})
}

// Broadcasts returns every seeded broadcast, in the order added.
func (s *Server) Broadcasts() []Broadcast {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Broadcast, len(s.broadcasts))
	for i, b := range s.broadcasts {
		out[i] = Broadcast{ID: b.id, Recipients: b.recipients, Sent: b.sent, SentAt: b.sentAt}
	}
	return out
}

// BroadcastRecipients returns how many recipients the broadcasts sent so
// far reached: one email each. Resend bills broadcasts by contacts, not
// against the transactional quota, so Sent and Recipients leave them out.
func (s *Server) BroadcastRecipients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.broadcasts {
		if b.sent {
			n += b.recipients
		}
	}
	return n
}

// sendBroadcast sends a seeded broadcast, once. resend-go sends
// {"broadcast_id": id, "scheduled_at": ""}; the spec knows only
// scheduled_at.
func (s *Server) sendBroadcast(c *call) (any, *apiError) {
	id := c.vars["id"]
	if len(c.body) > 0 {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(c.body, &fields); err != nil || fields == nil {
			return nil, invalid("The request body must be a JSON object.")
		}
		e := email{fields}
		if err := e.only([]string{"broadcast_id", "scheduled_at"}); err != nil {
			return nil, err
		}
		bid, err := e.str("broadcast_id")
		if err != nil {
			return nil, err
		}
		if bid != "" && bid != id {
			return nil, invalid("`broadcast_id` %q does not match the broadcast in the path.", bid)
		}
		at, err := e.str("scheduled_at")
		if err != nil {
			return nil, err
		}
		if at != "" {
			return nil, invalid("fakeresend does not model scheduled broadcasts (`scheduled_at`).")
		}
	}
	for _, b := range s.broadcasts {
		if b.id != id {
			continue
		}
		if b.sent {
			return nil, &apiError{status: http.StatusUnprocessableEntity, name: nameValidation, message: "This broadcast has already been sent."}
		}
		b.sent, b.sentAt = true, c.now
		return idJSON{b.id}, nil
	}
	return nil, notFound("Broadcast not found")
}
