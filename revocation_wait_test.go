package keybrake_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/fakes/fakestripe"
	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/bolt"
)

// The tests in this file revoke an agent while one of its calls waits
// inside Keybrake, on a lookup that fake Stripe never answers or on the
// store, and check that the call is refused and never sent.

// observed is the transport below Keybrake: it tells the test when a
// request of a kind starts, and counts the writes that leave.
type observed struct {
	lookup chan string  // GET paths, as they start
	writes atomic.Int64 // POST requests sent
}

func (o *observed) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		select {
		case o.lookup <- req.URL.Path:
		default:
		}
	} else {
		o.writes.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// refundBot is stripe-go for refund-bot over Keybrake over below, with
// retries off so that one call is one attempt.
func refundBot(kb *keybrake.Brake, below http.RoundTripper) *client.API {
	hc := &http.Client{Transport: kb.Transport("refund-bot", keybrake.Stripe, below)}
	b := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		HTTPClient: hc, MaxNetworkRetries: stripego.Int64(0),
	})
	return client.New(testenv.StripeMockKey, &stripego.Backends{API: b, Connect: b, Uploads: b})
}

func TestRevocationStopsACallWaitingOnItsLookup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(t *testing.T, kb *keybrake.Brake, policyFile string)
		code   string
	}{
		{"Revoke", func(t *testing.T, kb *keybrake.Brake, _ string) { kb.Revoke("refund-bot") }, "keybrake_revoked"},
		{"kill switch file", func(t *testing.T, _ *keybrake.Brake, policyFile string) {
			if err := os.WriteFile(policyFile+".halt", []byte("refund-bot\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "keybrake_revoked"},
		{"policy file", func(t *testing.T, _ *keybrake.Brake, policyFile string) {
			text := strings.Replace(capPolicy, "  refund-bot:\n", "  refund-bot:\n    revoked: true\n", 1)
			writeFile(t, policyFile, text)
		}, "keybrake_revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, url := fakestripe.Start(t)
			fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 3000, Currency: "usd", Captured: true})
			fs.On("GET", "/v1/charges/").HangNext(1) // the lookup never answers
			policyFile := writePolicy(t, capPolicy)
			kb := openBrake(t, "", keybrake.Options{PolicyFile: policyFile, Endpoints: fakeEndpoint(url)})
			below := &observed{lookup: make(chan string, 1)}
			bot := refundBot(kb, below)

			errc := make(chan error, 1)
			go func() {
				_, err := bot.Refunds.New(refund("ch_1", 0)) // no amount: Keybrake looks the charge up
				errc <- err
			}()
			select {
			case p := <-below.lookup:
				if p != "/v1/charges/ch_1" {
					t.Fatalf("lookup of %s", p)
				}
			case err := <-errc:
				t.Fatalf("the refund ended before its lookup: %v", err)
			case <-time.After(liveness):
				t.Fatal("no lookup")
			}

			tc.revoke(t, kb, policyFile)
			var err error
			select {
			case err = <-errc:
			case <-time.After(liveness):
				t.Fatal("the call waiting on its lookup was not stopped by the revocation")
			}
			stripeErr(t, err, 401)
			if d, ok := keybrake.AsDenial(err); !ok || d.Decision != keybrake.Revoked || d.Code != tc.code {
				t.Fatalf("denial %+v", d)
			}
			if n := below.writes.Load(); n != 0 || fs.Refunded("ch_1") != 0 {
				t.Fatalf("the refund was sent (%d writes, %d refunded)", n, fs.Refunded("ch_1"))
			}
			recs := dump(t, kb, audit.Query{Agent: "refund-bot"})
			if len(recs) != 1 || recs[0].Decision != keybrake.Revoked || recs[0].Lookup != "GET /v1/charges/ch_1" {
				t.Fatalf("records %+v", recs)
			}
		})
	}
}

// holdingStore holds every Reserve until release is closed, after telling
// the test it started: the store stands still, as a slow disk or a busy
// PostgreSQL would make it.
type holdingStore struct {
	store.Store
	started chan struct{}
	release chan struct{}
}

func (s *holdingStore) Reserve(ctx context.Context, r *store.Reservation) (store.Admission, error) {
	select {
	case s.started <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return store.Admission{}, ctx.Err()
	}
	return s.Store.Reserve(ctx, r)
}

func TestRevocationStopsACallWaitingOnTheStore(t *testing.T) {
	fs, url := fakestripe.Start(t)
	fs.AddCharge(fakestripe.Charge{ID: "ch_1", Amount: 3000, Currency: "usd", Captured: true})
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "keybrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := &holdingStore{Store: bs, started: make(chan struct{}, 1), release: make(chan struct{})}
	kb := openBrake(t, capPolicy, keybrake.Options{Store: hs, Endpoints: fakeEndpoint(url)})
	below := &observed{lookup: make(chan string, 8)}
	bot := refundBot(kb, below)

	errc := make(chan error, 1)
	go func() {
		_, err := bot.Refunds.New(refund("ch_1", 1000))
		errc <- err
	}()
	select {
	case <-hs.started:
	case err := <-errc:
		t.Fatalf("the refund ended before its reservation: %v", err)
	case <-time.After(liveness):
		t.Fatal("no reservation")
	}
	kb.Revoke("refund-bot")
	close(hs.release)
	select {
	case err = <-errc:
	case <-time.After(liveness):
		t.Fatal("the call did not end")
	}
	stripeErr(t, err, 401)
	if n := below.writes.Load(); n != 0 || fs.Refunded("ch_1") != 0 {
		t.Fatalf("the refund was sent (%d writes)", n)
	}
	// The reservation was committed; its record became the refusal and
	// its money was released: one record for the call, nothing counted.
	recs := dump(t, kb, audit.Query{Agent: "refund-bot"})
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %+v", len(recs), recs)
	}
	if r := recs[0]; r.Decision != keybrake.Revoked || r.Code != "keybrake_revoked" || r.Rule != "agents.refund-bot.revoked" ||
		r.Outcome != audit.Released || r.Status != 401 || !r.Settled.IsZero() {
		t.Fatalf("record %+v", r)
	}
}
