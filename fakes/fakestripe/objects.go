package fakestripe

// The objects below are rendered as Stripe's JSON (API version 2023-10-16)
// with the field names of stripe-go v76's types. Fields fakestripe does not
// model are left out rather than sent with made-up values; stripe-go
// leaves them zero. Unexported fields are state that is not on the wire.

type customerObj struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Balance          int64             `json:"balance"`
	Created          int64             `json:"created"`
	Currency         nullable          `json:"currency"`
	Delinquent       bool              `json:"delinquent"`
	Description      nullable          `json:"description"`
	Email            nullable          `json:"email"`
	Livemode         bool              `json:"livemode"`
	Metadata         map[string]string `json:"metadata"`
	Name             nullable          `json:"name"`
	Phone            nullable          `json:"phone"`
	PreferredLocales []string          `json:"preferred_locales"`
	TaxExempt        string            `json:"tax_exempt"`

	seq int // creation order, for lists
}

type chargeObj struct {
	ID                        string            `json:"id"`
	Object                    string            `json:"object"`
	Amount                    int64             `json:"amount"`
	AmountCaptured            int64             `json:"amount_captured"`
	AmountRefunded            int64             `json:"amount_refunded"`
	ApplicationFee            nullable          `json:"application_fee"`
	ApplicationFeeAmount      *int64            `json:"application_fee_amount"`
	BalanceTransaction        nullable          `json:"balance_transaction"`
	Captured                  bool              `json:"captured"`
	Created                   int64             `json:"created"`
	Currency                  string            `json:"currency"`
	Customer                  nullable          `json:"customer"`
	Description               nullable          `json:"description"`
	Disputed                  bool              `json:"disputed"`
	FailureCode               nullable          `json:"failure_code"`
	FailureMessage            nullable          `json:"failure_message"`
	Invoice                   nullable          `json:"invoice"`
	Livemode                  bool              `json:"livemode"`
	Metadata                  map[string]string `json:"metadata"`
	Paid                      bool              `json:"paid"`
	PaymentIntent             nullable          `json:"payment_intent"`
	PaymentMethod             nullable          `json:"payment_method"`
	ReceiptEmail              nullable          `json:"receipt_email"`
	Refunded                  bool              `json:"refunded"`
	StatementDescriptor       nullable          `json:"statement_descriptor"`
	StatementDescriptorSuffix nullable          `json:"statement_descriptor_suffix"`
	Status                    string            `json:"status"`
	TransferGroup             nullable          `json:"transfer_group"`

	account string
}

// refundable is what a refund may still return: captured and not yet
// refunded.
func (c *chargeObj) refundable() int64 { return c.AmountCaptured - c.AmountRefunded }

type paymentIntentObj struct {
	ID                        string            `json:"id"`
	Object                    string            `json:"object"`
	Amount                    int64             `json:"amount"`
	AmountCapturable          int64             `json:"amount_capturable"`
	AmountReceived            int64             `json:"amount_received"`
	ApplicationFeeAmount      *int64            `json:"application_fee_amount"`
	CanceledAt                *int64            `json:"canceled_at"`
	CaptureMethod             string            `json:"capture_method"`
	ClientSecret              string            `json:"client_secret"`
	ConfirmationMethod        string            `json:"confirmation_method"`
	Created                   int64             `json:"created"`
	Currency                  string            `json:"currency"`
	Customer                  nullable          `json:"customer"`
	Description               nullable          `json:"description"`
	LastPaymentError          *errorFields      `json:"last_payment_error"`
	LatestCharge              nullable          `json:"latest_charge"`
	Livemode                  bool              `json:"livemode"`
	Metadata                  map[string]string `json:"metadata"`
	PaymentMethod             nullable          `json:"payment_method"`
	PaymentMethodTypes        []string          `json:"payment_method_types"`
	ReceiptEmail              nullable          `json:"receipt_email"`
	StatementDescriptor       nullable          `json:"statement_descriptor"`
	StatementDescriptorSuffix nullable          `json:"statement_descriptor_suffix"`
	Status                    string            `json:"status"`
	TransferGroup             nullable          `json:"transfer_group"`

	account string
	seq     int
}

