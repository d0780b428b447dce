package fakefault

import (
	"fmt"
	"net/http"
)

// Response is an answer not yet written. A nil Header is no header.
type Response struct {
	Status int
	Body   []byte
	Header http.Header
}

// Write sends the answer on w: its headers over any w already has,
// contentType when they set no Content-Type, and the exact
// Content-Length.
func (res Response) Write(w http.ResponseWriter, contentType string) {
	h := w.Header()
	for k, vs := range res.Header {
		h[k] = vs
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("Content-Length", fmt.Sprint(len(res.Body)))
	w.WriteHeader(res.Status)
	w.Write(res.Body)
}
