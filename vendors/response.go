package vendors

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// JSONResponse returns a complete HTTP/1.1 response to req, as a vendor's
// API would answer it: status with its standard text ("402 Payment
// Required"), header with Content-Type application/json and the
// Content-Length of body, body as the Body, and req as the Request. It is
// how each vendor's Deny hands its error body to the SDK, which then reads
// it exactly as it reads the vendor's own errors.
//
// header may be nil; otherwise it becomes the response's Header, so the
// caller should not use it afterwards, and its Content-Type and
// Content-Length are replaced. Vendor-specific headers (Stripe-Should-Retry,
// Request-Id, Twilio-Request-Id) go in header. status is used as given: a
// vendor that must keep it in a range its SDK reads as an error clamps it
// before. JSONResponse neither reads nor closes req's body, and does not
// copy body, which the caller must not change afterwards. Safe for
// concurrent use.
func JSONResponse(req *http.Request, status int, header http.Header, body []byte) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
