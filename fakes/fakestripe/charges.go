package fakestripe

import (
	"net/http"
	"sort"
	"strconv"
)

// declines are Stripe's test payment methods and tokens that a card
// network declines, with the decline code Stripe reports.
var declines = map[string]string{
	"tok_chargeDeclined":                      "generic_decline",
	"tok_chargeDeclinedInsufficientFunds":     "insufficient_funds",
	"pm_card_chargeDeclined":                  "generic_decline",
	"pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}

func declineMessage(code string) string {
	if code == "insufficient_funds" {
		return "Your card has insufficient funds."
	}
	return "Your card was declined."
}

// cardDeclined is a decline: the endpoint executed (a failed charge
// exists), so Stripe saves it under the idempotency key.
func cardDeclined(declineCode, chargeID string) *apiError {
	return &apiError{
		status: http.StatusPaymentRequired, typ: "card_error", code: "card_declined",
		declineCode: declineCode, message: declineMessage(declineCode),
		charge: chargeID, executed: true,
	}
}

// --- customers

func (s *Server) customer(c *call, id, param string) (*customerObj, *apiError) {
	cu, ok := s.customers[key{c.account, id}]
	if !ok {
		return nil, noSuch("customer", id, param)
	}
	return cu, nil
}

var customerParams = []string{"email", "name", "description", "phone", "metadata", "preferred_locales[]"}

func (s *Server) createCustomer(c *call) (any, *apiError) {
	if err := c.params.allow(customerParams...); err != nil {
		return nil, err
	}
	cu := s.newCustomer(s.newID("cus"), c.now)
	applyCustomer(cu, c.params)
	s.customers[key{c.account, cu.ID}] = cu
	return cu, nil
}

func (s *Server) newCustomer(id string, now int64) *customerObj {
	s.seq++
	return &customerObj{
		ID: id, Object: "customer", Created: now, Metadata: map[string]string{},
		PreferredLocales: []string{}, TaxExempt: "none", seq: s.seq,
	}
}

func applyCustomer(cu *customerObj, p params) {
	for k, dst := range map[string]*nullable{"email": &cu.Email, "name": &cu.Name, "description": &cu.Description, "phone": &cu.Phone} {
		if p.has(k) {
			*dst = p.opt(k)
		}
	}
	if l := p.values("preferred_locales"); l != nil {
		cu.PreferredLocales = l
	}
	cu.Metadata = p.metadata(cu.Metadata)
}

func (s *Server) getCustomer(c *call) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	return s.customer(c, c.vars["id"], "id")
}

func (s *Server) updateCustomer(c *call) (any, *apiError) {
	if err := c.params.allow(customerParams...); err != nil {
		return nil, err
	}
	cu, err := s.customer(c, c.vars["id"], "id")
	if err != nil {
		return nil, err
	}
	applyCustomer(cu, c.params)
	return cu, nil
}

// limit reads a list's limit: 1 to 100, default 10.
func limit(p params) (int, *apiError) {
	if !p.has("limit") {
		return 10, nil
	}
	n, err := strconv.Atoi(p.str("limit"))
	if err != nil || n < 1 || n > 100 {
		return 0, invalid("limit", "parameter_invalid_integer", "Invalid integer: %s; limit must be between 1 and 100", p.str("limit"))
	}
	return n, nil
}

// page cuts a list, newest first, after starting_after.
func page[T any](items []T, id func(T) string, p params, url string) (list, *apiError) {
	n, err := limit(p)
	if err != nil {
		return list{}, err
	}
	if after := p.str("starting_after"); after != "" {
		i := 0
		for i < len(items) && id(items[i]) != after {
			i++
		}
		if i == len(items) {
			return list{}, noSuch("object", after, "starting_after")
		}
		items = items[i+1:]
	}
	l := newList(url, nil)
	for i, it := range items {
		if i == n {
			l.HasMore = true
			break
		}
		l.Data = append(l.Data, it)
	}
	return l, nil
}

func (s *Server) listCustomers(c *call) (any, *apiError) {
	if err := c.params.allow("limit", "email", "starting_after"); err != nil {
		return nil, err
	}
	var all []*customerObj
	for k, cu := range s.customers {
		if k.account == c.account && (!c.params.has("email") || string(cu.Email) == c.params.str("email")) {
			all = append(all, cu)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq > all[j].seq })
	return page(all, func(cu *customerObj) string { return cu.ID }, c.params, "/v1/customers")
}

// --- charges

func (s *Server) charge(c *call, id, param string) (*chargeObj, *apiError) {
	ch, ok := s.charges[key{c.account, id}]
	if !ok {
		return nil, noSuch("charge", id, param)
	}
	return ch, nil
}

