//go:build !unix

package testenv

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// supported is false where process groups and flock are missing: servers
// are then reported unavailable rather than started half-managed.
const supported = false

var (
	sigTerm = syscall.Signal(15)
	sigKill = syscall.Signal(9)
)

var errUnsupported = errors.New("testenv: servers are supported on unix only")

func lockOSThread()                            {}
func sysProcAttr() *syscall.SysProcAttr        { return nil }
func processGroup(int) int                     { return 0 }
func killGroup(int, int, syscall.Signal) error { return errUnsupported }
func lockFile(*os.File, time.Duration) error   { return errUnsupported }
func unlockFile(*os.File) error                { return errUnsupported }
