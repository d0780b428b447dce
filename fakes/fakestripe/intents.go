package fakestripe

import (
	"fmt"
	"sort"
	"strings"
)

func (s *Server) intent(c *call, id, param string) (*paymentIntentObj, *apiError) {
	pi, ok := s.intents[key{c.account, id}]
	if !ok {
		return nil, noSuch("payment_intent", id, param)
	}
	return pi, nil
}

func (s *Server) newIntent(account, id string, amount int64, currency string, now int64) *paymentIntentObj {
	s.seq++
	return &paymentIntentObj{
		ID: id, Object: "payment_intent", Amount: amount, Currency: currency,
		CaptureMethod: "automatic", ConfirmationMethod: "automatic", Created: now,
		ClientSecret: id + "_secret_fakestripe", Metadata: map[string]string{},
		PaymentMethodTypes: []string{"card"}, Status: "requires_payment_method",
		account: account, seq: s.seq,
	}
}

var captureMethods = []string{"automatic", "automatic_async", "manual"}

// confirmable are the statuses Stripe lets a payment intent be confirmed
// (and updated) in.
var confirmable = []string{"requires_payment_method", "requires_confirmation", "requires_action"}

func in(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) createPaymentIntent(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "currency", "customer", "capture_method", "confirm", "payment_method",
		"payment_method_types[]", "description", "metadata", "receipt_email", "statement_descriptor",
		"statement_descriptor_suffix", "application_fee_amount", "transfer_group", "off_session",
		"return_url", "automatic_payment_methods[enabled]"); err != nil {
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
	captureMethod, err := p.oneOf("capture_method", "automatic", captureMethods...)
	if err != nil {
		return nil, err
	}
	confirm, err := p.boolean("confirm", false)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"off_session", "automatic_payment_methods[enabled]"} {
		if _, err := p.boolean(k, false); err != nil {
			return nil, err
		}
	}
	fee, hasFee, err := p.amount("application_fee_amount")
	if err != nil {
		return nil, err
	}
	if hasFee && c.account == "" {
		return nil, invalid("application_fee_amount", "", "Can only apply an application_fee_amount when the request is made on behalf of another account (using an OAuth key, the Stripe-Account header, or transfer_data[destination]).")
	}
	if customer := p.str("customer"); customer != "" {
		if _, err := s.customer(c, customer, "customer"); err != nil {
			return nil, err
		}
	}
	if confirm && p.str("payment_method") == "" {
		return nil, invalid("payment_method", "payment_intent_unexpected_state", "You cannot confirm this PaymentIntent because it's missing a payment method. Update the payment_method parameter and try again. (fakestripe: pass payment_method, e.g. pm_card_visa)")
	}

	pi := s.newIntent(c.account, s.newID("pi"), amount, currency, c.now)
	pi.CaptureMethod = captureMethod
	pi.Customer = p.opt("customer")
	pi.Description = p.opt("description")
	pi.Metadata = p.metadata(nil)
	pi.ReceiptEmail = p.opt("receipt_email")
	pi.StatementDescriptor = p.opt("statement_descriptor")
	pi.StatementDescriptorSuffix = p.opt("statement_descriptor_suffix")
	pi.TransferGroup = p.opt("transfer_group")
	if types := p.values("payment_method_types"); types != nil {
		pi.PaymentMethodTypes = types
	}
	if hasFee {
		pi.ApplicationFeeAmount = &fee
	}
	if pm := p.str("payment_method"); pm != "" {
		pi.PaymentMethod = nullable(pm)
		pi.Status = "requires_confirmation"
	}
	s.intents[key{c.account, pi.ID}] = pi
	if confirm {
		return s.confirm(c, pi)
	}
	return pi, nil
}

