// Package testenv starts the out-of-process servers Keybrake's tests talk
// to, today stripe-mock (Stripe's official API mock), and stops them when
// the test binary finishes.
//
// A test binary shares one server of each kind across all its tests:
// starting stripe-mock takes about a second, and a server started per test
// would multiply that by hundreds. Sharing is why the server cannot be
// stopped by t.Cleanup of the test that happened to start it; a package
// whose tests use a server must run them through Main:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Servers listen on 127.0.0.1 only, on ports picked free at start, so
// parallel test binaries (go test ./... runs packages in parallel) never
// collide. Each runs in its own process group, stopped by group when Main
// returns; on Linux the kernel also kills it if the test binary dies first
// (a panic, a -timeout, a signal), so no server outlives its tests.
//
// # Finding stripe-mock
//
// StripeMock needs stripe-mock v0.183.0, whose embedded OpenAPI spec is API
// version 2023-10-16, the one stripe-go v76 speaks. It uses, in order:
//
//  1. $KEYBRAKE_STRIPE_MOCK, a path to the binary (any problem with it is a
//     test failure: it was set on purpose);
//  2. stripe-mock on $PATH;
//  3. stripe-mock in $(go env GOBIN) or each $(go env GOPATH)/bin;
//  4. stripe-mock in the tools directory, $KEYBRAKE_TOOLS_DIR or by default
//     $(os.UserCacheDir)/keybrake/tools;
//  5. under CI=true or KEYBRAKE_INSTALL_TOOLS=1 only, a fresh build:
//     go install github.com/stripe/stripe-mock@v0.183.0 with GOBIN set to
//     the tools directory, under a file lock so that of several test binaries
//     starting together exactly one builds and the others wait for it.
//
// A candidate whose version can be read (from the Go build information the
// binary carries, else from `stripe-mock -version`) and is not v0.183.0 is
// passed over. A binary built from a source checkout calls itself "master"
// and cannot tell its version; it is used, and the test log says so.
//
// When no binary is found and building is not allowed, tests that need
// stripe-mock are skipped with a message saying how to get it; under
// CI=true they fail instead, since a CI run that skipped them would report
// a green build that tested nothing.
package testenv
