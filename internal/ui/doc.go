// Package ui serves the incident page: a local web page that shows what
// the agents did, when, and what held them, and lets an operator stop
// them. `keybrake ui` serves it on its own listener; `keybrake serve`
// serves it on its admin listener.
//
// The incident it is built for is thousands of calls in ninety seconds.
// The page answers with a timeline first: calls per second by decision
// (allowed, capped, blocked, scoped, revoked, error) and money moved, with
// the first refused call and every policy and kill-switch event marked;
// beside it, where every cap stands now, who is stopped, and the records
// of any window, each opening its full redacted record.
//
// # What it reads
//
// Everything comes from an admin.Source: the running Brake's admin socket
// or the database itself (a bbolt file read-only, or a fleet's PostgreSQL
// store), as the CLI reads them. The page changes nothing unless Options.Act
// is set (`keybrake ui --allow-actions`), and then only through it.
//
// # Requests
//
//	GET  /                 the page (with ?token=: sets the cookie, then redirects to /)
//	GET  /static/...       its script and style, embedded: nothing from a CDN
//	GET  /api/session      {"actions", "csrf", "source", "database"}
//	GET  /api/now          the admin.Status
//	GET  /api/timeline     ?since&until[&agent&vendor]: buckets by decision, marks
//	GET  /api/records      ?since&until[&agent&vendor&decision&customer&limit]
//	GET  /api/records/{id} one record
//	GET  /api/events       server-sent events: "change" when new records were written
//	POST /api/act          {"verb", "agent"}: halt, resume, revoke or restore
//
// # Security
//
// Every request needs the token: the link keybrake ui prints carries it
// once (keybrake serve keeps it in a 0600 file instead of its log), the page then holds it in a cookie (HttpOnly, SameSite=Strict,
// named for this server so that two pages on one host do not clobber each
// other). A program may send it as "Authorization: Bearer TOKEN" instead.
// Anything else is 401 with no data. POST /api/act also needs the header
// X-Keybrake-CSRF with the session's CSRF token (an HMAC of the token, so
// a page of another origin that cannot read /api/session cannot forge
// it), a JSON body, and an Origin, when the browser sends one, naming
// this server's host. Every response carries a strict
// Content-Security-Policy (scripts and styles from this server only, no
// inline code, no framing), nosniff, no-referrer and no-store. Records are
// shown as the store holds them: redacted before they were written, so
// the page has no secret or card number to show; its script builds the
// page with textContent, never parsing a record as HTML.
package ui
