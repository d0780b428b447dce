package ui

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/keybrake/keybrake/audit"
)

// minChange is the least time between two "change" events: however fast
// calls arrive, the page redraws a few times a second at most.
const minChange = 500 * time.Millisecond

// heartbeat keeps an idle stream open through proxies and tells the
// browser the server still answers.
const heartbeat = 15 * time.Second

// events streams server-sent events: "change" with the last record ID
// whenever records were written since the last one, polling the source
// every Options.Poll for the records after the last it saw, so that a
// poll reads only what is new however long the log.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "this server cannot stream")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	start := s.opts.Now().Add(-2 * time.Second)
	last, err := s.newest(ctx, start, 0)
	if err != nil {
		s.streamError(w, fl, err)
	}
	fmt.Fprintf(w, "retry: 2000\nevent: change\ndata: {\"last_id\":%d}\n\n", last)
	fl.Flush()

	poll := time.NewTicker(s.opts.Poll)
	defer poll.Stop()
	var sent, beat time.Time = time.Now(), time.Now()
	pending := false
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		n, err := s.newest(ctx, start, last)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				failing = true
				s.streamError(w, fl, err)
			}
			continue
		case failing:
			failing = false
			pending = true // what failed may have hidden a change
		}
		if n > last {
			last, pending = n, true
		}
		if pending && time.Since(sent) >= minChange {
			fmt.Fprintf(w, "event: change\ndata: {\"last_id\":%d}\n\n", last)
			fl.Flush()
			sent, beat, pending = time.Now(), time.Now(), false
		} else if time.Since(beat) >= heartbeat {
			fmt.Fprint(w, ": still here\n\n")
			fl.Flush()
			beat = time.Now()
		}
	}
}

// newest is the highest record ID after last; with no last yet, of the
// records since start (a time-index read, not the whole log).
func (s *Server) newest(ctx context.Context, start time.Time, last uint64) (uint64, error) {
	q := audit.Query{After: last}
	if last == 0 {
		q = audit.Query{Since: start}
	}
	n := last
	err := s.opts.Source.Query(ctx, q, func(rec *audit.Record) error {
		n = max(n, rec.ID)
		return nil
	})
	return n, err
}

// streamError tells the page the source cannot be read, as an "failure"
// event (its data a JSON string), and logs it.
func (s *Server) streamError(w http.ResponseWriter, fl http.Flusher, err error) {
	s.opts.Logger.Warn("keybrake ui: reading the records for the page's updates failed", "err", err)
	fmt.Fprintf(w, "event: failure\ndata: %s\n\n", quote(err.Error()))
	fl.Flush()
}
