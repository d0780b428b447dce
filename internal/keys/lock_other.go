//go:build !unix

package keys

// lock does nothing where flock is missing: writers must take turns.
func lock(string) (unlock func(), err error) { return func() {}, nil }
