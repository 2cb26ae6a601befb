// Package exactlen reads a body that must be exactly as long as declared: a
// chunk, whose size the client stated before sending it, or an object read
// back from storage. Both the upload service (on what a client sends) and
// the S3 store (on what it sends to and reads from S3) need the same check,
// so it lives here, importing nothing of either.
package exactlen

import (
	"errors"
	"io"
)

var (
	// ErrShort: the source ended before the declared size.
	ErrShort = errors.New("body is shorter than its declared size")
	// ErrLong: the source has more than the declared size.
	ErrLong = errors.New("body is longer than its declared size")
)

// maxEmptyReads is how many reads in a row may return nothing and no error
// before the source is given up on (io.ErrNoProgress): a reader may do so a
// few times, not forever.
const maxEmptyReads = 1000

// Reader passes on exactly the declared number of bytes of its source and
// fails if the source has fewer or more. It checks for more before it hands
// over the last declared bytes: a consumer that reads to EOF before it
// commits (an S3 PutObject, whose request is then cut off; a file that is
// then not reported written) never takes a body of the wrong size. A read
// that fails passes on no bytes, and every read after a failure fails the
// same way.
type Reader struct {
	r     io.Reader
	left  int64
	err   error
	done  bool // the source said EOF, right at the declared size
	empty int  // reads in a row that returned nothing
}

// NewReader reads exactly size bytes from r.
func NewReader(r io.Reader, size int64) *Reader {
	return &Reader{r: r, left: size}
}

// Left is how many declared bytes have not been read yet.
func (e *Reader) Left() int64 { return e.left }

// Err is the reader's failure (ErrShort, ErrLong, io.ErrNoProgress or the
// source's own error), or nil.
func (e *Reader) Err() error { return e.err }

func (e *Reader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		if err := e.End(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = ErrShort
	case err == io.EOF:
		e.done = true
	case err != nil:
		e.err = err
	case n == 0:
		if e.empty++; e.empty >= maxEmptyReads {
			e.err = io.ErrNoProgress
		}
	default:
		e.empty = 0
	}
	if e.err == nil && e.left == 0 {
		e.End()
	}
	if e.err != nil {
		return 0, e.err
	}
	return n, nil
}

// End checks that the source ends at the declared size, for a consumer
// that stopped reading there without seeing EOF (one that knows the length,
// or has nothing to read for an empty body). It reads on until the source
// says EOF: a byte more is ErrLong.
func (e *Reader) End() error {
	if e.err != nil || e.done {
		return e.err
	}
	if e.left > 0 {
		e.err = ErrShort
		return e.err
	}
	var one [1]byte
	for range maxEmptyReads {
		n, err := e.r.Read(one[:])
		switch {
		case n > 0:
			e.err = ErrLong
		case err == io.EOF:
			e.done = true
		case err != nil:
			e.err = err
		default:
			continue
		}
		return e.err
	}
	e.err = io.ErrNoProgress
	return e.err
}
