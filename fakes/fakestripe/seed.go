package fakestripe

import (
	"fmt"
	"regexp"
	"strings"
)

// The seed types describe state a test puts in place before it runs, and
// what the getters (Charge, PaymentIntent...) report afterwards. Amounts
// are in minor units of Currency; Currency is a three-letter code in any
// case (stored lower case). Account is the Stripe-Account the object lives
// in, "" for the platform: a request sees only its own account's objects.
//
// The Add methods panic on a seed that is not self-consistent, or whose ID
// is taken: a broken test setup, not a condition to handle.

// Charge is a charge.
type Charge struct {
	ID       string // "ch_..." or "py_..."
	Account  string
	Amount   int64
	Currency string
	Customer string // optional; must have been added first
	// Captured charges moved Amount (or AmountCaptured when it is set);
	// uncaptured ones are authorizations.
	Captured       bool
	AmountCaptured int64
	AmountRefunded int64
	PaymentIntent  string // optional; set by AddPaymentIntent for the charges it makes
}

// PaymentIntent is a payment intent.
type PaymentIntent struct {
	ID            string // "pi_..."
	Account       string
	Amount        int64
	Currency      string
	Customer      string // optional; must have been added first
	CaptureMethod string // automatic (default), automatic_async or manual
	// Status defaults to requires_payment_method. An intent in
	// requires_capture or succeeded gets a charge (LatestCharge, made up
	// when empty) authorized for Amount, captured for AmountReceived.
	Status           string
	AmountCapturable int64 // default Amount when Status is requires_capture
	AmountReceived   int64 // default Amount when Status is succeeded
	PaymentMethod    string
	LatestCharge     string
}

// Transfer is a transfer to a connected account.
type Transfer struct {
	ID             string // "tr_..."
	Account        string
	Amount         int64
	Currency       string
	Destination    string // "acct_..."
	AmountReversed int64
}

// Invoice is an invoice awaiting payment or paid.
type Invoice struct {
	ID              string // "in_..."
	Account         string
	Customer        string // must have been added first
	Currency        string
	AmountDue       int64
	AmountPaid      int64
	AmountRemaining int64  // reported by Invoice; AddInvoice derives it as AmountDue - AmountPaid
	Status          string // draft, open (default), paid, uncollectible or void
}

// ApplicationFee is a fee the platform took on a connected account's
// charge. It lives in the platform account.
type ApplicationFee struct {
	ID             string // "fee_..."
	FromAccount    string // the connected account it came from ("account" on the wire)
	Amount         int64
	Currency       string
	Charge         string // the charge it was taken on; need not exist here
	AmountRefunded int64
}

var seedID = regexp.MustCompile(`^[a-z]+_[A-Za-z0-9]+$`)

func seedPanic(what, format string, args ...any) {
	panic(fmt.Sprintf("fakestripe: %s: %s", what, fmt.Sprintf(format, args...)))
}

func checkSeed(what, id, prefix, account, currency string, amounts ...int64) {
	if !seedID.MatchString(id) || !strings.HasPrefix(id, prefix) {
		seedPanic(what, "ID %q must look like %s...", id, prefix)
	}
	if account != "" && !accountID.MatchString(account) {
		seedPanic(what, "account %q must look like acct_...", account)
	}
	if currency != "" && !currencyCode.MatchString(currency) {
		seedPanic(what, "currency %q is not a three-letter code", currency)
	}
	for _, a := range amounts {
		if a < 0 || a > maxAmount {
			seedPanic(what, "amount %d out of range", a)
		}
	}
}

// AddCustomer adds a customer to the platform account.
func (s *Server) AddCustomer(id string) { s.AddCustomerTo("", id) }

