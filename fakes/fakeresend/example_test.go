package fakeresend_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"

	"github.com/resend/resend-go/v2"

	"github.com/keybrake/keybrake/fakes/fakeresend"
)

// A permissive batch sends the valid emails and reports the others: what
// Keybrake must count is what the answer's data says, not the batch size.
func ExampleServer_permissiveBatch() {
	fr := fakeresend.New()
	ts := httptest.NewServer(fr)
	defer ts.Close()
	defer fr.Close()

	rc := resend.NewCustomClient(nil, fakeresend.DefaultAPIKey)
	rc.BaseURL, _ = url.Parse(ts.URL + "/")

	emails := []*resend.SendEmailRequest{
		{From: "agent@keybrake.dev", To: []string{"ada@example.com", "grace@example.com"}, Subject: "Hi", Text: "Hello"},
		{From: "agent@keybrake.dev", To: []string{"not an address"}, Subject: "Hi", Text: "Hello"},
		{From: "agent@keybrake.dev", To: []string{"alan@example.com"}, Subject: "Hi", Text: "Hello"},
	}
	res, err := rc.Batch.SendWithOptions(context.Background(), emails, &resend.BatchSendEmailOptions{
		IdempotencyKey:  "newsletter-2026-03",
		BatchValidation: resend.BatchValidationPermissive,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range res.Data {
		fmt.Println("sent", d.Id)
	}
	for _, e := range res.Errors {
		fmt.Println("refused", e.Index)
	}
	fmt.Println("emails:", fr.Sent(), "recipients:", fr.Recipients())

	// A retry of the same batch under the same key sends nothing more.
	if _, err := rc.Batch.SendWithOptions(context.Background(), emails, &resend.BatchSendEmailOptions{
		IdempotencyKey:  "newsletter-2026-03",
		BatchValidation: resend.BatchValidationPermissive,
	}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("after the retry:", fr.Sent())
	// Output:
	// sent 00000000-0000-4000-8000-000000000001
	// sent 00000000-0000-4000-8000-000000000002
	// refused 1
	// emails: 2 recipients: 3
	// after the retry: 2
}
