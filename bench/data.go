package main

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"sync"
)

// The files the benchmark uploads are generated, not stored: a fixed random
// block repeated, rotated per file. Reading them costs a memory copy, so the
// client spends its CPU on the protocol, not on making data, and nothing
// has to be written to disk first. The block's length is odd, so no two
// chunks of a file, and no two files, have the same bytes: a chunk written
// at the wrong offset, or a file assembled from another file's chunks,
// changes the SHA-256.
const blockLen = 1<<20 + 4093

var (
	blockOnce sync.Once
	block     []byte
)

func dataBlock() []byte {
	blockOnce.Do(func() {
		rng := rand.NewChaCha8([32]byte{'f', 'l', 'o', 'w', 'g', 'a', 't', 'e'})
		block = make([]byte, blockLen)
		rng.Read(block)
	})
	return block
}

// source is one generated file: an io.ReaderAt of Size bytes.
type source struct {
	Size  int64
	shift int64
}

func newSource(size int64, file int) *source {
	return &source{Size: size, shift: int64(file) * 104729 % blockLen}
}

// ReadAt implements io.ReaderAt.
func (s *source) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= s.Size {
		return 0, io.EOF
	}
	b := dataBlock()
	n := len(p)
	if int64(n) > s.Size-off {
		n = int(s.Size - off)
	}
	for i := 0; i < n; {
		pos := (off + int64(i) + s.shift) % blockLen
		i += copy(p[i:n], b[pos:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Sum is the SHA-256 of the whole file.
func (s *source) Sum() [32]byte {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < s.Size; {
		n, _ := s.ReadAt(buf, off)
		h.Write(buf[:n])
		off += int64(n)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// hashReader is the SHA-256 of everything r yields, and how many bytes.
func hashReader(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
	var out [32]byte
	h.Sum(out[:0])
	return out, n, err
}
