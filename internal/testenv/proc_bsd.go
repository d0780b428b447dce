//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts the server in its own process group, so that stopping it
// stops its children too. Without Linux's Pdeathsig, a test binary killed
// before Main returns leaves its servers running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
