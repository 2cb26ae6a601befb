package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/upload"
)

// ceiling is a ceiling measurement: the better of the one just before the
// scenario and the one just after it, so that a slow spell of the shared
// machine during one of them does not lower the ceiling.
type ceiling struct {
	MiBps    float64
	P50, P99 time.Duration // chunk latencies, when requests are involved
	Wall     time.Duration
	Runs     []float64 // MiB/s of each measurement, in order
}

// or merges a new measurement in: the faster one's numbers are kept.
func (c ceiling) or(n ceiling) ceiling {
	runs := append(append([]float64(nil), c.Runs...), n.MiBps)
	if n.MiBps > c.MiBps {
		c = n
	}
	c.Runs = runs
	return c
}

// runLocal measures one scenario on the embedded server, with its HTTP and
// disk ceilings (and the durable-chunk one, for the record) measured just
// before it and again just after it.
func (r *runner) runLocal(ctx context.Context, sc Scenario) (*Result, error) {
	res := &Result{Scenario: sc}
	files := makeFiles(sc, r.runID)
	sums(files)
	r.step("files generated and hashed")

	ceilings := func(when string) error {
		c, err := r.httpCeiling(ctx, sc, files)
		if err != nil {
			return fmt.Errorf("HTTP ceiling: %w", err)
		}
		res.HTTPCeil = res.HTTPCeil.or(c)
		d, err := r.diskCeiling(sc, files)
		if err != nil {
			return fmt.Errorf("disk ceiling: %w", err)
		}
		res.DiskCeil = res.DiskCeil.or(d)
		dc, err := r.durableChunkCeiling(sc, files)
		if err != nil {
			return fmt.Errorf("durable-chunk disk ceiling: %w", err)
		}
		res.DurableCeil = res.DurableCeil.or(dc)
		r.step("ceilings %s: HTTP %.0f MiB/s, disk %.0f MiB/s, disk with an fdatasync per chunk %.0f MiB/s", when, c.MiBps, d.MiBps, dc.MiBps)
		return nil
	}
	if err := ceilings("before"); err != nil {
		return nil, err
	}

	dataDir := filepath.Join(r.tmp, "data-"+sc.ID)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	env := []string{
		"FLOWGATE_DATA_DIR=" + dataDir,
		"FLOWGATE_WEB_DIR=" + filepath.Join(r.tmp, "no-web"),
		"FLOWGATE_LOG_LEVEL=warn",
		"FLOWGATE_WEBHOOK_URL=" + r.events.URL,
	}
	bin, args := r.flowgateBin, []string(nil)
	if r.opt.ProfileDir != "" {
		bin = r.self
		env = append(env, roleEnv+"="+roleLocalServer, profileEnv+"="+filepath.Join(r.opt.ProfileDir, sc.ID))
	}
	syncDisk()
	srv, err := startServer(ctx, "flowgate", bin, args, env, r.tmp, filepath.Join(r.tmp, sc.ID+".log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	r.step("server started")

	evs, err := r.uploadAndMeasure(ctx, srv, sc, files, res, 60*time.Second)
	if err != nil {
		return nil, err
	}
	r.step("all complete")
	srv.stop() // the profile, if any, is written on the way out
	r.step("complete; server stopped")

	// Every finished file must be the file that was sent.
	for i, f := range files {
		path := filepath.Join(dataDir, filepath.FromSlash(evs[i].Location))
		fh, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("finished file of %s: %w", f.Name, err)
		}
		sum, n, err := hashReader(fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
		if n != f.Src.Size || sum != f.Sum {
			return nil, fmt.Errorf("%s: the finished file (%d bytes) differs from the file sent (%d bytes)", f.Name, n, f.Src.Size)
		}
		res.Verified++
	}
	r.step("files verified")
	os.RemoveAll(dataDir)
	if err := ceilings("after"); err != nil {
		return nil, err
	}
	res.Ceiling = min(res.HTTPCeil.MiBps, res.DiskCeil.MiBps)
	res.CeilingName = "HTTP"
	if res.DiskCeil.MiBps < res.HTTPCeil.MiBps {
		res.CeilingName = "disk"
	}
	return res, nil
}

// httpCeiling sends the scenario's requests, exactly as to the server, to a
// loopback server (this binary in the discard role, a process of its own)
// that reads every body and drops it.
func (r *runner) httpCeiling(ctx context.Context, sc Scenario, files []*benchFile) (ceiling, error) {
	srv, err := startServer(ctx, "discard", r.self, nil, []string{roleEnv + "=" + roleDiscard}, r.tmp, filepath.Join(r.tmp, sc.ID+"-discard.log"))
	if err != nil {
		return ceiling{}, err
	}
	defer srv.stop()
	run, err := uploadAll(ctx, srv.URL, sc, files)
	if err != nil {
		return ceiling{}, err
	}
	return ceiling{
		MiBps: mibps(sc.Bytes(), run.Wall()),
		P50:   run.Stats.Percentile(50),
		P99:   run.Stats.Percentile(99),
		Wall:  run.Wall(),
	}, nil
}

// diskCeiling writes the scenario's bytes, in writes of the chunk size (4
// MiB at least), one after another to one new file in the temporary
// directory (on the disk the server's data directory is on), with O_DIRECT,
// and fsyncs it once at the end: the most favourable way to put those bytes
// durably on that disk, which is what a ceiling must be. Through the page
// cache it can be several times slower (on virtual disks with write-back
// throttling, as here); that is measured once per run (pageCacheWrite), for
// the record.
func (r *runner) diskCeiling(sc Scenario, files []*benchFile) (ceiling, error) {
	d, err := r.diskWrite(sc.ID, files, max(sc.ChunkSize, 4*mib), true)
	if err != nil {
		return ceiling{}, err
	}
	return ceiling{MiBps: mibps(sc.Bytes(), d), Wall: d}, nil
}

// pageCacheWrite is the disk ceiling's way through the page cache: size
// bytes in 4 MiB writes, one fsync at the end.
func (r *runner) pageCacheWrite(size int64) (float64, error) {
	f := &benchFile{Src: newSource(size, 0)}
	d, err := r.diskWrite("page-cache", []*benchFile{f}, 4*mib, false)
	if err != nil {
		return 0, err
	}
	return mibps(size, d), nil
}

// diskWrite writes the files' bytes to one new file and fsyncs it, and
// returns how long that took.
func (r *runner) diskWrite(name string, files []*benchFile, block int64, direct bool) (time.Duration, error) {
	syncDisk()
	path := filepath.Join(r.tmp, "disk-ceiling-"+name)
	defer os.Remove(path)
	buf := alignedBuffer(block)
	flags := os.O_CREATE | os.O_EXCL | os.O_WRONLY
	if direct {
		flags |= syscall.O_DIRECT
	}
	start := time.Now()
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var written int64
	for _, bf := range files {
		for off := int64(0); off < bf.Src.Size; {
			n, _ := bf.Src.ReadAt(buf, off)
			off += int64(n)
			if direct && n%directAlign != 0 {
				// An unaligned tail goes through the page cache.
				tail, err := os.OpenFile(path, os.O_WRONLY, 0)
				if err != nil {
					return 0, err
				}
				_, err = tail.WriteAt(buf[:n], written)
				if err == nil {
					err = tail.Sync()
				}
				tail.Close()
				if err != nil {
					return 0, err
				}
				if _, err := f.Seek(int64(n), io.SeekCurrent); err != nil {
					return 0, err
				}
			} else if _, err := f.Write(buf[:n]); err != nil {
				return 0, err
			}
			written += int64(n)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// durableChunkCeiling is the disk's own cost of what the server must do for
// every chunk before acknowledging it: the scenario's chunks, cut as the
// client cuts them, each written with O_DIRECT at its offset in a new file
// per file (on the disk the server's data directory is on) and that file
// fdatasynced, with as many chunks in flight as the scenario's client has.
// It is for the record, not a ceiling the targets use: it tells how much of
// the server's distance from the disk ceiling (one fsync at the end) the
// disk itself charges for per-chunk durability, and how much is the server.
func (r *runner) durableChunkCeiling(sc Scenario, files []*benchFile) (ceiling, error) {
	chunks, err := fileChunks(sc, files)
	if err != nil {
		return ceiling{}, err
	}
	dir := filepath.Join(r.tmp, "durable-chunks-"+sc.ID)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ceiling{}, err
	}
	defer os.RemoveAll(dir)
	syncDisk()
	d, err := writeChunksDurably(dir, chunks, sc.InFlight(), sc.ChunkSize)
	if err != nil {
		return ceiling{}, err
	}
	return ceiling{MiBps: mibps(sc.Bytes(), d), Wall: d}, nil
}

// fileChunk is one chunk of one file: bytes [Off, End) of File.
type fileChunk struct {
	File     *benchFile
	Off, End int64
}

// fileChunks lists the files' chunks in file order, with the boundaries the
// client uses for them (flowclient's geometry with the scenario's options).
func fileChunks(sc Scenario, files []*benchFile) ([]fileChunk, error) {
	var out []fileChunk
	for _, f := range files {
		g, err := flowclient.NewGeometry(sc.options(f.Index, f.ID), f.Src.Size, f.Name)
		if err != nil {
			return nil, err
		}
		for n := 1; n <= g.TotalChunks; n++ {
			off, end := g.Bounds(n)
			out = append(out, fileChunk{f, off, end})
		}
	}
	return out, nil
}

// writeChunksDurably writes the chunks, inFlight at a time and taken in
// order, each into the file under dir named as its file, and returns how
// long that took. Each writer has an aligned buffer of chunkSize bytes.
func writeChunksDurably(dir string, chunks []fileChunk, inFlight int, chunkSize int64) (time.Duration, error) {
	queue := make(chan fileChunk, len(chunks))
	for _, c := range chunks {
		queue <- c
	}
	close(queue)
	// Each file gets its blocks first, as the store reserves them ahead of
	// the chunks: direct writes into allocated blocks run side by side,
	// past the end of a file they wait for each other.
	for _, c := range chunks {
		if c.Off == 0 {
			if err := preallocate(filepath.Join(dir, c.File.Name), c.File.Src.Size); err != nil {
				return 0, err
			}
		}
	}
	errs := make(chan error, inFlight)
	start := time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			buf := alignedBuffer(chunkSize)
			for c := range queue {
				p := buf[:c.End-c.Off]
				c.File.Src.ReadAt(p, c.Off)
				if err := writeDurably(filepath.Join(dir, c.File.Name), p, c.Off); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	return d, <-errs // the first error, if any
}

// writeDurably writes p at off in the file at path (created if need be) and
// fdatasyncs the file: the I/O the server's store does for a chunk. The
// whole blocks go with O_DIRECT in one write; what does not fill a block
// (the end of a file), or a chunk at an unaligned offset, goes through the
// page cache, as in the store. p must be aligned (alignedBuffer).
func writeDurably(path string, p []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|syscall.O_DIRECT, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	whole := len(p) &^ (directAlign - 1)
	if off%directAlign != 0 {
		whole = 0
	}
	if whole > 0 {
		if _, err := f.WriteAt(p[:whole], off); err != nil {
			return err
		}
	}
	if whole < len(p) {
		if err := writeBuffered(path, p[whole:], off+int64(whole)); err != nil {
			return err
		}
	}
	// fdatasync through either descriptor flushes the file, page cache
	// included.
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: path, Err: err}
	}
	return f.Close()
}

// preallocate creates the file at path with blocks for size bytes.
func preallocate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if size > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
			return &os.PathError{Op: "fallocate", Path: path, Err: err}
		}
	}
	return f.Close()
}

