package fakestripe

import "fmt"

// --- refunds

func (s *Server) createRefund(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("charge", "payment_intent", "amount", "reason", "metadata"); err != nil {
		return nil, err
	}
	amount, given, err := p.amount("amount")
	if err != nil {
		return nil, err
	}
	reason, err := p.oneOf("reason", "", "duplicate", "fraudulent", "requested_by_customer")
	if err != nil {
		return nil, err
	}
	chargeID, intentID := p.str("charge"), p.str("payment_intent")
	var ch *chargeObj
	switch {
	case chargeID != "" && intentID != "":
		return nil, invalid("payment_intent", "", "fakestripe: pass either charge or payment_intent, not both.")
	case chargeID != "":
		if ch, err = s.charge(c, chargeID, "charge"); err != nil {
			return nil, err
		}
	case intentID != "":
		pi, err := s.intent(c, intentID, "payment_intent")
		if err != nil {
			return nil, err
		}
		if pi.Status != "succeeded" {
			return nil, invalid("payment_intent", "", "This PaymentIntent (%s) does not have a successful charge to refund.", pi.ID)
		}
		if ch, err = s.charge(c, string(pi.LatestCharge), "payment_intent"); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("", "parameter_missing", "One of the following params should be provided for this request: payment_intent or charge.")
	}

	switch {
	case ch.Status == "failed":
		return nil, invalid("charge", "charge_not_refundable", "Charge %s has failed; there is nothing to refund.", ch.ID)
	case ch.Refunded || (ch.Captured && ch.refundable() == 0):
		return nil, invalid("charge", "charge_already_refunded", "Charge %s has already been refunded.", ch.ID)
	case !ch.Captured && given && amount != ch.Amount:
		return nil, invalid("amount", "", "You cannot partially refund an uncaptured charge. Instead, capture the charge for an amount less than the original amount.")
	case ch.Captured && given && amount > ch.refundable():
		return nil, invalid("amount", "charge_already_refunded", "Refund amount (%d) is greater than unrefunded amount on charge (%d).", amount, ch.refundable())
	}

	re := &refundObj{
		ID: s.newID("re"), Object: "refund", Charge: nullable(ch.ID), Created: c.now,
		Currency: ch.Currency, Metadata: p.metadata(nil), PaymentIntent: ch.PaymentIntent,
		Reason: nullable(reason), Status: "succeeded", account: c.account,
	}
	s.refunds[key{c.account, re.ID}] = re
	if !ch.Captured {
		// Refunding an uncaptured charge releases the authorization:
		// Stripe records the whole amount as refunded, no money moves.
		re.Amount = ch.Amount
		ch.AmountRefunded = ch.Amount
		ch.Refunded = true
		if pi, ok := s.intents[key{c.account, string(ch.PaymentIntent)}]; ok {
			pi.Status, pi.AmountCapturable = "canceled", 0
			pi.CanceledAt = &c.now
		}
		return re, nil
	}
	if !given {
		amount = ch.refundable()
	}
	re.Amount = amount
	re.BalanceTransaction = nullable(s.newID("txn"))
	ch.AmountRefunded += amount
	ch.Refunded = ch.AmountRefunded == ch.AmountCaptured
	s.move(c, "refund", re.ID, amount, ch.Currency)
	return re, nil
}

func (s *Server) getRefund(c *call) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	re, ok := s.refunds[key{c.account, c.vars["id"]}]
	if !ok {
		return nil, noSuch("refund", c.vars["id"], "id")
	}
	return re, nil
}

// --- transfers

func (s *Server) transfer(c *call, id string) (*transferObj, *apiError) {
	tr, ok := s.transfers[key{c.account, id}]
	if !ok {
		return nil, noSuch("transfer", id, "id")
	}
	tr.render()
	return tr, nil
}

func (tr *transferObj) render() {
	data := make([]any, 0, len(tr.reversals))
	for i := len(tr.reversals) - 1; i >= 0; i-- {
		data = append(data, tr.reversals[i])
	}
	tr.Reversals = newList("/v1/transfers/"+tr.ID+"/reversals", data)
}

func (s *Server) createTransfer(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "currency", "destination", "description", "metadata", "transfer_group"); err != nil {
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
	dest, err := p.required("destination")
	if err != nil {
		return nil, err
	}
	if !accountID.MatchString(dest) {
		return nil, noSuch("destination", dest, "destination")
	}
	tr := &transferObj{
		ID: s.newID("tr"), Object: "transfer", Amount: amount, Currency: currency,
		BalanceTransaction: nullable(s.newID("txn")), Created: c.now,
		Description: p.opt("description"), Destination: dest, Metadata: p.metadata(nil),
		SourceType: "card", TransferGroup: p.opt("transfer_group"), account: c.account,
	}
	s.transfers[key{c.account, tr.ID}] = tr
	s.move(c, "transfer", tr.ID, amount, currency)
	tr.render()
	return tr, nil
}

