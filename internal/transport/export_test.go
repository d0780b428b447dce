package transport

// SetRetryKept sets the bound on completions kept to be written again, for
// the test of the bound, and returns what puts it back.
func SetRetryKept(n int) (restore func()) {
	old := retryKept
	retryKept = n
	return func() { retryKept = old }
}