func (s *Server) newCharge(c *call, amount int64, currency, customer string) *chargeObj {
	return &chargeObj{
		ID: s.newID("ch"), Object: "charge", Amount: amount, Currency: currency,
		Customer: nullable(customer), Created: c.now, Metadata: map[string]string{},
		Paid: true, Status: "succeeded", account: c.account,
	}
}

// captureMoney marks ch captured for amount and records the movement.
func (s *Server) captureMoney(c *call, ch *chargeObj, amount int64, kind string) {
	ch.Captured = true
	ch.AmountCaptured = amount
	ch.BalanceTransaction = nullable(s.newID("txn"))
	s.move(c, kind, ch.ID, amount, ch.Currency)
	if ch.ApplicationFeeAmount != nil && c.account != "" {
		s.createFee(c, ch, *ch.ApplicationFeeAmount)
	}
}

func (s *Server) createCharge(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "currency", "customer", "source", "capture", "description", "metadata",
		"receipt_email", "statement_descriptor", "statement_descriptor_suffix", "application_fee_amount", "transfer_group"); err != nil {
		return nil, err
	}
	amount, err := p.requiredAmount("amount")
	if err != nil {
		return nil, err
	}
	currency, err := p.currency("currency")
	if err != nil {
		return nil, err
	}
	capture, err := p.boolean("capture", true)
	if err != nil {
		return nil, err
	}
	fee, hasFee, err := p.amount("application_fee_amount")
	if err != nil {
		return nil, err
	}
	if hasFee && c.account == "" {
		return nil, invalid("application_fee_amount", "", "Can only apply an application_fee_amount when the request is made on behalf of another account (using an OAuth key, the Stripe-Account header, or the destination parameter).")
	}
	if hasFee && fee > amount {
		return nil, invalid("application_fee_amount", "", "The application fee (%d) cannot exceed the amount of the charge (%d).", fee, amount)
	}
	customer, source := p.str("customer"), p.str("source")
	if customer == "" && source == "" {
		return nil, invalid("source", "parameter_missing", "Must provide source or customer.")
	}
	if customer != "" {
		if _, err := s.customer(c, customer, "customer"); err != nil {
			return nil, err
		}
	}

	ch := s.newCharge(c, amount, currency, customer)
	ch.Description = p.opt("description")
	ch.Metadata = p.metadata(nil)
	ch.PaymentMethod = nullable(source)
	ch.ReceiptEmail = p.opt("receipt_email")
	ch.StatementDescriptor = p.opt("statement_descriptor")
	ch.StatementDescriptorSuffix = p.opt("statement_descriptor_suffix")
	ch.TransferGroup = p.opt("transfer_group")
	if hasFee {
		ch.ApplicationFeeAmount = &fee
	}
	s.charges[key{c.account, ch.ID}] = ch

	if code, declined := declines[source]; declined {
		ch.Paid, ch.Status = false, "failed"
		ch.FailureCode, ch.FailureMessage = "card_declined", nullable(declineMessage(code))
		return nil, cardDeclined(code, ch.ID)
	}
	if capture {
		s.captureMoney(c, ch, amount, "charge")
	}
	return ch, nil
}

func (s *Server) getCharge(c *call) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	return s.charge(c, c.vars["id"], "id")
}

func (s *Server) captureCharge(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "receipt_email", "statement_descriptor", "statement_descriptor_suffix"); err != nil {
		return nil, err
	}
	ch, err := s.charge(c, c.vars["id"], "id")
	if err != nil {
		return nil, err
	}
	amount, given, err := p.amount("amount")
	if err != nil {
		return nil, err
	}
	if !given {
		amount = ch.Amount
	}
	switch {
	case ch.PaymentIntent != "":
		return nil, invalid("", "", "fakestripe: charge %s belongs to payment intent %s; capture the payment intent instead.", ch.ID, ch.PaymentIntent)
	case ch.Status == "failed":
		return nil, invalid("", "", "Charge %s has failed and cannot be captured.", ch.ID)
	case ch.Refunded:
		return nil, invalid("", "charge_already_refunded", "Charge %s has already been refunded.", ch.ID)
	case ch.Captured:
		return nil, invalid("", "charge_already_captured", "Charge %s has already been captured.", ch.ID)
	case amount > ch.Amount:
		return nil, invalid("amount", "amount_too_large", "Amount to capture (%d) must be less than or equal to the amount authorized (%d).", amount, ch.Amount)
	}
	if p.has("receipt_email") {
		ch.ReceiptEmail = p.opt("receipt_email")
	}
	if p.has("statement_descriptor") {
		ch.StatementDescriptor = p.opt("statement_descriptor")
	}
	if p.has("statement_descriptor_suffix") {
		ch.StatementDescriptorSuffix = p.opt("statement_descriptor_suffix")
	}
	s.captureMoney(c, ch, amount, "charge_capture")
	return ch, nil
}
