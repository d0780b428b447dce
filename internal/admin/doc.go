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
//	             decision, customer, limit, follow=1. An unknown or
//	             repeated parameter is refused (400): a misspelt filter
//	             must not silently select everything.
//	GET /status  the Status as JSON.
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
// appear (see Follow): the store is polled every 200 ms. The store can only
// be asked by time, and a record's Time is when its call started, which may
// be well before the record is written (vendor lookups come first), so each
// poll reads the last minute again and passes on only records it has not
// passed before; a slow poll makes the next one wait longer. A call still reserved (in flight) is held back up to
// two seconds so that it is usually shown with its outcome; if it is still
// in flight then, it is passed on as reserved, and not again when it
// settles. A record written more than a minute after its Time is not
// followed; a plain query finds it.
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
