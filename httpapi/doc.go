// Package httpapi is latch's HTTP transport: routes, JSON decoding, limits
// and the mapping of engine errors to HTTP status and stable API codes. It
// holds no state of its own; everything it does is decode, call the engine,
// encode.
//
// Routes (docs/API.md is the reference):
//
//	POST /db/{env}     one atomic request (locks, KV, counters, sequences)
//	POST /req/{env}    the same handler, for the original Dragon Lock client
//	POST /watch/{env}  long-poll until a key's version differs
//	GET  /admin/...    live views and POST /admin/locks/release (adminapi.go)
//	GET  /ui           the admin page, embedded static files (ui.go)
//
// Every error body is {"Code": "<stable snake_case>", "Message": "<what to
// fix>"}; the codes and their statuses are the table in errors.go.
//
// Around the routes (docs/SECURITY.md): auth.go checks bearer tokens per
// route class (namespace, admin, open) when the server has an auth file;
// transport.go builds the *http.Server `latch serve` runs, with its
// connection limit, header and body timeouts, header size limit and TLS.
//
// A waiter's or watcher's HTTP disconnect cancels the request's context,
// which withdraws it from the engine's queue (net/http sees the disconnect;
// fasthttp would not).
package httpapi