// confirm attempts the payment: a charge is made, captured at once
// unless the capture method is manual; a declining payment method leaves
// a failed charge and the intent back in requires_payment_method.
func (s *Server) confirm(c *call, pi *paymentIntentObj) (any, *apiError) {
	ch := s.newCharge(c, pi.Amount, pi.Currency, string(pi.Customer))
	ch.PaymentIntent = nullable(pi.ID)
	ch.PaymentMethod = pi.PaymentMethod
	ch.Description = pi.Description
	ch.ReceiptEmail = pi.ReceiptEmail
	ch.ApplicationFeeAmount = pi.ApplicationFeeAmount
	s.charges[key{c.account, ch.ID}] = ch
	pi.LatestCharge = nullable(ch.ID)

	if code, declined := declines[string(pi.PaymentMethod)]; declined {
		ch.Paid, ch.Status = false, "failed"
		ch.FailureCode, ch.FailureMessage = "card_declined", nullable(declineMessage(code))
		e := cardDeclined(code, ch.ID)
		pi.Status = "requires_payment_method"
		pi.PaymentMethod = ""
		pi.LastPaymentError = &errorFields{
			Charge: ch.ID, Code: e.code, DeclineCode: code, Message: e.message, Type: e.typ,
		}
		e.intent = pi
		return nil, e
	}
	pi.LastPaymentError = nil
	if pi.CaptureMethod == "manual" {
		ch.Status = "succeeded"
		pi.Status = "requires_capture"
		pi.AmountCapturable = pi.Amount
		return pi, nil
	}
	s.captureMoney(c, ch, pi.Amount, "payment_intent")
	pi.Status = "succeeded"
	pi.AmountReceived = pi.Amount
	return pi, nil
}

func (s *Server) getPaymentIntent(c *call) (any, *apiError) {
	if err := c.params.allow("client_secret"); err != nil {
		return nil, err
	}
	return s.intent(c, c.vars["id"], "id")
}

func (s *Server) listPaymentIntents(c *call) (any, *apiError) {
	if err := c.params.allow("limit", "customer", "starting_after"); err != nil {
		return nil, err
	}
	var all []*paymentIntentObj
	for k, pi := range s.intents {
		if k.account == c.account && (!c.params.has("customer") || string(pi.Customer) == c.params.str("customer")) {
			all = append(all, pi)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq > all[j].seq })
	return page(all, func(pi *paymentIntentObj) string { return pi.ID }, c.params, "/v1/payment_intents")
}

func unexpectedState(pi *paymentIntentObj, action string, allowed []string) *apiError {
	return invalid("", "payment_intent_unexpected_state",
		"This PaymentIntent could not be %s because it has a status of %s. Only a PaymentIntent with one of the following statuses may be %s: %s.",
		action, pi.Status, action, strings.Join(allowed, ", "))
}

func (s *Server) updatePaymentIntent(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "currency", "customer", "capture_method", "payment_method", "description",
		"metadata", "receipt_email", "statement_descriptor", "statement_descriptor_suffix", "transfer_group"); err != nil {
		return nil, err
	}
	pi, err := s.intent(c, c.vars["id"], "id")
	if err != nil {
		return nil, err
	}
	amount, hasAmount, err := p.amount("amount")
	if err != nil {
		return nil, err
	}
	currency := pi.Currency
	if p.has("currency") {
		if currency, err = p.currency("currency"); err != nil {
			return nil, err
		}
	}
	captureMethod, err := p.oneOf("capture_method", pi.CaptureMethod, captureMethods...)
	if err != nil {
		return nil, err
	}
	if customer := p.str("customer"); customer != "" {
		if _, err := s.customer(c, customer, "customer"); err != nil {
			return nil, err
		}
	}
	moneyChange := hasAmount || p.has("currency") || p.has("capture_method") || p.has("payment_method") || p.has("customer")
	if moneyChange && !in(pi.Status, confirmable) {
		return nil, unexpectedState(pi, "updated", confirmable)
	}
	if hasAmount {
		pi.Amount = amount
	}
	pi.Currency = currency
	pi.CaptureMethod = captureMethod
	if p.has("customer") {
		pi.Customer = p.opt("customer")
	}
	if p.has("payment_method") {
		pi.PaymentMethod = p.opt("payment_method")
		if pi.PaymentMethod != "" && pi.Status == "requires_payment_method" {
			pi.Status = "requires_confirmation"
		}
	}
	for k, dst := range map[string]*nullable{"description": &pi.Description, "receipt_email": &pi.ReceiptEmail,
		"statement_descriptor": &pi.StatementDescriptor, "statement_descriptor_suffix": &pi.StatementDescriptorSuffix,
		"transfer_group": &pi.TransferGroup} {
		if p.has(k) {
			*dst = p.opt(k)
		}
	}
	pi.Metadata = p.metadata(pi.Metadata)
	return pi, nil
}