func (s *Server) getTransfer(c *call) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	return s.transfer(c, c.vars["id"])
}

func (s *Server) reverseTransfer(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "description", "metadata"); err != nil {
		return nil, err
	}
	tr, err := s.transfer(c, c.vars["id"])
	if err != nil {
		return nil, err
	}
	amount, err := takeBack(p, tr.Amount-tr.AmountReversed,
		fmt.Sprintf("Transfer %s has already been fully reversed.", tr.ID),
		"Reversal amount (%d) is greater than the amount left to reverse on transfer (%d).")
	if err != nil {
		return nil, err
	}
	rv := &reversalObj{
		ID: s.newID("trr"), Object: "transfer_reversal", Amount: amount,
		BalanceTransaction: nullable(s.newID("txn")), Created: c.now, Currency: tr.Currency,
		Metadata: p.metadata(nil), Transfer: tr.ID,
	}
	tr.reversals = append(tr.reversals, rv)
	tr.AmountReversed += amount
	tr.Reversed = tr.AmountReversed == tr.Amount
	tr.render()
	s.move(c, "transfer_reversal", rv.ID, amount, tr.Currency)
	return rv, nil
}

// --- payouts and top-ups

func (s *Server) createPayout(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "currency", "description", "metadata", "method", "source_type", "statement_descriptor"); err != nil {
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
	method, err := p.oneOf("method", "standard", "standard", "instant")
	if err != nil {
		return nil, err
	}
	sourceType, err := p.oneOf("source_type", "card", "bank_account", "card", "fpx")
	if err != nil {
		return nil, err
	}
	automatic := false
	po := &payoutObj{
		ID: s.newID("po"), Object: "payout", Amount: amount, ArrivalDate: c.now + 2*86400,
		Automatic: &automatic, BalanceTransaction: nullable(s.newID("txn")), Created: c.now,
		Currency: currency, Description: p.opt("description"), Metadata: p.metadata(nil),
		Method: method, SourceType: sourceType, StatementDescriptor: p.opt("statement_descriptor"),
		Status: "pending", Type: "bank_account", account: c.account,
	}
	s.payouts[key{c.account, po.ID}] = po
	s.move(c, "payout", po.ID, amount, currency)
	return po, nil
}

func (s *Server) createTopup(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "currency", "description", "metadata", "source", "statement_descriptor", "transfer_group"); err != nil {
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
	tu := &payoutObj{
		ID: s.newID("tu"), Object: "topup", Amount: amount,
		BalanceTransaction: nullable(s.newID("txn")), Created: c.now, Currency: currency,
		Description: p.opt("description"), ExpectedAvailabilityDate: c.now + 5*86400,
		Metadata: p.metadata(nil), StatementDescriptor: p.opt("statement_descriptor"),
		Status: "pending", TransferGroup: p.opt("transfer_group"), account: c.account,
	}
	s.payouts[key{c.account, tu.ID}] = tu
	s.move(c, "topup", tu.ID, amount, currency)
	return tu, nil
}

func (s *Server) getPayoutLike(c *call, object string) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	po, ok := s.payouts[key{c.account, c.vars["id"]}]
	if !ok || po.Object != object {
		return nil, noSuch(object, c.vars["id"], "id")
	}
	return po, nil
}

func (s *Server) getPayout(c *call) (any, *apiError) { return s.getPayoutLike(c, "payout") }
func (s *Server) getTopup(c *call) (any, *apiError)  { return s.getPayoutLike(c, "topup") }

// --- invoices

func (s *Server) invoice(c *call, id string) (*invoiceObj, *apiError) {
	in, ok := s.invoices[key{c.account, id}]
	if !ok {
		return nil, noSuch("invoice", id, "id")
	}
	return in, nil
}

func (s *Server) getInvoice(c *call) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	return s.invoice(c, c.vars["id"])
}

