package bolt

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keybrake/keybrake/store"
)

// bbolt's flock belongs to an open file description, not to the process:
// a second Open of a file this process already holds read-write blocks on
// its own lock and, after LockTimeout, would be told another process holds
// it. held remembers the files this process has open so that Open can say
// what really happened, at once.
var held struct {
	sync.Mutex
	files []*holder
}

// holder is one Open of a file, from before bbolt.Open until Close.
type holder struct {
	abs      string      // cleaned absolute path as opened
	fi       os.FileInfo // the file it names (device and inode); nil until it exists
	readOnly bool
}

// sameFile reports whether h holds the file at abs, found by name or, for
// another name of it (a symlink, a hard link), by device and inode.
func (h *holder) sameFile(abs string, fi os.FileInfo) bool {
	return h.abs == abs || (fi != nil && h.fi != nil && os.SameFile(h.fi, fi))
}

// claim registers an Open of path. It fails at once, with an error wrapping
// store.ErrLocked, when this process already has the file open read-write,
// or is opening it so, since bbolt would wait out its timeout and fail.
// Readers do not block anyone here: readers share the file, and a writer
// waits for them in bbolt as it would for another process's (see
// lockedError). The caller must release the holder it gets.
func claim(path string, readOnly bool) (*holder, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	fi, _ := os.Stat(abs) // not there yet: only its name can match
	held.Lock()
	defer held.Unlock()
	for _, h := range held.files {
		if h.sameFile(abs, fi) && !h.readOnly {
			return nil, inProcess(path, h)
		}
	}
	h := &holder{abs: abs, fi: fi, readOnly: readOnly}
	held.files = append(held.files, h)
	return h, nil
}

// opened records the file h names now that bbolt has opened (and perhaps
// created) it, so that other names of it are recognised from now on.
func (h *holder) opened() {
	fi, err := os.Stat(h.abs)
	if err != nil {
		return // still found by its name
	}
	held.Lock()
	h.fi = fi
	held.Unlock()
}

// release forgets h: its Open failed, or its Store is closed.
func (h *holder) release() {
	held.Lock()
	defer held.Unlock()
	for i, o := range held.files {
		if o == h {
			held.files = append(held.files[:i], held.files[i+1:]...)
			return
		}
	}
}

// lockedError is the error of an Open of path (holder h) that waited
// timeout for the file lock. It names this process when another Open in it
// holds the file (a writer that raced h, or readers a writer waited for),
// and another process otherwise.
func lockedError(path string, h *holder, timeout time.Duration) error {
	fi, _ := os.Stat(h.abs)
	held.Lock()
	var writer, reader *holder
	for _, o := range held.files {
		if o == h || !o.sameFile(h.abs, fi) {
			continue
		}
		if o.readOnly {
			reader = o
		} else {
			writer = o
		}
	}
	held.Unlock()
	switch {
	case writer != nil:
		return inProcess(path, writer)
	case reader != nil:
		return fmt.Errorf("%w: %s is already open read-only in this process%s (close it before opening the file read-write; waited %v)", store.ErrLocked, path, alias(path, reader), timeout)
	}
	return fmt.Errorf("%w by another process: %s (probably a running agent holds it; waited %v)", store.ErrLocked, path, timeout)
}

func inProcess(path string, first *holder) error {
	return fmt.Errorf("%w: %s is already open in this process%s (close the first Brake or share it)", store.ErrLocked, path, alias(path, first))
}

// alias names the path the first Open used when it is not path's.
func alias(path string, first *holder) string {
	if abs, err := filepath.Abs(path); err == nil && abs == first.abs {
		return ""
	}
	return " as " + first.abs
}