func (s *Server) confirmPaymentIntent(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("payment_method", "capture_method", "receipt_email", "return_url", "off_session"); err != nil {
		return nil, err
	}
	pi, err := s.intent(c, c.vars["id"], "id")
	if err != nil {
		return nil, err
	}
	captureMethod, err := p.oneOf("capture_method", pi.CaptureMethod, captureMethods...)
	if err != nil {
		return nil, err
	}
	if _, err := p.boolean("off_session", false); err != nil {
		return nil, err
	}
	if !in(pi.Status, confirmable) {
		return nil, unexpectedState(pi, "confirmed", confirmable)
	}
	pm := pi.PaymentMethod
	if p.has("payment_method") {
		pm = p.opt("payment_method")
	}
	if pm == "" {
		return nil, invalid("payment_method", "payment_intent_unexpected_state", "You cannot confirm this PaymentIntent because it's missing a payment method. Update the payment_method parameter and try again.")
	}
	pi.PaymentMethod = pm
	pi.CaptureMethod = captureMethod
	if p.has("receipt_email") {
		pi.ReceiptEmail = p.opt("receipt_email")
	}
	return s.confirm(c, pi)
}

func (s *Server) capturePaymentIntent(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount_to_capture", "statement_descriptor", "statement_descriptor_suffix", "metadata"); err != nil {
		return nil, err
	}
	pi, err := s.intent(c, c.vars["id"], "id")
	if err != nil {
		return nil, err
	}
	if pi.Status != "requires_capture" {
		return nil, unexpectedState(pi, "captured", []string{"requires_capture"})
	}
	amount, given, err := p.amount("amount_to_capture")
	if err != nil {
		return nil, err
	}
	if !given {
		amount = pi.AmountCapturable
	}
	if amount > pi.AmountCapturable {
		return nil, invalid("amount_to_capture", "amount_too_large", "The amount_to_capture (%d) must be less than or equal to the amount_capturable (%d).", amount, pi.AmountCapturable)
	}
	ch, ok := s.charges[key{c.account, string(pi.LatestCharge)}]
	if !ok {
		return nil, &apiError{status: 500, typ: "api_error", message: fmt.Sprintf("fakestripe: payment intent %s has no charge %q to capture", pi.ID, pi.LatestCharge)}
	}
	for k, dst := range map[string]*nullable{"statement_descriptor": &pi.StatementDescriptor, "statement_descriptor_suffix": &pi.StatementDescriptorSuffix} {
		if p.has(k) {
			*dst = p.opt(k)
		}
	}
	pi.Metadata = p.metadata(pi.Metadata)
	s.captureMoney(c, ch, amount, "payment_intent_capture")
	pi.AmountCapturable = 0
	pi.AmountReceived = amount
	pi.Status = "succeeded"
	return pi, nil
}

func (s *Server) incrementAuthorization(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "description", "metadata", "statement_descriptor", "application_fee_amount"); err != nil {
		return nil, err
	}
	pi, err := s.intent(c, c.vars["id"], "id")
	if err != nil {
		return nil, err
	}
	amount, err := p.requiredAmount("amount")
	if err != nil {
		return nil, err
	}
	fee, hasFee, err := p.amount("application_fee_amount")
	if err != nil {
		return nil, err
	}
	if pi.Status != "requires_capture" {
		return nil, unexpectedState(pi, "incremented", []string{"requires_capture"})
	}
	if amount < pi.Amount {
		return nil, invalid("amount", "", "The amount (%d) must be greater than or equal to the currently authorized amount (%d).", amount, pi.Amount)
	}
	ch, ok := s.charges[key{c.account, string(pi.LatestCharge)}]
	if !ok {
		return nil, &apiError{status: 500, typ: "api_error", message: fmt.Sprintf("fakestripe: payment intent %s has no charge %q", pi.ID, pi.LatestCharge)}
	}
	pi.Amount = amount
	pi.AmountCapturable = amount
	ch.Amount = amount
	if hasFee {
		pi.ApplicationFeeAmount = &fee
		ch.ApplicationFeeAmount = &fee
	}
	if p.has("description") {
		pi.Description = p.opt("description")
	}
	if p.has("statement_descriptor") {
		pi.StatementDescriptor = p.opt("statement_descriptor")
	}
	pi.Metadata = p.metadata(pi.Metadata)
	return pi, nil
}
