// Package dirstore is the embedded ChunkStore and Assembler: a directory.
//
// Each chunk is written straight into the upload's staging file at its offset
// in the finished file ((n-1) * chunkSize), so when every chunk is in, the
// staging file already is the file and assembly is an fsync and a rename: no
// byte is copied twice. Layout under the root:
//
//	staging/<upload key>-<generation>.part    the file being received
//	files/<upload key>-<generation>/<name>    finished files
//
// Only the upload key, a hash, and the ledger's random generation name
// staging files; the client's file name, sanitized, appears only as the last
// element of a finished file's path. Each generation of an upload has a
// staging file of its own, so removing one never touches another's.
package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

const (
	stagingDir = "staging"
	filesDir   = "files"
	partSuffix = ".part"
)

// Store keeps chunks in files under Root.
type Store struct {
	root string

	// Disposition is how finished files are to be served:
	// upload.DispositionAttachment (the default) or DispositionInline. The
	// file itself is only named; Results carry the Content-Disposition.
	Disposition string

	// Writers of the same staging file share fsyncs, and so do those of
	// the same directory (every new upload adds to staging/, every finished
	// one to files/).
	files, dirs syncGroups

	resMu        sync.Mutex
	reservations map[string]*reservation // per staging file

	// buffers bound the memory chunks pass through (see buffers.go).
	buffers *bufferPool

	// buffered is set once the file system has refused O_DIRECT (see
	// chunkwrite.go); chunks then go through the page cache.
	buffered atomic.Bool
}

// New creates the directory layout under root.
func New(root string) (*Store, error) {
	for _, d := range []string{stagingDir, filesDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			return nil, fmt.Errorf("dirstore: %w", err)
		}
	}
	return &Store{root: root, reservations: map[string]*reservation{}, buffers: newBufferPool(DefaultBufferBudget)}, nil
}

// PutChunk writes the chunk at its offset in the generation's staging file
// and syncs it.
func (s *Store) PutChunk(ctx context.Context, info upload.Info, gen string, n int, r io.Reader) error {
	if !upload.ValidName(info.Key) || !upload.ValidName(gen) {
		return fmt.Errorf("dirstore: invalid upload key or generation")
	}
	name := stagingName(info.Key, gen)
	f, created, err := s.openStaging(name)
	if err != nil {
		return err
	}
	defer f.Close()
	off, size := info.ChunkBounds(n)
	if err := s.reserve(f, name, info.TotalSize, off, size); err != nil {
		return err
	}
	cr := &crcReader{r: r}
	if err := s.writeChunk(ctx, f, s.stagingPath(name), off, size, cr); err != nil {
		return err
	}
	if err := writeSum(f, info, n, cr.crc); err != nil {
		return err
	}
	return s.commit(f, name, created)
}

// openStaging opens a staging file for writing, creating it if need be.
func (s *Store) openStaging(name string) (f *os.File, created bool, err error) {
	path := s.stagingPath(name)
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	created = err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY, 0o640)
	}
	return f, created, err
}

// commit makes what was written to a staging file durable: the chunk is
// counted right after PutChunk returns, and must survive a crash of the
// machine, not only of the process.
func (s *Store) commit(f *os.File, name string, created bool) error {
	if err := s.files.sync(name, f); err != nil {
		return err
	}
	if created {
		// A new file is only durable once its directory entry is.
		if err := s.syncDir(filepath.Join(s.root, stagingDir)); err != nil {
			return err
		}
	}
	return f.Close()
}

// MoveChunk copies chunk n's bytes from generation from's staging file into
// generation to's. (The source stays until its generation is discarded.)
func (s *Store) MoveChunk(ctx context.Context, info upload.Info, n int, from, to string) error {
	if !upload.ValidName(info.Key) || !upload.ValidName(from) || !upload.ValidName(to) {
		return fmt.Errorf("dirstore: invalid upload key or generation")
	}
	src, err := os.Open(s.stagingPath(stagingName(info.Key, from)))
	if err != nil {
		return err
	}
	defer src.Close()
	off, size := info.ChunkBounds(n)
	name := stagingName(info.Key, to)
	f, created, err := s.openStaging(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := s.reserve(f, name, info.TotalSize, off, size); err != nil {
		return err
	}
	cr := &crcReader{r: io.NewSectionReader(src, off, size)}
	if err := s.writeChunk(ctx, f, s.stagingPath(name), off, size, cr); err != nil {
		return err
	}
	if err := writeSum(f, info, n, cr.crc); err != nil {
		return err
	}
	return s.commit(f, name, created)
}

// Discard removes the generation's staging file.
func (s *Store) Discard(ctx context.Context, key, gen string) error {
	if !upload.ValidName(key) || !upload.ValidName(gen) {
		return fmt.Errorf("dirstore: invalid upload key or generation")
	}
	name := stagingName(key, gen)
	s.forget(name)
	err := os.Remove(s.stagingPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Staged lists staging files with their modification times.
func (s *Store) Staged(ctx context.Context) ([]upload.Staged, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, stagingDir))
	if err != nil {
		return nil, err
	}
	var out []upload.Staged
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), partSuffix)
		key, gen, ok2 := strings.Cut(name, "-")
		if !ok || !ok2 || !upload.ValidName(key) || !upload.ValidName(gen) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, upload.Staged{Key: key, Generation: gen, Modified: fi.ModTime()})
	}
	return out, nil
}

