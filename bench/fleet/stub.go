package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
)

// stub is a stateless Stripe, as bench/calls' RSS run uses: it answers a
// charge lookup and a refund of what was asked, and remembers nothing, so
// that a run of any length costs the fake the same per call.
func stub() http.Handler {
	var seq atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := seq.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", fmt.Sprintf("req_stub%d", n))
		switch {
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/charges/"):
			id := strings.TrimPrefix(r.URL.Path, "/v1/charges/")
			fmt.Fprintf(w, `{"id":%q,"object":"charge","amount":99999999,"amount_captured":99999999,"amount_refunded":0,"captured":true,"currency":"usd","customer":null,"status":"succeeded"}`, id)
		case r.Method == "POST" && r.URL.Path == "/v1/refunds":
			if err := r.ParseForm(); err != nil {
				http.Error(w, `{"error":{"type":"invalid_request_error","message":"bad form"}}`, 400)
				return
			}
			fmt.Fprintf(w, `{"id":"re_stub%d","object":"refund","amount":%s,"currency":"usd","status":"succeeded","charge":%q}`,
				n, r.PostForm.Get("amount"), r.PostForm.Get("charge"))
		default:
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"not stubbed"}}`, 404)
		}
	})
}
