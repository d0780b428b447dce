package keys

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/keybrake/keybrake/internal/atomicfile"
)

// When each key was last used is not in the keys file: the operator owns
// that file and Keybrake never rewrites it on its own. The proxy keeps the
// times in memory and writes them now and then beside it, to UsedPath
// (the keys file + ".used"), a JSON object of key id to RFC 3339 time,
// mode 0600; `keybrake keys list` reads it. It says when this host's
// proxy last admitted a call presenting each key, to the flush interval;
// it is a convenience for the operator, not evidence (the audit log is).

// UsedPath is where the last-use times of the keys file at path are kept.
func UsedPath(path string) string { return path + ".used" }

// Usage records when keys were last presented and found. The zero value is
// not usable; NewUsage makes one. Safe for concurrent use.
type Usage struct {
	path string

	mu    sync.Mutex
	last  map[string]time.Time
	dirty bool
}

// NewUsage tracks the keys of the keys file at path, starting from what
// UsedPath(path) holds (a file that is missing or unreadable starts
// empty: the times are a convenience, never a reason to refuse).
func NewUsage(path string) *Usage {
	u := &Usage{path: UsedPath(path), last: map[string]time.Time{}}
	if m, err := LoadUsage(path); err == nil {
		u.last = m
	}
	return u
}

// Touch notes that key id was used at t; it keeps the latest time.
func (u *Usage) Touch(id string, t time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t.After(u.last[id]) {
		u.last[id] = t.UTC().Truncate(time.Second)
		u.dirty = true
	}
}

// Flush writes the times to UsedPath when they changed since the last
// Flush, atomically, merged with what the file holds now (a second proxy
// on this keys file, or an older one, may have written it).
func (u *Usage) Flush() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.dirty {
		return nil
	}
	if on, err := loadUsed(u.path); err == nil {
		for id, t := range on {
			if t.After(u.last[id]) {
				u.last[id] = t
			}
		}
	}
	out := make(map[string]string, len(u.last))
	for id, t := range u.last {
		out[id] = t.Format(time.RFC3339)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(u.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("keys: writing the last-use times to %s: %w", u.path, err)
	}
	u.dirty = false
	return nil
}

// Run flushes every interval until stop is closed, then once more,
// reporting failures to report.
func (u *Usage) Run(interval time.Duration, stop <-chan struct{}, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-stop:
			if err := u.Flush(); err != nil {
				report(err)
			}
			return
		}
		if err := u.Flush(); err != nil {
			report(err)
		}
	}
}

// LoadUsage reads the last-use times kept beside the keys file at path.
// A missing file is no times and no error.
func LoadUsage(path string) (map[string]time.Time, error) {
	m, err := loadUsed(UsedPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	return m, err
}

func loadUsed(path string) (map[string]time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	out := make(map[string]time.Time, len(raw))
	for id, v := range raw {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: key %s: %w", path, id, err)
		}
		out[id] = t
	}
	return out, nil
}