type refundObj struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	BalanceTransaction nullable          `json:"balance_transaction"`
	Charge             nullable          `json:"charge"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Metadata           map[string]string `json:"metadata"`
	PaymentIntent      nullable          `json:"payment_intent"`
	Reason             nullable          `json:"reason"`
	Status             string            `json:"status"`

	account string
}

type transferObj struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	AmountReversed     int64             `json:"amount_reversed"`
	BalanceTransaction nullable          `json:"balance_transaction"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Description        nullable          `json:"description"`
	Destination        string            `json:"destination"`
	Livemode           bool              `json:"livemode"`
	Metadata           map[string]string `json:"metadata"`
	Reversals          list              `json:"reversals"`
	Reversed           bool              `json:"reversed"`
	SourceType         string            `json:"source_type"`
	TransferGroup      nullable          `json:"transfer_group"`

	account   string
	reversals []*reversalObj
}

type reversalObj struct {
	ID                       string            `json:"id"`
	Object                   string            `json:"object"`
	Amount                   int64             `json:"amount"`
	BalanceTransaction       nullable          `json:"balance_transaction"`
	Created                  int64             `json:"created"`
	Currency                 string            `json:"currency"`
	DestinationPaymentRefund nullable          `json:"destination_payment_refund"`
	Metadata                 map[string]string `json:"metadata"`
	SourceRefund             nullable          `json:"source_refund"`
	Transfer                 string            `json:"transfer"`
}

// payoutObj is a payout or a top-up: both are an amount that leaves or
// enters the balance and stays "pending" here, as fakestripe has no clock
// that would make them arrive.
type payoutObj struct {
	ID                       string            `json:"id"`
	Object                   string            `json:"object"`
	Amount                   int64             `json:"amount"`
	ArrivalDate              int64             `json:"arrival_date,omitempty"`
	Automatic                *bool             `json:"automatic,omitempty"`
	BalanceTransaction       nullable          `json:"balance_transaction"`
	Created                  int64             `json:"created"`
	Currency                 string            `json:"currency"`
	Description              nullable          `json:"description"`
	ExpectedAvailabilityDate int64             `json:"expected_availability_date,omitempty"`
	Livemode                 bool              `json:"livemode"`
	Metadata                 map[string]string `json:"metadata"`
	Method                   string            `json:"method,omitempty"`
	SourceType               string            `json:"source_type,omitempty"`
	StatementDescriptor      nullable          `json:"statement_descriptor"`
	Status                   string            `json:"status"`
	TransferGroup            nullable          `json:"transfer_group,omitempty"`
	Type                     string            `json:"type,omitempty"`

	account string
}

type invoiceObj struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	AmountDue        int64             `json:"amount_due"`
	AmountPaid       int64             `json:"amount_paid"`
	AmountRemaining  int64             `json:"amount_remaining"`
	AttemptCount     int64             `json:"attempt_count"`
	Attempted        bool              `json:"attempted"`
	Charge           nullable          `json:"charge"`
	CollectionMethod string            `json:"collection_method"`
	Created          int64             `json:"created"`
	Currency         string            `json:"currency"`
	Customer         nullable          `json:"customer"`
	Lines            list              `json:"lines"`
	Livemode         bool              `json:"livemode"`
	Metadata         map[string]string `json:"metadata"`
	Paid             bool              `json:"paid"`
	PaidOutOfBand    bool              `json:"paid_out_of_band"`
	Status           string            `json:"status"`
	Subtotal         int64             `json:"subtotal"`
	Total            int64             `json:"total"`

	account string
}

type applicationFeeObj struct {
	ID                 string   `json:"id"`
	Object             string   `json:"object"`
	Account            nullable `json:"account"`
	Amount             int64    `json:"amount"`
	AmountRefunded     int64    `json:"amount_refunded"`
	BalanceTransaction nullable `json:"balance_transaction"`
	Charge             nullable `json:"charge"`
	Created            int64    `json:"created"`
	Currency           string   `json:"currency"`
	Livemode           bool     `json:"livemode"`
	Refunded           bool     `json:"refunded"`
	Refunds            list     `json:"refunds"`

	refunds []*feeRefundObj
}

type feeRefundObj struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	BalanceTransaction nullable          `json:"balance_transaction"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Fee                string            `json:"fee"`
	Metadata           map[string]string `json:"metadata"`
}
