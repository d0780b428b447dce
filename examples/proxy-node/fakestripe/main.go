// Command fakestripe serves the stateful fake Stripe of fakes/fakestripe on
// loopback, seeded with charges for the proxy-node example to refund:
//
//	go run ./examples/proxy-node/fakestripe -addr 127.0.0.1:12111
//
// It stands in for Stripe: refunds move money in its ledger, which it
// prints when it is stopped (Ctrl-C).
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/keybrake/keybrake/fakes/fakestripe"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:12111", "where to listen (loopback)")
	charges := flag.Int("charges", 100, "charges of 50.00 USD to seed, ch_1 ... ch_N")
	flag.Parse()
	fs := fakestripe.New()
	for i := 1; i <= *charges; i++ {
		fs.AddCharge(fakestripe.Charge{ID: fmt.Sprintf("ch_%d", i), Amount: 5000, Currency: "usd", Captured: true})
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Fatalf("fakestripe listens on loopback only, not %s", ip)
	}
	fmt.Printf("fake Stripe on http://%s\n", l.Addr())
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
		<-stop
		fs.Close()
		l.Close()
	}()
	if err := http.Serve(l, fs); err != nil && !isClosed(err) {
		log.Fatal(err)
	}
	fmt.Printf("fake Stripe: %d requests served\n", fs.Requests())
}

func isClosed(err error) bool {
	return errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed)
}
