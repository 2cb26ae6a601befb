package dirstore

import "syscall"

// allocBuffer maps size bytes outside the Go heap; mapped memory starts on a
// page boundary, aligned for O_DIRECT.
func allocBuffer(size int) *[]byte {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		b = alignedBuffer(size) // out of mappings: the heap will do
	}
	return &b
}

// releaseBuffer gives a buffer from allocBuffer back.
func releaseBuffer(b *[]byte) {
	if syscall.Munmap(*b) != nil {
		*b = nil // it came from the heap: the collector takes it
	}
}
