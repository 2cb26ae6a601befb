package proc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// What /proc tells of a process (Linux): its memory, threads, open files,
// CPU time and children.

// Stats is what /proc tells about a process.
type Stats struct {
	RSS     int64 // VmRSS, bytes
	PeakRSS int64 // VmHWM, bytes
	Threads int
	FDs     int // open file descriptors (files, sockets, pipes)
}

func (s Stats) String() string {
	return fmt.Sprintf("rss %.1f MiB (peak %.1f MiB), %d threads, %d open fds",
		float64(s.RSS)/(1<<20), float64(s.PeakRSS)/(1<<20), s.Threads, s.FDs)
}

// ReadStats reads the Stats of process pid.
func ReadStats(pid int) (Stats, error) {
	var st Stats
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		switch k {
		case "VmRSS":
			n, _ := strconv.ParseInt(v, 10, 64)
			st.RSS = n << 10
		case "VmHWM":
			n, _ := strconv.ParseInt(v, 10, 64)
			st.PeakRSS = n << 10
		case "Threads":
			st.Threads, _ = strconv.Atoi(v)
		}
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return st, err
	}
	st.FDs = len(fds)
	return st, nil
}

// PeakRSS is the peak resident set size of process pid so far (VmHWM), in
// bytes.
func PeakRSS(pid int) (int64, error) {
	st, err := ReadStats(pid)
	if err == nil && st.PeakRSS == 0 {
		err = fmt.Errorf("/proc/%d/status has no VmHWM", pid)
	}
	return st.PeakRSS, err
}

// CPUTime is the CPU time (user and system) process pid has used so far.
func CPUTime(pid int) (time.Duration, error) {
	f, err := stat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, f)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15, in
	// clock ticks of 1/100 s (USER_HZ, 100 on every Linux this runs on).
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, f)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// stat is /proc/<pid>/stat's fields after the command name (field 2, which
// may hold spaces): the first is field 3, the state.
func stat(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return strings.Fields(s[i+1:]), nil
}

// Children lists the processes whose parent is pid (none where there is
// no /proc).
func Children(pid int) []int {
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
		// The parent id is field 4.
		if f, err := stat(child); err == nil && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Comm is the command name of process pid.
func Comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// FDs is a process's open file descriptors by kind.
type FDs struct {
	Files    int // regular files and directories
	Listen   int // listening TCP sockets
	Inbound  int // TCP connections accepted on the port given to ReadFDs
	Outbound int // other TCP connections (to storage servers, webhooks)
	Other    int // pipes, event fds, epoll, other sockets
}

func (f FDs) String() string {
	return fmt.Sprintf("%d files, %d listening, %d inbound and %d outbound connections, %d other",
		f.Files, f.Listen, f.Inbound, f.Outbound, f.Other)
}

// ReadFDs sorts the open file descriptors of process pid; port is the
// port it serves on, which tells inbound connections from outbound ones.
func ReadFDs(pid, port int) (FDs, error) {
	var out FDs
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out, err
	}
	socks := tcpSockets(pid)
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		inode, isSock := strings.CutPrefix(link, "socket:[")
		switch {
		case isSock:
			s, ok := socks[strings.TrimSuffix(inode, "]")]
			switch {
			case !ok:
				out.Other++
			case s.state == "0A":
				out.Listen++
			case s.localPort == port:
				out.Inbound++
			default:
				out.Outbound++
			}
		case strings.HasPrefix(link, "/"):
			out.Files++
		default:
			out.Other++
		}
	}
	return out, nil
}

type tcpSocket struct {
	localPort int
	state     string
}

// tcpSockets reads the TCP sockets of pid's network namespace, by inode.
func tcpSockets(pid int) map[string]tcpSocket {
	out := map[string]tcpSocket{}
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, portHex, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseInt(portHex, 16, 32)
			if err != nil {
				continue
			}
			out[f[9]] = tcpSocket{localPort: int(port), state: f[3]}
		}
	}
	return out
}
