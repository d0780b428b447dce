package watch

import (
	"errors"
	"os"
)

// ErrUnstable is returned by ReadStable when the file changed while it
// was read: the caller reads it again shortly.
var ErrUnstable = errors.New("file changed while read")

// ReadStable reads a file that may be being written, with read
// (os.ReadFile when nil): the size and modification time must be the same
// before and after the read, the read must have the whole size, and the
// path must name the same file throughout; otherwise ErrUnstable.
func ReadStable(path string, read func(string) ([]byte, error)) ([]byte, error) {
	if read == nil {
		read = os.ReadFile
	}
	st1, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	st2, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st1.Size() != st2.Size() || !st1.ModTime().Equal(st2.ModTime()) || int64(len(data)) != st2.Size() || !os.SameFile(st1, st2) {
		return nil, ErrUnstable
	}
	return data, nil
}
