package transport

import "time"

// SetRetryKept sets the bound on completions kept to be written again, for
// the test of the bound, and returns what puts it back.
func SetRetryKept(n int) (restore func()) {
	old := retryKept
	retryKept = n
	return func() { retryKept = old }
}

// SetWriteTimeout sets the bound on store writes, for the tests of a
// store that does not answer, and returns what puts it back.
func SetWriteTimeout(d time.Duration) (restore func()) {
	old := writeTimeout
	writeTimeout = d
	return func() { writeTimeout = old }
}
