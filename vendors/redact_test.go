package vendors_test

import (
	"testing"

	"github.com/keybrake/keybrake/vendors"
	_ "github.com/keybrake/keybrake/vendors/builtin" // registers the vendors' secret formats
)

func TestRedactParam(t *testing.T) {
	tests := []struct {
		key, value, want string
		keep             bool
	}{
		{"card[cvc]", "123", "", false},
		{"payment_method_data[card][cvc]", "123", "", false},
		{"CVC", "123", "", false},
		{"card[number]", "4242424242424242", "424242******4242", true},
		{"card[number]", "4242 4242 4242 4242", "424242******4242", true},
		{"description", "order 4000056655665556 refund", "order 400005******5556 refund", true},
		{"description", "1234567890123", "1234567890123", true}, // fails Luhn: not a card
		{"metadata[note]", "key sk_live_abcDEF123 leaked", "key [redacted] leaked", true},
		{"metadata[note]", "rk_test_51abc", "[redacted]", true},
		{"amount", "1099", "1099", true},
		{"charge", "ch_1", "ch_1", true},
		{"refund", "re_RlgOR7xXLqdGbMX", "re_RlgOR7xXLqdGbMX", true}, // a Stripe refund id, not a Resend key
		{"note", "re_123456789_abcdefghijk", "[redacted]", true},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			got, keep := vendors.RedactParam(tt.key, tt.value)
			if keep != tt.keep || got != tt.want {
				t.Fatalf("RedactParam = %q, %v; want %q, %v", got, keep, tt.want, tt.keep)
			}
		})
	}
}
