package dirstore

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Chunk bytes are written with O_DIRECT where the file system allows it.
//
// Through the page cache every byte is copied into a freshly allocated page
// and written back later by the kernel; on the virtual disks this server
// typically runs on, that costs several seconds of CPU per GiB and write-back
// throttling on top, and the server fsyncs every chunk anyway, so the cache
// buys nothing: the finished file is renamed, never read back. With O_DIRECT
// the bytes go from our buffer to the device. (Measured on the 2-core machine
// of docs/benchmarks.md: 1 GiB in 1 MiB chunks, fdatasync after each, took
// 4.7 s of system CPU buffered and 0.5 s direct.)
//
// O_DIRECT wants the buffer, the file offset and the length aligned to the
// device's logical block size. Chunks start at (n-1) * chunkSize, which is
// aligned for the usual power-of-two chunk sizes; every full buffer is
// written directly, and what does not fill a block (the end of the file) goes
// through the page cache. The fsync that follows covers both.

// directAlign is the alignment used for O_DIRECT: 4096 is the largest
// logical block size in common use, and a multiple of the smaller ones.
const directAlign = 4096

// alignedBuffer returns size bytes of the Go heap that start at a multiple
// of directAlign.
func alignedBuffer(size int) []byte {
	b := make([]byte, size+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+size : skip+size]
}

// openDirect opens path for writing with O_DIRECT; a variable so that tests
// can play a file system without it.
var openDirect = openDirectFile

// writeChunk copies r, size bytes, into f at off, directly where it can.
// path is f's path, for the second, O_DIRECT descriptor.
func (s *Store) writeChunk(ctx context.Context, f *os.File, path string, off, size int64, r io.Reader) error {
	buf, err := s.buffers.get(ctx, size)
	if err != nil {
		return err
	}
	defer s.buffers.put(buf)

	var direct *os.File
	if !s.buffered.Load() && off%directAlign == 0 {
		d, err := openDirect(path)
		switch {
		case err == nil:
			direct = d
			defer d.Close()
		case errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported):
			s.buffered.Store(true) // this file system has no O_DIRECT
		}
		// Any other error: this chunk goes through the page cache, the next
		// one tries again.
	}
	for {
		n, rerr := io.ReadFull(r, *buf)
		if n > 0 {
			if err := s.writeAt(f, direct, (*buf)[:n], off); err != nil {
				return err
			}
			off += int64(n)
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil // the end of the chunk (the caller checks its length)
		default:
			return rerr
		}
	}
}

// writeAt writes p at off: its whole blocks through direct if set, the rest
// through f.
func (s *Store) writeAt(f, direct *os.File, p []byte, off int64) error {
	if whole := len(p) &^ (directAlign - 1); direct != nil && whole > 0 && !s.buffered.Load() {
		_, err := direct.WriteAt(p[:whole], off)
		switch {
		case err == nil:
			p, off = p[whole:], off+int64(whole)
		case errors.Is(err, syscall.EINVAL):
			// Opened, but refused at the first write (some file systems
			// check only then): write through the page cache from now on.
			s.buffered.Store(true)
		default:
			return err
		}
	}
	if len(p) == 0 {
		return nil
	}
	_, err := f.WriteAt(p, off)
	return err
}

// reserveAhead is how far past the bytes received a staging file's blocks are
// reserved (see reserve).
const reserveAhead = 64 << 20

// reservation is what this process has reserved of one staging file: blocks
// for [0, reserved), and how many bytes it has received into it.
type reservation struct {
	mu       sync.Mutex
	reserved int64
	received int64
}

// reserve gives the staging file blocks for the chunk at [off, off+size)
// before it is written, together with the next reserveAhead bytes, when the
// chunk starts inside what is reserved already (or at 0).
//
// Direct writes past the end of a file or into a hole take the file's lock
// alone and wait for every other direct write in flight; into reserved
// blocks inside the file they run side by side (measured with 4 MiB chunks,
// 8 writers on one file, fdatasync each: 653-703 MiB/s without, 791-854
// with). Reserving as the upload goes, and only while what is reserved
// exceeds what was received by less than reserveAhead, keeps a client from
// taking the disk's space with requests that declare a large file: an upload
// holds at most what it sent plus twice reserveAhead. Chunks elsewhere are
// written into holes, as without reservation. After a restart the
// reservation starts again from 0; reserving blocks already written is
// harmless.
func (s *Store) reserve(f *os.File, key string, totalSize, off, size int64) error {
	s.resMu.Lock()
	r := s.reservations[key]
	if r == nil {
		r = &reservation{}
		s.reservations[key] = r
	}
	s.resMu.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.received += size
	end := off + size
	if end <= r.reserved || off > r.reserved || r.reserved-r.received >= reserveAhead {
		return nil
	}
	to := min(totalSize, max(end, off+reserveAhead))
	if err := reserveBlocks(f, r.reserved, to-r.reserved); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			// No room for the window ahead; the chunk itself may still
			// fit, and its write says so if not.
			return nil
		}
		return err
	}
	r.reserved = to
	return nil
}

// reserveBlocks is preallocate; a variable so that tests can fill the disk.
var reserveBlocks = preallocate

// forget drops the reservation of a staging file that is gone.
func (s *Store) forget(key string) {
	s.resMu.Lock()
	delete(s.reservations, key)
	s.resMu.Unlock()
}
