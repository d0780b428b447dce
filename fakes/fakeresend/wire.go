package fakeresend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// apiError is an answer in Resend's error shape:
// {"statusCode":422,"name":"validation_error","message":"..."}. resend-go
// turns a 429 into *resend.RateLimitError and any other into an error
// carrying only the message.
type apiError struct {
	status  int
	name    string
	message string
}

func (e *apiError) Error() string { return e.message }

type errorBody struct {
	StatusCode int    `json:"statusCode"`
	Name       string `json:"name"`
	Message    string `json:"message"`
}

func (e *apiError) body() []byte {
	return mustJSON(errorBody{StatusCode: e.status, Name: e.name, Message: e.message})
}

// The error names Resend documents (https://resend.com/docs/api-reference/errors).
const (
	nameValidation          = "validation_error"
	nameMissingField        = "missing_required_field"
	nameMissingAPIKey       = "missing_api_key"
	nameInvalidAPIKey       = "invalid_api_key"
	nameNotFound            = "not_found"
	nameInvalidIdemKey      = "invalid_idempotency_key"
	nameInvalidIdemRequest  = "invalid_idempotent_request"
	nameConcurrentIdem      = "concurrent_idempotent_requests"
	nameInvalidAttachment   = "invalid_attachment"
	nameInvalidParameter    = "invalid_parameter"
	nameRateLimitExceeded   = "rate_limit_exceeded"
	nameSecurityError       = "security_error"
	nameMethodNotAllowed    = "method_not_allowed"
	nameApplicationError    = "application_error"
	nameInternalServerError = "internal_server_error"
)

func invalid(format string, args ...any) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, name: nameValidation, message: fmt.Sprintf(format, args...)}
}

func missing(field string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, name: nameMissingField, message: fmt.Sprintf("Missing `%s` field.", field)}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, name: nameValidation, message: fmt.Sprintf(format, args...)}
}

func notFound(message string) *apiError {
	return &apiError{status: http.StatusNotFound, name: nameNotFound, message: message}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakeresend: render %T: %v", v, err))
	}
	return append(b, '\n')
}

// maxDepth bounds how deeply a body may nest: no email needs more than
// three levels, and a bound keeps the walk below cheap.
const maxDepth = 32

// checkJSON verifies that b is exactly one JSON value with no key sent
// twice in any object. encoding/json would keep the last of two equal
// keys (and Resend's parser too, as JavaScript's does), so a body with
// one is ambiguous to anything that reads it another way; fakeresend
// refuses rather than guess.
func checkJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walk(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func walk(dec *json.Decoder, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			if seen[key] {
				return fmt.Errorf("the key %q appears twice in one object", key)
			}
			seen[key] = true
			if err := walk(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if err := walk(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// canonical renders a checked JSON body with sorted keys and no
// whitespace, so that two bodies that mean the same compare equal.
func canonical(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(b)
	}
	return string(out)
}