// writeBuffered writes p at off in the file at path through the page cache.
func writeBuffered(path string, p []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		return err
	}
	return f.Close()
}

// O_DIRECT wants buffers, offsets and lengths aligned to the device's
// logical block size; 4096 is the largest in common use and a multiple of
// the smaller ones.
const directAlign = 4096

// alignedBuffer is n bytes starting at a multiple of directAlign.
func alignedBuffer(n int64) []byte {
	raw := make([]byte, n+directAlign)
	pad := int((directAlign - uintptr(unsafe.Pointer(&raw[0]))%directAlign) % directAlign)
	return raw[pad : pad+int(n)]
}

// syncDisk flushes dirty pages left by the previous step, so that its
// write-back does not land in the next measurement.
func syncDisk() { syscall.Sync() }

func mibps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / float64(mib) / d.Seconds()
}

// uploadAndMeasure uploads the scenario's files to srv, waits up to wait for
// every completion event, records the upload, the server's peak RSS and its
// CPU time in res, and returns the events in the order of files.
func (r *runner) uploadAndMeasure(ctx context.Context, srv *child, sc Scenario, files []*benchFile, res *Result, wait time.Duration) ([]upload.Event, error) {
	run, err := uploadAll(ctx, srv.URL, sc, files)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, srv.tail())
	}
	r.step("uploaded in %s", run.Wall().Round(time.Millisecond))
	evs, err := r.events.wait(ctx, files, wait)
	if err != nil {
		return nil, fmt.Errorf("waiting for completion: %w\n%s", err, srv.tail())
	}
	if res.PeakRSS, err = srv.PeakRSS(); err != nil {
		return nil, err
	}
	if res.CPU, err = srv.CPUTime(); err != nil {
		return nil, err
	}
	res.setUpload(run, evs)
	return evs, nil
}
