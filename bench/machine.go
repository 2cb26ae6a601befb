package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPU       string
	NProc     int
	Memory    int64 // bytes
	Disk      string
	Kernel    string
	Go        string
	LoadStart string
	LoadEnd   string
	AWS       string // MinIO and dynalite, when the AWS path ran
	// The same bytes written through the page cache and with O_DIRECT, each
	// with one fsync at the end, measured once per run.
	PageCacheBytes              int64
	PageCacheMiBps, DirectMiBps float64
}

func describeMachine(dir string) Machine {
	m := Machine{
		CPU:       cpuModel(),
		NProc:     runtime.NumCPU(),
		Disk:      diskOf(dir),
		Go:        goVersion(),
		LoadStart: loadAverage(),
	}
	if kb, err := meminfo("MemTotal:"); err == nil {
		m.Memory = kb << 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func meminfo(field string) (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no %s", field)
}

// diskOf describes the file system dir is on and the device under it.
func diskOf(dir string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return "unknown"
	}
	major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
	devID := fmt.Sprintf("%d:%d", major, minor)
	fstype, source, mount := "", "", ""
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[2] != devID {
				continue
			}
			for i, fl := range fields {
				if fl == "-" && i+2 < len(fields) {
					fstype, source, mount = fields[i+1], fields[i+2], fields[4]
				}
			}
		}
		f.Close()
	}
	desc := fmt.Sprintf("%s on %s", fstype, source)
	if mount != "" {
		desc += " (mounted at " + mount + ")"
	}
	if fstype == "" {
		desc = "device " + devID
	}
	// The block device: rotational or not, and its driver.
	sys := filepath.Join("/sys/dev/block", devID)
	if b, err := os.ReadFile(filepath.Join(sys, "queue", "rotational")); err == nil {
		desc += ", rotational=" + strings.TrimSpace(string(b)) + " (as the kernel reports it)"
	}
	if link, err := os.Readlink(filepath.Join(sys, "device", "driver")); err == nil {
		desc += ", driver " + filepath.Base(link)
	} else if link, err := os.Readlink(filepath.Join(sys, "device")); err == nil && strings.Contains(link, "virtio") {
		desc += ", virtio"
	}
	return desc
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// goVersion is the go command's version (the toolchain that built the
// servers), falling back to this binary's.
func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
}

func nodeVersion() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
