package postgres

// Crash stops the Store as a killed process would: no more heartbeats, the
// pool closed, nothing recovered and the session left open, to expire.
func (s *Store) Crash() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ops.Wait()
	close(s.stop)
	<-s.done
	s.pool.Close()
}

// Session is the Store's current session.
func (s *Store) Session() int64 { return s.session.Load() }
