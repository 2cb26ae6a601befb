package main

import (
	"crypto/sha256"
	"hash/crc32"
	"hash/crc64"
	"syscall"
	"time"

	"github.com/flowgate/flowgate/shared/checksum"
)

// checksumCost is what one checksum costs the CPU, measured in this
// process on one core: the work the servers add per byte received (a
// client's digest checked, the chunk's CRC kept) and per file assembled
// (the chunks' CRCs combined).
type checksumCost struct {
	Name      string
	GiBps     float64       // bytes hashed per second of one core
	CPUPerGiB time.Duration // = 1/GiBps
}

// combineCost is combining the CRCs of a file's chunks into the file's.
type combineCost struct {
	Chunks int
	Took   time.Duration
}

// measureChecksums hashes a buffer of n bytes with each algorithm flowgate
// uses, repeatedly for at least minTime, and times combining chunks CRCs.
// Nothing else in the process works meanwhile, so its CPU time is the
// hashing's.
func measureChecksums(n int64, minTime time.Duration, chunks int) ([]checksumCost, combineCost) {
	buf := make([]byte, n)
	newSource(n, 7).ReadAt(buf, 0)
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	algos := []struct {
		name string
		fn   func([]byte)
	}{
		{"CRC-64/NVME (each chunk, kept for the file's checksum; package checksum)", func(b []byte) { checksum.CRC64NVME(b) }},
		{"CRC-64/NVME with Go's hash/crc64 (the AWS SDK's, for the chunk's S3 trailer)", func(b []byte) { crc64.Checksum(b, sdkCRC64) }},
		{"SHA-256 (a client's chunk digest, checked)", func(b []byte) { sha256.Sum256(b) }},
		{"CRC32C (a client's chunk digest, checked)", func(b []byte) { crc32.Checksum(b, castagnoli) }},
	}
	var out []checksumCost
	for _, a := range algos {
		// The process's CPU time, not the wall clock: on a machine shared
		// with other work the hashing goroutine waits for a core at times,
		// and only its own CPU time is the checksum's cost.
		var done int64
		start, cpu0 := time.Now(), processCPU()
		for time.Since(start) < minTime {
			a.fn(buf)
			done += n
		}
		secs := (processCPU() - cpu0).Seconds()
		gibps := float64(done) / float64(gib) / secs
		out = append(out, checksumCost{Name: a.name, GiBps: gibps, CPUPerGiB: time.Duration(float64(time.Second) / gibps)})
	}
	crcs := make([]uint64, chunks)
	for i := range crcs {
		crcs[i] = uint64(i)*0x9e3779b97f4a7c15 + 1
	}
	start := time.Now()
	const reps = 20
	for range reps {
		c := checksum.CRC64NVME(nil)
		for _, v := range crcs {
			c = checksum.Combine(c, v, 4*mib)
		}
	}
	return out, combineCost{Chunks: chunks, Took: time.Since(start) / reps}
}

// sdkCRC64 is the table the AWS SDK's CRC-64/NVME uses.
var sdkCRC64 = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
