package testenv

import "syscall"

// sysProcAttr puts the server in its own process group, so that stopping it
// stops its children too, and asks the kernel to kill it if the thread that
// started it dies, which happens when the test binary dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
