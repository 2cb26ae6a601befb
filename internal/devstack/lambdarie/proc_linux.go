package lambdarie

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts RIE in its own process group (so Stop can end it and
// anything it spawned) and has the kernel kill it if the process that
// started it dies first. The bootstrap is RIE's child in a process group of
// its own (RIE starts it so); when RIE dies the bootstrap's next call to the
// runtime API fails and aws-lambda-go exits, so nothing is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// children lists the processes whose parent is pid (the bootstraps RIE
// started), from /proc.
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name (field 2) may hold spaces; the parent id is the
		// second field after it.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
