package exactlen_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/flowgate/flowgate/shared/exactlen"
)

// stalls returns (0, nil) for its first n reads, then reads from r; with
// n < 0 it never stops stalling once r is used up.
type stalls struct {
	n     int
	r     io.Reader
	reads int
}

func (s *stalls) Read(p []byte) (int, error) {
	s.reads++
	if s.n > 0 {
		s.n--
		return 0, nil
	}
	n, err := s.r.Read(p)
	if err == io.EOF && s.n < 0 {
		return 0, nil
	}
	return n, err
}

// thenErr yields data, then err.
type thenErr struct {
	data []byte
	err  error
}

func (t *thenErr) Read(p []byte) (int, error) {
	if len(t.data) == 0 {
		return 0, t.err
	}
	n := copy(p, t.data)
	t.data = t.data[n:]
	return n, nil
}

var errReset = errors.New("connection reset")

func TestReader(t *testing.T) {
	data := []byte("0123456789")
	for _, c := range []struct {
		name string
		src  io.Reader
		size int64
		want error // nil: all size bytes, then EOF
	}{
		{"exact", bytes.NewReader(data), 10, nil},
		{"exact, a byte at a time", iotest.OneByteReader(bytes.NewReader(data)), 10, nil},
		{"exact, EOF with the last bytes", iotest.DataErrReader(bytes.NewReader(data)), 10, nil},
		{"exact after stalling a while", &stalls{n: 999, r: bytes.NewReader(data)}, 10, nil},
		{"empty", bytes.NewReader(nil), 0, nil},
		{"short", bytes.NewReader(data[:9]), 10, exactlen.ErrShort},
		{"short, EOF with the last bytes", iotest.DataErrReader(bytes.NewReader(data[:9])), 10, exactlen.ErrShort},
		{"short, nothing at all", bytes.NewReader(nil), 10, exactlen.ErrShort},
		{"long by one", bytes.NewReader(append(data, 'x')), 10, exactlen.ErrLong},
		{"long, a byte at a time", iotest.OneByteReader(bytes.NewReader(append(data, 'x'))), 10, exactlen.ErrLong},
		{"long, EOF with the extra byte", iotest.DataErrReader(bytes.NewReader(append(data, 'x'))), 10, exactlen.ErrLong},
		{"a byte where none is declared", bytes.NewReader(data[:1]), 0, exactlen.ErrLong},
		{"(0, nil) forever, mid-way", &stalls{n: -1, r: bytes.NewReader(data[:5])}, 10, io.ErrNoProgress},
		{"(0, nil) forever, after the declared bytes", &stalls{n: -1, r: bytes.NewReader(data)}, 10, io.ErrNoProgress},
		{"error mid-way", &thenErr{data: data[:5], err: errReset}, 10, errReset},
		{"error after the declared bytes", &thenErr{data: data, err: errReset}, 10, errReset},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := exactlen.NewReader(c.src, c.size)
			got, err := io.ReadAll(r)
			if c.want == nil {
				if err != nil || !bytes.Equal(got, data[:c.size]) || r.Err() != nil || r.Left() != 0 || r.End() != nil {
					t.Fatalf("got %q, %v (Err %v, Left %d), want %q", got, err, r.Err(), r.Left(), data[:c.size])
				}
				return
			}
			if !errors.Is(err, c.want) || !errors.Is(r.Err(), c.want) {
				t.Fatalf("err %v, Err %v, want %v", err, r.Err(), c.want)
			}
			// The bytes that would complete the body are never handed over.
			if int64(len(got)) >= c.size && c.size > 0 {
				t.Fatalf("handed over %d bytes of a wrong body of %d", len(got), c.size)
			}
			// The failure stays.
			if n, err := r.Read(make([]byte, 4)); n != 0 || !errors.Is(err, c.want) {
				t.Fatalf("read after the failure: %d, %v", n, err)
			}
			if err := r.End(); !errors.Is(err, c.want) {
				t.Fatalf("End after the failure: %v", err)
			}
		})
	}
}

// TestEnd: a consumer that stops at the declared size learns from End
// whether the source ends there; one that stopped short learns ErrShort.
func TestEnd(t *testing.T) {
	data := []byte("0123456789")
	read := func(src io.Reader, size int64, n int) *exactlen.Reader {
		r := exactlen.NewReader(src, size)
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("reading %d of %d: %v", n, size, err)
		}
		return r
	}
	if err := read(iotest.OneByteReader(bytes.NewReader(data)), 10, 10).End(); err != nil {
		t.Fatalf("End at the exact size: %v", err)
	}
	if err := read(bytes.NewReader(data), 10, 4).End(); !errors.Is(err, exactlen.ErrShort) {
		t.Fatalf("End after 4 of 10 bytes: %v, want ErrShort", err)
	}
	if r := read(bytes.NewReader(data), 10, 4); r.Left() != 6 {
		t.Fatalf("Left %d after 4 of 10 bytes, want 6", r.Left())
	}
	if err := exactlen.NewReader(bytes.NewReader(data[:1]), 0).End(); !errors.Is(err, exactlen.ErrLong) {
		t.Fatalf("End of an empty body followed by a byte: %v, want ErrLong", err)
	}
	s := &stalls{n: -1, r: bytes.NewReader(nil)}
	if err := exactlen.NewReader(s, 0).End(); !errors.Is(err, io.ErrNoProgress) || s.reads > 1000 {
		t.Fatalf("End on a source that never ends: %v after %d reads, want io.ErrNoProgress within 1000", err, s.reads)
	}
}
