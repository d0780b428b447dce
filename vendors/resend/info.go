package resend

import "github.com/keybrake/keybrake/vendors"

// secrets are Resend API keys: re_, an ID, _, a secret. A bare re_ID is a
// Stripe refund, not a key.
var secrets = []string{`re_[A-Za-z0-9]+_[A-Za-z0-9]+`}

func init() { vendors.RedactSecrets(secrets...) }

// Info describes Resend to the shared code: a grant may limit recipients,
// senders and the addresses of one email; emails are priced from the
// policy's price list, a broadcast as broadcast_emails emails.
func (Vendor) Info() vendors.Info {
	return vendors.Info{
		Help: "Resend (resend-go v2): emails priced by the policy; grants limit recipients, senders (from) and max_recipients per email",
		Grant: []vendors.Key{
			{Name: "recipients", Kind: vendors.ListKey, Subject: vendors.Recipients, Match: vendors.EmailRecipients,
				Help: `addresses ("ops@example.com") or domains ("@example.com") every to, cc and bcc must be in`},
			{Name: "max_recipients", Kind: vendors.MaxKey, Subject: vendors.RecipientsPerEmail,
				Help: "the most to+cc+bcc addresses in one email"},
			{Name: "from", Kind: vendors.ListKey, Subject: vendors.Senders, Match: vendors.EmailSenders,
				Help: "sender addresses or domains"},
		},
		Shared: []vendors.Key{
			{Name: "bill_per_recipient", Kind: vendors.FlagSetting,
				Help: "count every address of to, cc and bcc as one email, for plans billed that way"},
			{Name: "broadcast_emails", Kind: vendors.CountSetting,
				Help: "how many emails a broadcast counts; without it broadcasts are refused"},
		},
		Prices:           []string{"email"},
		Units:            units,
		RequestIDHeaders: []string{"X-Resend-Request-Id", "X-Request-Id", "Request-Id"},
		Secrets:          append([]string(nil), secrets...),
	}
}

// units counts a broadcast as the policy's broadcast_emails emails, and an
// email as its recipients when the plan bills per recipient.
func units(p vendors.Priced, s vendors.Settings) (string, int64, error) {
	switch {
	case p.Item == "broadcast":
		n := s.Count("broadcast_emails")
		if n == 0 {
			return "", 0, &vendors.Unpriced{Key: "broadcast_emails", Code: "keybrake_broadcast_unbounded",
				Reason: "Keybrake cannot know how many emails a broadcast sends; set broadcast_emails under vendors.resend"}
		}
		return "email", n, nil
	case p.Item == "email" && s.Flag("bill_per_recipient"):
		return p.Item, p.Recipients, nil
	}
	return p.Item, p.Quantity, nil
}
