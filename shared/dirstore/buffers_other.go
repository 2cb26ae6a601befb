//go:build !linux

package dirstore

func allocBuffer(size int) *[]byte {
	b := alignedBuffer(size)
	return &b
}

func releaseBuffer(b *[]byte) { *b = nil }
