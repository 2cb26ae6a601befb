package localaws

import "syscall"

// sysProcAttr puts a server in its own process group (so Stop can end it and
// anything it spawned) and has the kernel kill it if the process that
// started it dies first: a crashed test run leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
