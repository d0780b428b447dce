package fakestripe

import (
	"github.com/keybrake/keybrake/internal/pattern"
)

// endpoint is one route: a handler reads and changes state with s.mu held
// and returns the object to answer, or an error.
type endpoint struct {
	method  string
	path    pattern.Pattern
	handler func(s *Server, c *call) (any, *apiError)
}

// routes is the deliberately small subset of Stripe's API fakestripe
// models. Anything else is answered 404 as Stripe answers an unknown URL.
var routes = []endpoint{
	{"GET", pattern.MustCompile("/v1/customers"), (*Server).listCustomers},
	{"POST", pattern.MustCompile("/v1/customers"), (*Server).createCustomer},
	{"GET", pattern.MustCompile("/v1/customers/{id}"), (*Server).getCustomer},
	{"POST", pattern.MustCompile("/v1/customers/{id}"), (*Server).updateCustomer},

	{"POST", pattern.MustCompile("/v1/charges"), (*Server).createCharge},
	{"GET", pattern.MustCompile("/v1/charges/{id}"), (*Server).getCharge},
	{"POST", pattern.MustCompile("/v1/charges/{id}/capture"), (*Server).captureCharge},

	{"GET", pattern.MustCompile("/v1/payment_intents"), (*Server).listPaymentIntents},
	{"POST", pattern.MustCompile("/v1/payment_intents"), (*Server).createPaymentIntent},
	{"GET", pattern.MustCompile("/v1/payment_intents/{id}"), (*Server).getPaymentIntent},
	{"POST", pattern.MustCompile("/v1/payment_intents/{id}"), (*Server).updatePaymentIntent},
	{"POST", pattern.MustCompile("/v1/payment_intents/{id}/confirm"), (*Server).confirmPaymentIntent},
	{"POST", pattern.MustCompile("/v1/payment_intents/{id}/capture"), (*Server).capturePaymentIntent},
	{"POST", pattern.MustCompile("/v1/payment_intents/{id}/increment_authorization"), (*Server).incrementAuthorization},

	{"POST", pattern.MustCompile("/v1/refunds"), (*Server).createRefund},
	{"GET", pattern.MustCompile("/v1/refunds/{id}"), (*Server).getRefund},

	{"POST", pattern.MustCompile("/v1/transfers"), (*Server).createTransfer},
	{"GET", pattern.MustCompile("/v1/transfers/{id}"), (*Server).getTransfer},
	{"POST", pattern.MustCompile("/v1/transfers/{id}/reversals"), (*Server).reverseTransfer},

	{"POST", pattern.MustCompile("/v1/payouts"), (*Server).createPayout},
	{"GET", pattern.MustCompile("/v1/payouts/{id}"), (*Server).getPayout},
	{"POST", pattern.MustCompile("/v1/topups"), (*Server).createTopup},
	{"GET", pattern.MustCompile("/v1/topups/{id}"), (*Server).getTopup},

	{"GET", pattern.MustCompile("/v1/invoices/{id}"), (*Server).getInvoice},
	{"POST", pattern.MustCompile("/v1/invoices/{id}/pay"), (*Server).payInvoice},

	{"GET", pattern.MustCompile("/v1/application_fees/{id}"), (*Server).getApplicationFee},
	{"POST", pattern.MustCompile("/v1/application_fees/{id}/refunds"), (*Server).refundApplicationFee},
}

// route finds the endpoint for a request. The path is matched escaped, so
// "/v1/%63harges" or "/v1/charges/../refunds" match nothing, and a
// placeholder never spans "/".
func route(method, escapedPath string) (*endpoint, map[string]string) {
	for i := range routes {
		if routes[i].method != method {
			continue
		}
		if vars, ok := routes[i].path.Match(escapedPath); ok {
			return &routes[i], vars
		}
	}
	return nil, nil
}
