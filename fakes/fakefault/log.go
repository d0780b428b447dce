package fakefault

import "sync"

// Log is a fake's record of the requests it saw, oldest first, each as
// the fake's own Request type R.
//
// The fake's lock guards it, so that an entry changes atomically with the
// state its request changed: Len, Count and Snapshot take that lock
// themselves; Append and At are for the fake's handler, which holds it.
// The zero Log is not usable; call NewLog.
type Log[R any] struct {
	lock    sync.Locker
	route   func(*R) (method, path string)
	clone   func(R) R
	entries []R
}

// NewLog returns an empty log guarded by lock, the fake's own. route
// reads an entry's method and escaped path, for Count; clone deep-copies
// an entry for Snapshot (nil: entries are copied as values).
func NewLog[R any](lock sync.Locker, route func(*R) (method, path string), clone func(R) R) *Log[R] {
	return &Log[R]{lock: lock, route: route, clone: clone}
}

// Append records e and returns its index, for At. The lock must be held.
func (l *Log[R]) Append(e R) int {
	l.entries = append(l.entries, e)
	return len(l.entries) - 1
}

// At returns the entry at index i, to change it. The lock must be held
// for as long as the pointer is used.
func (l *Log[R]) At(i int) *R { return &l.entries[i] }

// Len returns how many requests were recorded, whatever was answered.
func (l *Log[R]) Len() int {
	l.lock.Lock()
	defer l.lock.Unlock()
	return len(l.entries)
}

// Count returns how many requests had exactly this method and escaped
// path.
func (l *Log[R]) Count(method, path string) int {
	l.lock.Lock()
	defer l.lock.Unlock()
	n := 0
	for i := range l.entries {
		if m, p := l.route(&l.entries[i]); m == method && p == path {
			n++
		}
	}
	return n
}

// Snapshot returns a copy of every entry, oldest first, which the caller
// may keep and change.
func (l *Log[R]) Snapshot() []R {
	l.lock.Lock()
	defer l.lock.Unlock()
	out := make([]R, len(l.entries))
	for i, e := range l.entries {
		if l.clone != nil {
			e = l.clone(e)
		}
		out[i] = e
	}
	return out
}
