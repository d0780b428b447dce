//go:build unix

package keys

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds how long a writer waits for another: a keys command
// stuck in another process should be an error, not a hang.
const lockWait = 10 * time.Second

// lock takes an exclusive flock on path+".lock", so that writers in other
// processes (two keys commands, a revoke during an add) never read the
// same version and overwrite each other's change: a revoke lost that way
// would put the key back in force. The file being replaced by rename
// cannot carry the lock itself. flock belongs to the open file, so
// goroutines of one process exclude each other too.
func lock(path string) (unlock func(), err error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keys: lock: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("keys: lock %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("keys: lock %s: still held by another writer after %v", name, lockWait)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
