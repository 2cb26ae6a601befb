//go:build !linux

package lambdarie

import "syscall"

// sysProcAttr puts RIE in its own process group so Stop can end it and
// anything it spawned.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// children is not known off Linux (RIE itself is built for Linux).
func children(int) []int { return nil }