func (s *Server) payInvoice(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("paid_out_of_band", "payment_method", "source", "off_session"); err != nil {
		return nil, err
	}
	inv, err := s.invoice(c, c.vars["id"])
	if err != nil {
		return nil, err
	}
	outOfBand, err := p.boolean("paid_out_of_band", false)
	if err != nil {
		return nil, err
	}
	if _, err := p.boolean("off_session", false); err != nil {
		return nil, err
	}
	switch inv.Status {
	case "paid":
		return nil, invalid("", "", "Invoice is already paid")
	case "void":
		return nil, invalid("", "", "You cannot pay a void invoice.")
	}
	inv.Status = "open" // paying a draft finalizes it first
	if outOfBand {
		inv.PaidOutOfBand = true
		inv.AmountPaid += inv.AmountRemaining
		inv.AmountRemaining = 0
		inv.Paid, inv.Status = true, "paid"
		return inv, nil
	}
	if inv.AmountRemaining == 0 {
		inv.Paid, inv.Status = true, "paid"
		return inv, nil
	}
	pm := p.str("payment_method")
	if pm == "" {
		pm = p.str("source")
	}
	ch := s.newCharge(c, inv.AmountRemaining, inv.Currency, string(inv.Customer))
	ch.Invoice = nullable(inv.ID)
	ch.PaymentMethod = nullable(pm)
	s.charges[key{c.account, ch.ID}] = ch
	inv.Attempted = true
	inv.AttemptCount++
	inv.Charge = nullable(ch.ID)
	if code, declined := declines[pm]; declined {
		ch.Paid, ch.Status = false, "failed"
		ch.FailureCode, ch.FailureMessage = "card_declined", nullable(declineMessage(code))
		return nil, cardDeclined(code, ch.ID)
	}
	s.captureMoney(c, ch, inv.AmountRemaining, "invoice_payment")
	inv.AmountPaid += inv.AmountRemaining
	inv.AmountRemaining = 0
	inv.Paid, inv.Status = true, "paid"
	return inv, nil
}

// --- application fees

func (s *Server) createFee(c *call, ch *chargeObj, amount int64) {
	// The fee is the platform's: it lives in the platform account and
	// names the connected account it came from.
	fee := &applicationFeeObj{
		ID: s.newID("fee"), Object: "application_fee", Account: nullable(c.account), Amount: amount,
		BalanceTransaction: nullable(s.newID("txn")), Charge: nullable(ch.ID), Created: c.now,
		Currency: ch.Currency,
	}
	fee.render()
	s.fees[key{"", fee.ID}] = fee
	ch.ApplicationFee = nullable(fee.ID)
}

func (fee *applicationFeeObj) render() {
	data := make([]any, 0, len(fee.refunds))
	for i := len(fee.refunds) - 1; i >= 0; i-- {
		data = append(data, fee.refunds[i])
	}
	fee.Refunds = newList("/v1/application_fees/"+fee.ID+"/refunds", data)
}

func (s *Server) fee(c *call, id string) (*applicationFeeObj, *apiError) {
	fee, ok := s.fees[key{c.account, id}]
	if !ok {
		return nil, noSuch("application fee", id, "id")
	}
	fee.render()
	return fee, nil
}

func (s *Server) getApplicationFee(c *call) (any, *apiError) {
	if err := c.params.allow(); err != nil {
		return nil, err
	}
	return s.fee(c, c.vars["id"])
}

func (s *Server) refundApplicationFee(c *call) (any, *apiError) {
	p := c.params
	if err := p.allow("amount", "metadata"); err != nil {
		return nil, err
	}
	fee, err := s.fee(c, c.vars["id"])
	if err != nil {
		return nil, err
	}
	amount, err := takeBack(p, fee.Amount-fee.AmountRefunded,
		fmt.Sprintf("Application fee %s has already been refunded.", fee.ID),
		"Refund amount (%d) is greater than the amount left to refund on the application fee (%d).")
	if err != nil {
		return nil, err
	}
	fr := &feeRefundObj{
		ID: s.newID("fr"), Object: "fee_refund", Amount: amount,
		BalanceTransaction: nullable(s.newID("txn")), Created: c.now, Currency: fee.Currency,
		Fee: fee.ID, Metadata: p.metadata(nil),
	}
	fee.refunds = append(fee.refunds, fr)
	fee.AmountRefunded += amount
	fee.Refunded = fee.AmountRefunded == fee.Amount
	fee.render()
	s.move(c, "application_fee_refund", fr.ID, amount, fee.Currency)
	return fr, nil
}

// takeBack reads the optional amount of a reversal or refund of what is
// left: all of it when no amount is given. done is Stripe's message when
// nothing is left; tooMuch its message, formatted with the amount asked
// and what is left, when the amount is more.
func takeBack(p params, left int64, done, tooMuch string) (int64, *apiError) {
	amount, given, err := p.amount("amount")
	switch {
	case err != nil:
		return 0, err
	case left == 0:
		return 0, invalid("", "", "%s", done)
	case !given:
		return left, nil
	case amount > left:
		return 0, invalid("amount", "", tooMuch, amount, left)
	}
	return amount, nil
}
