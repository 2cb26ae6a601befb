//go:build !linux

package localaws

import "syscall"

// sysProcAttr puts a server in its own process group so Stop can end it and
// anything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
