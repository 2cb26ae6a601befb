//go:build !linux

package proc

import "syscall"

// sysProcAttr puts a child in its own process group so Stop can end it and
// anything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
