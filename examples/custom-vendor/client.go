package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// payoutsClient is the agent's side: what a vendor's SDK would be, a few
// lines over the *http.Client it is given (Keybrake's). It never retries.
type payoutsClient struct {
	http *http.Client
	key  string // pk_test_...
}

// apiBase is the API's official address; Keybrake sends the calls on to
// the endpoint it is configured with.
const apiBase = "https://" + apiHost

// payout is a payout as the API answers it.
type payout struct {
	ID        string `json:"id"`
	Amount    int64  `json:"amount"` // minor units
	Currency  string `json:"currency"`
	Recipient string `json:"recipient"`
	Status    string `json:"status"`
}

// errorBody is the API's error answer. The API writes error; a refusal
// from Keybrake (payoutsVendor.Deny) adds keybrake, the whole decision.
type errorBody struct {
	Error    apiErrorBody    `json:"error"`
	Keybrake json.RawMessage `json:"keybrake,omitempty"`
}

type apiErrorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// apiError is a non-2xx answer, as the client returns it.
type apiError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Keybrake  json.RawMessage // set when Keybrake refused the call
}

func (e *apiError) Error() string {
	return fmt.Sprintf("payouts: %d %s: %s", e.Status, e.Code, e.Message)
}

// create pays amount minor units of currency to recipient.
func (c *payoutsClient) create(ctx context.Context, amount int64, currency, recipient string) (*payout, error) {
	body, err := json.Marshal(map[string]any{"amount": amount, "currency": currency, "recipient": recipient})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiBase+"/v1/payouts", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// get reads a payout back.
func (c *payoutsClient) get(ctx context.Context, id string) (*payout, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiBase+"/v1/payouts/"+id, nil)
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

func (c *payoutsClient) do(req *http.Request) (*payout, error) {
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	return readAnswer(resp)
}

// readAnswer reads a payout, or the error the answer says, and closes the
// body. Reading a payout's answer to its end is what lets Keybrake settle
// the call.
func readAnswer(resp *http.Response) (*payout, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Status: resp.StatusCode, RequestID: resp.Header.Get("Request-Id")}
		var eb errorBody
		if err := json.Unmarshal(b, &eb); err == nil {
			e.Code, e.Message, e.Keybrake = eb.Error.Code, eb.Error.Message, eb.Keybrake
		}
		return nil, e
	}
	var p payout
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("payouts: answer: %w", err)
	}
	return &p, nil
}