// Assemble makes the staging file the finished file: it checks its size,
// moves it into files/ and syncs the directory. Run again after a crash, it
// finds the file already moved and returns the same result.
func (s *Store) Assemble(ctx context.Context, rec upload.Record) (upload.Result, error) {
	if !upload.ValidName(rec.Key) || !upload.ValidName(rec.Generation) {
		return upload.Result{}, &upload.PermanentError{Reason: "invalid upload key or generation"}
	}
	rel := filepath.Join(filesDir, rec.Key+"-"+rec.Generation, upload.SafeFileName(rec.FileName))
	final := filepath.Join(s.root, rel)
	res := upload.Result{
		Location: filepath.ToSlash(rel), Size: rec.TotalSize,
		ContentType:        upload.ContentType(rec.ContentType),
		ContentDisposition: upload.ContentDisposition(s.Disposition, rec.FileName),
	}

	name := stagingName(rec.Key, rec.Generation)
	staging := s.stagingPath(name)
	fi, err := os.Stat(staging)
	if errors.Is(err, fs.ErrNotExist) {
		// Moved by an earlier run that crashed before recording the result?
		if done, err := os.Stat(final); err == nil && done.Size() == rec.TotalSize {
			// Its table was cut off: this once, the checksum costs a read.
			crc, err := readCRC(final)
			if err != nil {
				return upload.Result{}, err
			}
			res.CRC64NVME = checksum.Encode(crc)
			return res, nil
		}
		return upload.Result{}, &upload.PermanentError{Reason: "the received chunks are missing from storage"}
	}
	if err != nil {
		return upload.Result{}, err
	}
	// Every chunk was counted, so the file has its declared size (and its
	// checksum table after it) and every byte of it has been written;
	// anything else means storage lost or gained bytes behind our back.
	if fi.Size() < rec.TotalSize || fi.Size() > tableEnd(rec.Info) || (fi.Size()-rec.TotalSize)%sumEntry != 0 {
		return upload.Result{}, &upload.PermanentError{
			Reason: fmt.Sprintf("assembled size %d differs from the declared %d bytes", fi.Size(), rec.TotalSize)}
	}
	if hole, err := firstHole(staging); err != nil {
		return upload.Result{}, err
	} else if hole < rec.TotalSize {
		return upload.Result{}, &upload.PermanentError{
			Reason: fmt.Sprintf("no bytes were ever written at offset %d of the assembled file", hole)}
	}
	if err := s.seal(staging, rec.Info, fi.Size(), &res); err != nil {
		return upload.Result{}, err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return upload.Result{}, err
	}
	if err := os.Rename(staging, final); err != nil {
		return upload.Result{}, err
	}
	s.forget(name)
	// The file's new entry, its directory's entry in files/, and its
	// removal from staging/.
	for _, d := range []string{dir, filepath.Join(s.root, filesDir), filepath.Join(s.root, stagingDir)} {
		if err := s.syncDir(d); err != nil {
			return upload.Result{}, err
		}
	}
	return res, nil
}

// seal combines the chunks' checksums into the file's and cuts the table
// off, durably, so that what is renamed is exactly the file.
func (s *Store) seal(staging string, info upload.Info, size int64, res *upload.Result) error {
	f, err := os.OpenFile(staging, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	crc, err := fileCRC(f, info, size)
	if err != nil {
		return err
	}
	res.CRC64NVME = checksum.Encode(crc)
	if size == info.TotalSize {
		return nil
	}
	if err := f.Truncate(info.TotalSize); err != nil {
		return err
	}
	return f.Sync()
}

// readCRC reads a whole file for its checksum.
func readCRC(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := checksum.NewCRC64NVME()
	if _, err := io.Copy(h, f); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

// Path returns the absolute path of a location that Assemble returned.
func (s *Store) Path(location string) string {
	return filepath.Join(s.root, filepath.FromSlash(location))
}

// stagingName names the staging file of a generation of an upload.
func stagingName(key, gen string) string { return key + "-" + gen }

func (s *Store) stagingPath(name string) string {
	return filepath.Join(s.root, stagingDir, name+partSuffix)
}

// syncDir makes the entries added to or removed from dir durable.
func (s *Store) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return s.dirs.sync(dir, d)
}
