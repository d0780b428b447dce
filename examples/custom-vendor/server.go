package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// payoutsAPI stands in for the payouts API on loopback: it pays out what
// it is asked to and keeps a ledger, the vendor's own tally to hold the
// audit log against. Safe for concurrent use.
type payoutsAPI struct {
	key string // the one API key it accepts

	mu      sync.Mutex
	payouts map[string]payout
	paid    map[string]int64 // minor units paid out, by currency
	served  int              // requests answered, for Request-Id
}

func newPayoutsAPI(key string) *payoutsAPI {
	return &payoutsAPI{key: key, payouts: map[string]payout{}, paid: map[string]int64{}}
}

var currencyCode = regexp.MustCompile(`^[a-z]{3}$`)

func (a *payoutsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.served++
	w.Header().Set("Request-Id", fmt.Sprintf("req_%06d", a.served))
	if r.Header.Get("Authorization") != "Bearer "+a.key {
		a.fail(w, http.StatusUnauthorized, "invalid_api_key", "no valid API key")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payouts":
		a.create(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payouts/"):
		p, ok := a.payouts[strings.TrimPrefix(r.URL.Path, "/v1/payouts/")]
		if !ok {
			a.fail(w, http.StatusNotFound, "not_found", "no such payout")
			return
		}
		a.answer(w, http.StatusOK, p)
	default:
		a.fail(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

func (a *payoutsAPI) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Amount      int64  `json:"amount"`
		Currency    string `json:"currency"`
		Recipient   string `json:"recipient"`
		Description string `json:"description"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		a.fail(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if in.Amount <= 0 || !currencyCode.MatchString(in.Currency) || !strings.HasPrefix(in.Recipient, "acct_") {
		a.fail(w, http.StatusBadRequest, "invalid_request", "amount, currency and recipient are required")
		return
	}
	p := payout{
		ID:     fmt.Sprintf("po_%06d", len(a.payouts)+1),
		Amount: in.Amount, Currency: in.Currency, Recipient: in.Recipient, Status: "paid",
	}
	a.payouts[p.ID] = p
	a.paid[p.Currency] += p.Amount
	a.answer(w, http.StatusOK, p)
}

func (a *payoutsAPI) answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *payoutsAPI) fail(w http.ResponseWriter, status int, code, msg string) {
	a.answer(w, status, errorBody{Error: apiErrorBody{Code: code, Message: msg, RequestID: w.Header().Get("Request-Id")}})
}

// ledger is what the API has paid out, in minor units by currency.
func (a *payoutsAPI) ledger() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int64, len(a.paid))
	for c, n := range a.paid {
		out[c] = n
	}
	return out
}
