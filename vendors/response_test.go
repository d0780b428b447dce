package vendors

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

func TestJSONResponse(t *testing.T) {
	req, err := http.NewRequest("POST", "https://api.example/v1/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantStatus string
		wantHeader http.Header
	}{
		{"no header", 402, nil, `{"error":"capped"}`, "402 Payment Required",
			http.Header{"Content-Type": {"application/json"}, "Content-Length": {"18"}}},
		{"vendor headers kept", 403, http.Header{"Stripe-Should-Retry": {"false"}, "Request-Id": {"kb_1"}}, `{}`, "403 Forbidden",
			http.Header{"Content-Type": {"application/json"}, "Content-Length": {"2"}, "Stripe-Should-Retry": {"false"}, "Request-Id": {"kb_1"}}},
		{"caller's type and length replaced", 503, http.Header{"Content-Type": {"text/plain", "x"}, "Content-Length": {"99"}}, `{"a":1}`, "503 Service Unavailable",
			http.Header{"Content-Type": {"application/json"}, "Content-Length": {"7"}}},
		{"empty body", 401, http.Header{}, ``, "401 Unauthorized",
			http.Header{"Content-Type": {"application/json"}, "Content-Length": {"0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := JSONResponse(req, tt.status, tt.header, []byte(tt.body))
			if resp.Status != tt.wantStatus || resp.StatusCode != tt.status {
				t.Errorf("status %q %d, want %q %d", resp.Status, resp.StatusCode, tt.wantStatus, tt.status)
			}
			if resp.Proto != "HTTP/1.1" || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
				t.Errorf("proto %q %d.%d", resp.Proto, resp.ProtoMajor, resp.ProtoMinor)
			}
			if resp.Request != req {
				t.Error("Request is not req")
			}
			if resp.ContentLength != int64(len(tt.body)) {
				t.Errorf("ContentLength %d, want %d", resp.ContentLength, len(tt.body))
			}
			if len(resp.Header) != len(tt.wantHeader) {
				t.Errorf("header %v, want %v", resp.Header, tt.wantHeader)
			}
			for k, want := range tt.wantHeader {
				if got := resp.Header[k]; len(got) != len(want) || len(got) > 0 && got[0] != want[0] {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != tt.body {
				t.Errorf("body %q, %v; want %q", got, err, tt.body)
			}
			if err := resp.Body.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}

			// What an SDK reads off the wire is the same response.
			var wire bytes.Buffer
			if err := JSONResponse(req, tt.status, nil, []byte(tt.body)).Write(&wire); err != nil {
				t.Fatal(err)
			}
			back, err := http.ReadResponse(bufio.NewReader(&wire), req)
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			b, _ := io.ReadAll(back.Body)
			if back.StatusCode != tt.status || back.Header.Get("Content-Type") != "application/json" || string(b) != tt.body {
				t.Errorf("read back %d %v %q", back.StatusCode, back.Header, b)
			}
		})
	}
}