// AddCustomerTo adds a customer to a connected account ("" for the
// platform).
func (s *Server) AddCustomerTo(account, id string) {
	checkSeed("AddCustomer", id, "cus_", account, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{account, id}
	if _, ok := s.customers[k]; ok {
		seedPanic("AddCustomer", "%s exists", id)
	}
	s.customers[k] = s.newCustomer(id, s.now().Unix())
}

// AddCharge adds a charge.
func (s *Server) AddCharge(c Charge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addCharge(c)
}

func (s *Server) addCharge(c Charge) *chargeObj {
	if !strings.HasPrefix(c.ID, "py_") {
		checkSeed("AddCharge", c.ID, "ch_", c.Account, c.Currency, c.Amount, c.AmountCaptured, c.AmountRefunded)
	} else {
		checkSeed("AddCharge", c.ID, "py_", c.Account, c.Currency, c.Amount, c.AmountCaptured, c.AmountRefunded)
	}
	if c.Amount < 1 || c.Currency == "" {
		seedPanic("AddCharge", "%s needs a positive Amount and a Currency", c.ID)
	}
	captured := c.AmountCaptured
	if c.Captured && captured == 0 {
		captured = c.Amount
	}
	switch {
	case !c.Captured && c.AmountCaptured != 0:
		seedPanic("AddCharge", "%s: AmountCaptured on an uncaptured charge", c.ID)
	case captured > c.Amount:
		seedPanic("AddCharge", "%s: AmountCaptured %d > Amount %d", c.ID, captured, c.Amount)
	case c.Captured && c.AmountRefunded > captured:
		seedPanic("AddCharge", "%s: AmountRefunded %d > captured %d", c.ID, c.AmountRefunded, captured)
	case !c.Captured && c.AmountRefunded != 0 && c.AmountRefunded != c.Amount:
		seedPanic("AddCharge", "%s: an uncaptured charge is refunded in full or not at all", c.ID)
	}
	k := key{c.Account, c.ID}
	if _, ok := s.charges[k]; ok {
		seedPanic("AddCharge", "%s exists", c.ID)
	}
	if c.Customer != "" {
		if _, ok := s.customers[key{c.Account, c.Customer}]; !ok {
			seedPanic("AddCharge", "%s: no customer %s in account %q", c.ID, c.Customer, c.Account)
		}
	}
	ch := &chargeObj{
		ID: c.ID, Object: "charge", Amount: c.Amount, Currency: strings.ToLower(c.Currency),
		Customer: nullable(c.Customer), Created: s.now().Unix(), Metadata: map[string]string{},
		Paid: true, Status: "succeeded", PaymentIntent: nullable(c.PaymentIntent),
		Captured: c.Captured, AmountCaptured: captured, AmountRefunded: c.AmountRefunded,
		account: c.Account,
	}
	if c.Captured {
		ch.BalanceTransaction = nullable(s.newID("txn"))
		ch.Refunded = c.AmountRefunded == captured
	} else {
		ch.Refunded = c.AmountRefunded == c.Amount
	}
	s.charges[k] = ch
	return ch
}

// AddPaymentIntent adds a payment intent, and its charge when its status
// says one exists.
func (s *Server) AddPaymentIntent(p PaymentIntent) {
	checkSeed("AddPaymentIntent", p.ID, "pi_", p.Account, p.Currency, p.Amount, p.AmountCapturable, p.AmountReceived)
	if p.Amount < 1 || p.Currency == "" {
		seedPanic("AddPaymentIntent", "%s needs a positive Amount and a Currency", p.ID)
	}
	if p.CaptureMethod == "" {
		p.CaptureMethod = "automatic"
	}
	if !in(p.CaptureMethod, captureMethods) {
		seedPanic("AddPaymentIntent", "%s: capture method %q", p.ID, p.CaptureMethod)
	}
	if p.Status == "" {
		p.Status = "requires_payment_method"
	}
	switch p.Status {
	case "requires_payment_method", "requires_confirmation", "requires_action", "processing", "canceled":
		if p.AmountCapturable != 0 || p.AmountReceived != 0 {
			seedPanic("AddPaymentIntent", "%s: status %s holds no money", p.ID, p.Status)
		}
	case "requires_capture":
		if p.AmountCapturable == 0 {
			p.AmountCapturable = p.Amount
		}
		if p.AmountCapturable > p.Amount || p.AmountReceived != 0 {
			seedPanic("AddPaymentIntent", "%s: requires_capture with capturable %d received %d of %d", p.ID, p.AmountCapturable, p.AmountReceived, p.Amount)
		}
	case "succeeded":
		if p.AmountReceived == 0 {
			p.AmountReceived = p.Amount
		}
		if p.AmountReceived > p.Amount || p.AmountCapturable != 0 {
			seedPanic("AddPaymentIntent", "%s: succeeded with received %d capturable %d of %d", p.ID, p.AmountReceived, p.AmountCapturable, p.Amount)
		}
	default:
		seedPanic("AddPaymentIntent", "%s: status %q", p.ID, p.Status)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{p.Account, p.ID}
	if _, ok := s.intents[k]; ok {
		seedPanic("AddPaymentIntent", "%s exists", p.ID)
	}
	if p.Customer != "" {
		if _, ok := s.customers[key{p.Account, p.Customer}]; !ok {
			seedPanic("AddPaymentIntent", "%s: no customer %s in account %q", p.ID, p.Customer, p.Account)
		}
	}
	pi := s.newIntent(p.Account, p.ID, p.Amount, strings.ToLower(p.Currency), s.now().Unix())
	pi.Customer = nullable(p.Customer)
	pi.CaptureMethod = p.CaptureMethod
	pi.Status = p.Status
	pi.AmountCapturable = p.AmountCapturable
	pi.AmountReceived = p.AmountReceived
	pi.PaymentMethod = nullable(p.PaymentMethod)
	if p.Status == "requires_capture" || p.Status == "succeeded" {
		if pi.PaymentMethod == "" {
			pi.PaymentMethod = "pm_card_visa"
		}
		id := p.LatestCharge
		if id == "" {
			id = s.newID("ch")
		}
		s.addCharge(Charge{
			ID: id, Account: p.Account, Amount: p.Amount, Currency: p.Currency, Customer: p.Customer,
			Captured: p.Status == "succeeded", AmountCaptured: p.AmountReceived, PaymentIntent: p.ID,
		})
		pi.LatestCharge = nullable(id)
	} else if p.LatestCharge != "" {
		seedPanic("AddPaymentIntent", "%s: status %s has no charge", p.ID, p.Status)
	}
	s.intents[k] = pi
}

// AddTransfer adds a transfer.
func (s *Server) AddTransfer(t Transfer) {
	checkSeed("AddTransfer", t.ID, "tr_", t.Account, t.Currency, t.Amount, t.AmountReversed)
	if t.Amount < 1 || t.Currency == "" || !accountID.MatchString(t.Destination) || t.AmountReversed > t.Amount {
		seedPanic("AddTransfer", "%s needs a positive Amount, a Currency, an acct_ Destination and AmountReversed <= Amount", t.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{t.Account, t.ID}
	if _, ok := s.transfers[k]; ok {
		seedPanic("AddTransfer", "%s exists", t.ID)
	}
	tr := &transferObj{
		ID: t.ID, Object: "transfer", Amount: t.Amount, AmountReversed: t.AmountReversed,
		BalanceTransaction: nullable(s.newID("txn")), Created: s.now().Unix(),
		Currency: strings.ToLower(t.Currency), Destination: t.Destination, Metadata: map[string]string{},
		Reversed: t.AmountReversed == t.Amount, SourceType: "card", account: t.Account,
	}
	tr.render()
	s.transfers[k] = tr
}

// AddInvoice adds an invoice.
func (s *Server) AddInvoice(i Invoice) {
	checkSeed("AddInvoice", i.ID, "in_", i.Account, i.Currency, i.AmountDue, i.AmountPaid)
	if i.Status == "" {
		i.Status = "open"
	}
	if !in(i.Status, []string{"draft", "open", "paid", "uncollectible", "void"}) {
		seedPanic("AddInvoice", "%s: status %q", i.ID, i.Status)
	}
	if i.Currency == "" || i.AmountPaid > i.AmountDue || (i.Status == "paid") != (i.AmountPaid == i.AmountDue) {
		seedPanic("AddInvoice", "%s needs a Currency, AmountPaid <= AmountDue, and status paid exactly when AmountPaid == AmountDue", i.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{i.Account, i.ID}
	if _, ok := s.invoices[k]; ok {
		seedPanic("AddInvoice", "%s exists", i.ID)
	}
	if _, ok := s.customers[key{i.Account, i.Customer}]; !ok {
		seedPanic("AddInvoice", "%s: no customer %q in account %q", i.ID, i.Customer, i.Account)
	}
	s.invoices[k] = &invoiceObj{
		ID: i.ID, Object: "invoice", AmountDue: i.AmountDue, AmountPaid: i.AmountPaid,
		AmountRemaining: i.AmountDue - i.AmountPaid, CollectionMethod: "charge_automatically",
		Created: s.now().Unix(), Currency: strings.ToLower(i.Currency), Customer: nullable(i.Customer),
		Lines: newList("/v1/invoices/"+i.ID+"/lines", nil), Metadata: map[string]string{},
		Paid: i.Status == "paid", Status: i.Status, Subtotal: i.AmountDue, Total: i.AmountDue,
		account: i.Account,
	}
}

// AddApplicationFee adds an application fee to the platform account.
func (s *Server) AddApplicationFee(f ApplicationFee) {
	checkSeed("AddApplicationFee", f.ID, "fee_", f.FromAccount, f.Currency, f.Amount, f.AmountRefunded)
	if f.Amount < 1 || f.Currency == "" || f.AmountRefunded > f.Amount {
		seedPanic("AddApplicationFee", "%s needs a positive Amount, a Currency and AmountRefunded <= Amount", f.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{"", f.ID}
	if _, ok := s.fees[k]; ok {
		seedPanic("AddApplicationFee", "%s exists", f.ID)
	}
	fee := &applicationFeeObj{
		ID: f.ID, Object: "application_fee", Account: nullable(f.FromAccount), Amount: f.Amount,
		AmountRefunded: f.AmountRefunded, BalanceTransaction: nullable(s.newID("txn")),
		Charge: nullable(f.Charge), Created: s.now().Unix(), Currency: strings.ToLower(f.Currency),
		Refunded: f.AmountRefunded == f.Amount,
	}
	fee.render()
	s.fees[k] = fee
}

// Charge returns the charge with this ID in account ("" for the platform)
// as it stands now.
func (s *Server) Charge(account, id string) (Charge, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.charges[key{account, id}]
	if !ok {
		return Charge{}, false
	}
	return Charge{
		ID: ch.ID, Account: ch.account, Amount: ch.Amount, Currency: ch.Currency,
		Customer: string(ch.Customer), Captured: ch.Captured, AmountCaptured: ch.AmountCaptured,
		AmountRefunded: ch.AmountRefunded, PaymentIntent: string(ch.PaymentIntent),
	}, true
}

// PaymentIntent returns the payment intent with this ID in account as it
// stands now.
func (s *Server) PaymentIntent(account, id string) (PaymentIntent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi, ok := s.intents[key{account, id}]
	if !ok {
		return PaymentIntent{}, false
	}
	return PaymentIntent{
		ID: pi.ID, Account: pi.account, Amount: pi.Amount, Currency: pi.Currency,
		Customer: string(pi.Customer), CaptureMethod: pi.CaptureMethod, Status: pi.Status,
		AmountCapturable: pi.AmountCapturable, AmountReceived: pi.AmountReceived,
		PaymentMethod: string(pi.PaymentMethod), LatestCharge: string(pi.LatestCharge),
	}, true
}

// Transfer returns the transfer with this ID in account as it stands now.
func (s *Server) Transfer(account, id string) (Transfer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tr, ok := s.transfers[key{account, id}]
	if !ok {
		return Transfer{}, false
	}
	return Transfer{
		ID: tr.ID, Account: tr.account, Amount: tr.Amount, Currency: tr.Currency,
		Destination: tr.Destination, AmountReversed: tr.AmountReversed,
	}, true
}

// Invoice returns the invoice with this ID in account as it stands now.
func (s *Server) Invoice(account, id string) (Invoice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[key{account, id}]
	if !ok {
		return Invoice{}, false
	}
	return Invoice{
		ID: inv.ID, Account: inv.account, Customer: string(inv.Customer), Currency: inv.Currency,
		AmountDue: inv.AmountDue, AmountPaid: inv.AmountPaid, AmountRemaining: inv.AmountRemaining,
		Status: inv.Status,
	}, true
}

// ApplicationFee returns the application fee with this ID as it stands now.
func (s *Server) ApplicationFee(id string) (ApplicationFee, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fee, ok := s.fees[key{"", id}]
	if !ok {
		return ApplicationFee{}, false
	}
	return ApplicationFee{
		ID: fee.ID, FromAccount: string(fee.Account), Amount: fee.Amount, Currency: fee.Currency,
		Charge: string(fee.Charge), AmountRefunded: fee.AmountRefunded,
	}, true
}
