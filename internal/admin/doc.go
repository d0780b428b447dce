// Package admin lets an operator read a live Keybrake from a terminal: what
// the agent did in the last minutes, how much money moved today against
// which cap, whether it is stopped, and whether the audit log is intact.
//
// bbolt holds an exclusive lock on its file in the agent's process, so a
// second process cannot open the database while the agent runs. The
// agent's Brake therefore serves a read-only admin endpoint on a unix
// socket beside the database ("<db>.sock", mode 0600): Serve and Handler
// on the agent's side, Dial and Client on the operator's (`keybrake audit`,
// `keybrake status`, `keybrake audit verify`). When no Brake answers, the
// CLI opens the file read-only instead and reads it through Local, the same
// Source a Brake serves.
//
//	src := &admin.Local{Store: st, State: func() admin.State { ... }}
//	srv, err := admin.Serve(dbPath+".sock", admin.Handler(src))
//	...
//	defer srv.Close()
//
// # What is served
//
// Handler answers three GET requests and nothing else; none changes
// anything.
//
//	GET /audit   JSON Lines, one audit.Record a line, oldest first. Query
//	             parameters since and until (RFC 3339), agent, vendor,
//	             decision, customer, limit, after (a record ID: only
//	             later records, in ID order), follow=1. An unknown or
//	             repeated parameter is refused (400): a misspelt filter
//	             must not silently select everything.
//	GET /status  the Status as JSON (?spend=false: without Spend, Glance).
//	GET /verify  {"report": {...}} or, for a broken chain, also
//	             {"chain_error": {"problem", "entry", "record", "detail"}}.
//
// An error after the first record of /audit was written cannot change the
// status line any more; it is sent as the HTTP trailer Keybrake-Error, and
// Client.Audit returns it. A stream cut short (the agent stopped) is an
// error too, never a short answer taken for a whole one.
//
// # Following
//
// With follow=1 the stream stays open and new records are written as they
// appear (see Follow): the store is polled every 200 ms for the records
// after the last one written (audit.Query.After), so a poll reads only
// what is new, however long the log, and a record written long after its
// call started is still passed on. A call still reserved (in flight) is
// held back, with the records after it, up to two seconds so that it is
// usually shown with its outcome; if it is still in flight then, it is
// passed on as reserved, and not again when it settles. Records come in
// the order the store wrote them, so a follower that remembers the last
// ID it was sent resumes exactly (Resume), on this socket or the file.
//
// # The socket
//
// Serve creates the socket in a fresh private directory, sets its mode to
// 0600 and renames it into place, so that it is never reachable by anyone
// else, whatever the umask. A leftover socket of a process that died is
// removed; a live one (some server answers on it) or any file that is not
// a socket is refused and left alone. Close removes the socket if it is
// still the one Serve made.
package admin
