package proc

import "syscall"

// sysProcAttr puts a child in its own process group (so Stop can end it and
// anything it spawned) and has the kernel kill it if the process that
// started it dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
