package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/keybrake/keybrake/notify"
	"github.com/keybrake/keybrake/notify/slack"
)

// A Webhook posts one JSON message per alert; here an httptest server
// stands in for hooks.slack.com and prints the first line of what it got.
func ExampleWebhook() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct{ Text string }
		json.NewDecoder(r.Body).Decode(&msg)
		fmt.Println(r.Header.Get("Content-Type"))
		fmt.Println(strings.SplitN(msg.Text, "\n", 2)[0])
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	hook := &slack.Webhook{URL: srv.URL + "/services/T000/B000/XXXX"}
	t0 := time.Date(2026, 3, 1, 3, 12, 4, 0, time.UTC)
	err := hook.Notify(context.Background(), notify.Alert{
		Kind: "capped", Agent: "refund-bot", Vendor: "stripe",
		Rule: "agents.refund-bot.stripe.daily_cap", Code: "keybrake_daily_cap",
		Reason: "daily cap 500.00 USD reached",
		Count:  1, Total: 1, First: t0, Last: t0, Since: t0,
	})
	fmt.Println(err)
	// Output:
	// application/json
	// :rotating_light: *Keybrake capped a stripe call by agent `refund-bot`* at 2026-03-01 03:12:04 UTC.
	// <nil>
}
