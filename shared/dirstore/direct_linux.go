package dirstore

import (
	"errors"
	"os"
	"syscall"
)

func openDirectFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}

// preallocate reserves blocks for [off, off+size) of f, growing the file to
// cover them. A file system without fallocate goes without.
func preallocate(f *os.File, off, size int64) error {
	if size <= 0 {
		return nil
	}
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := c.Control(func(fd uintptr) { ferr = syscall.Fallocate(int(fd), 0, off, size) }); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EOPNOTSUPP) || errors.Is(ferr, syscall.ENOSYS) {
		return nil
	}
	if ferr != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: ferr}
	}
	return nil
}

// firstHole returns the offset of the first byte of path that was never
// written (preallocated blocks count as a hole until written), or its size.
// A file system that cannot tell reports the size.
func firstHole(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const seekHole = 4 // SEEK_HOLE
	off, err := f.Seek(0, seekHole)
	if errors.Is(err, syscall.ENXIO) {
		return 0, nil // an empty file
	}
	return off, err
}
