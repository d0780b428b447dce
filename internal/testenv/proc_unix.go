//go:build unix

package testenv

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

const supported = true

var (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

func lockOSThread() { runtime.LockOSThread() }

// processGroup returns the process group of pid when pid leads it, as a
// server started with Setpgid does, and 0 otherwise.
func processGroup(pid int) int {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		return pgid
	}
	return 0
}

// killGroup signals the process group pgid, or only pid when the group is
// unknown. It refuses to signal our own group: a mistake there would kill
// the test binary and whoever shares its terminal.
func killGroup(pid, pgid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	target := pid
	if pgid > 1 {
		if own, err := syscall.Getpgid(0); err == nil && own == pgid {
			return fmt.Errorf("refusing to signal our own process group %d", pgid)
		}
		target = -pgid
	}
	err := syscall.Kill(target, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// lockFile takes an exclusive flock on f, polling until timeout so that a
// build stuck in another test binary cannot hang this one for ever.
func lockFile(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock %s: still held by another process after %v", f.Name(), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
