package transport

// Failure is an error the transport reports (Env's report: the Brake's
// Options.ErrorLog and Logger) with what failed, for a log to key on. Its
// Error is the sentence it wraps; the fields repeat what that sentence
// names. None holds a secret, a customer or a card number.
type Failure struct {
	// Op is a fixed word: audit_write (a refused call's record),
	// release_write (a refused call's reservation), completion_write,
	// completion_retry (written again, and failed for good),
	// completions_left (at close), completions_written (a recovery),
	// created_customer_write, fact_write.
	Op string
	// Record is the audit record's ID, 0 when there is none.
	Record uint64
	// Agent and Vendor are the call's, "" when the failure is of no one
	// call (completions the store writes again in a batch).
	Agent, Vendor string
	// Recovered says the failure is over: what failed is written now.
	Recovered bool
	Err       error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }
