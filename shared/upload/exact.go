// The reader that makes a chunk's body exactly its declared size.

package upload

import "io"

// exactReader passes on exactly left bytes and fails if the source has fewer
// or more. The check for "more" happens when the last byte is delivered, so a
// store that reads to EOF learns of it before it commits anything.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
	done bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		if err := e.end(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			e.err = errTooShort
			return n, e.err
		}
		e.done = true
		err = nil
	}
	if err != nil {
		e.err = err
		return n, err
	}
	if e.left == 0 {
		if err := e.end(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// end checks that the source has nothing after the declared bytes.
func (e *exactReader) end() error {
	if e.err != nil || e.done {
		return e.err
	}
	if e.left > 0 {
		e.err = errTooShort
		return e.err
	}
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			e.err = errTooLong
			return e.err
		}
		if err == io.EOF {
			e.done = true
			return nil
		}
		if err != nil {
			e.err = err
			return err
		}
	}
}
