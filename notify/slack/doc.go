// Package slack delivers Keybrake alerts to a Slack incoming webhook.
//
//	d := notify.NewDispatcher(&slack.Webhook{URL: os.Getenv("KEYBRAKE_SLACK_WEBHOOK")}, notify.Options{})
//	defer d.Close(ctx)
//
// Each alert is one message, {"text": ...} in Slack's mrkdwn, written for
// a person woken at 3 a.m.: what Keybrake refused, of which agent and
// vendor, by which rule and code, how many times since when, whether it is
// still going, and the next step as commands to paste
// ("keybrake audit --agent refund-bot --since 2026-03-01T03:12:04Z",
// "keybrake revoke refund-bot"). Text returns the same words for other
// channels.
//
// Everything taken from a record is escaped (&, <, >), so an agent name or
// a reason cannot mention @channel or forge a link, and names are bounded
// in length. A command is only shown with a name that needs no shell
// quoting; otherwise it says AGENT. An alert carries no credential, and
// the webhook URL, which is one, never appears in an error.
//
// Slack answers 200 "ok"; any other answer is a *StatusError with the
// status and the start of the body ("no_service", "invalid_token",
// "rate_limited"). Redirects are not followed. Retrying is the
// Dispatcher's business, not the Webhook's.
package slack
