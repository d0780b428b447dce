package twilio

import "github.com/keybrake/keybrake/vendors"

// secrets are the credentials Twilio issues with a format: API key SIDs.
// Auth tokens have none; they travel in the Authorization header, which no
// record keeps.
var secrets = []string{`SK[0-9a-fA-F]{32}`}

func init() { vendors.RedactSecrets(secrets...) }

// Info describes Twilio to the shared code: a grant may limit the
// destinations and senders; messages and calls are priced from the
// policy's price list (sms, mms, call_minute by destination prefix).
func (Vendor) Info() vendors.Info {
	return vendors.Info{
		Help: "Twilio (twilio-go v1.31): SMS, MMS and calls priced by the policy per destination prefix; grants limit destinations (to) and senders (from)",
		Grant: []vendors.Key{
			{Name: "to", Kind: vendors.ListKey, Subject: vendors.Recipients, Match: vendors.PhoneDestinations,
				Help: `destinations: E.164 numbers, or prefixes ending in * ("+1*")`},
			{Name: "from", Kind: vendors.ListKey, Subject: vendors.Senders, Match: vendors.PhoneSenders,
				Help: "senders: E.164 numbers or messaging service SIDs (MG...)"},
		},
		Shared: []vendors.Key{
			{Name: "assume_call_minutes", Kind: vendors.CountSetting,
				Help: "how many minutes a call without TimeLimit counts; without it such calls are refused"},
		},
		Prices:           []string{"sms", "mms", "call_minute"},
		Units:            units,
		RequestIDHeaders: []string{"Twilio-Request-Id"},
		Secrets:          append([]string(nil), secrets...),
	}
}

// units counts a call without TimeLimit (an unbounded quantity of
// call_minute) as the policy's assume_call_minutes.
func units(p vendors.Priced, s vendors.Settings) (string, int64, error) {
	if p.Item == "call_minute" && p.Quantity < 0 {
		n := s.Count("assume_call_minutes")
		if n == 0 {
			return "", 0, &vendors.Unpriced{Key: "assume_call_minutes", Code: "keybrake_call_unbounded",
				Reason: "a call without TimeLimit could run for hours; set TimeLimit, or assume_call_minutes under vendors.twilio"}
		}
		return p.Item, n, nil
	}
	return p.Item, p.Quantity, nil
}
