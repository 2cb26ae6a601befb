package s3store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/faults"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// These tests run against a real MinIO started by localaws; nothing is
// skipped if it cannot start.
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

const MiB = 1 << 20

type env struct {
	client *s3.Client
	in     *faults.Injector
	store  *s3store.Store
	bucket string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := awstest.S3(t)
	in := &faults.Injector{}
	bucket := awstest.Bucket(t, c)
	return &env{
		client: c, in: in, bucket: bucket,
		store: &s3store.Store{Client: faults.S3{API: c, In: in}, Bucket: bucket},
	}
}

// file describes a test upload whose bytes are generated, chunk by chunk,
// from a seed: nothing the size of the file is ever held in memory.
type file struct {
	rec  upload.Record
	seed uint64
}

func newFile(name string, size, chunk int64, forceChunkSize bool) file {
	chunks := int(max(size/chunk, 1)) // flow.js with forceChunkSize false
	if forceChunkSize {
		chunks = int(max((size+chunk-1)/chunk, 1))
	}
	key := upload.UploadKey("", name, size, chunk, chunks)
	return file{
		rec: upload.Record{
			Info: upload.Info{Key: key, Identifier: name, FileName: name, TotalSize: size,
				ChunkSize: chunk, TotalChunks: chunks},
			Generation: fmt.Sprintf("%016x", rand.Uint64()),
			State:      upload.StateAssembling,
		},
		seed: rand.Uint64(),
	}
}

func (f file) chunk(n int) io.Reader {
	_, size := f.rec.ChunkBounds(n)
	return io.LimitReader(rand.NewChaCha8(seedFor(f.seed, n)), size)
}

func seedFor(seed uint64, n int) (s [32]byte) {
	copy(s[:], fmt.Sprintf("%016x%016x", seed, n))
	return s
}

// stage stores every chunk (several at a time) and returns the file's sha256.
func (e *env) stage(t *testing.T, f file) string {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var failed atomic.Value
	for n := 1; n <= f.rec.TotalChunks; n++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := e.store.PutChunk(ctx, f.rec.Info, f.rec.Generation, n, f.chunk(n)); err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("stage: %v", err)
	}
	h := sha256.New()
	for n := 1; n <= f.rec.TotalChunks; n++ {
		io.Copy(h, f.chunk(n))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// check verifies the finished object's bytes, the result, and that nothing
// is left in staging or in multipart uploads.
func (e *env) check(t *testing.T, f file, res upload.Result, sum string) {
	t.Helper()
	want := e.store.FinalKey(f.rec)
	if res.Bucket != e.bucket || res.Object != want || res.Location != "s3://"+e.bucket+"/"+want ||
		res.Size != f.rec.TotalSize || res.ETag == "" {
		t.Fatalf("result = %+v, want object %s of %d bytes", res, want, f.rec.TotalSize)
	}
	out, err := e.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(want)})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	out.Body.Close()
	if err != nil || n != f.rec.TotalSize {
		t.Fatalf("read back %d bytes, err %v; want %d", n, err, f.rec.TotalSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		t.Fatalf("sha256 of the finished object = %s, want %s", got, sum)
	}
	if left := awstest.Keys(t, e.client, e.bucket, "staging/"); len(left) != 0 {
		t.Fatalf("chunks left in staging: %v", left)
	}
	if ups := awstest.Uploads(t, e.client, e.bucket, ""); len(ups) != 0 {
		t.Fatalf("%d multipart uploads left", len(ups))
	}
}

func TestPutChunkRejectsBadBodies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newFile("bad.bin", 3000, 1000, true)
	exists := func(n int) bool {
		_, err := e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.ChunkKey(f.rec.Key, f.rec.Generation, n))})
		return err == nil
	}
	boom := errors.New("client went away")
	for name, body := range map[string]io.Reader{
		"short":   strings.NewReader(strings.Repeat("a", 999)),
		"long":    strings.NewReader(strings.Repeat("a", 1001)),
		"failing": io.MultiReader(strings.NewReader(strings.Repeat("a", 500)), iotestErr{boom}),
	} {
		if err := e.store.PutChunk(ctx, f.rec.Info, f.rec.Generation, 1, body); err == nil {
			t.Errorf("%s body: stored without error", name)
		}
		if exists(1) {
			t.Fatalf("%s body left an object", name)
		}
	}
	// A good body stores; a later failing one leaves the good bytes alone.
	if err := e.store.PutChunk(ctx, f.rec.Info, f.rec.Generation, 1, strings.NewReader(strings.Repeat("g", 1000))); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutChunk(ctx, f.rec.Info, f.rec.Generation, 1, strings.NewReader("x")); err == nil {
		t.Fatal("short body accepted")
	}
	out, err := e.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.ChunkKey(f.rec.Key, f.rec.Generation, 1))})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	if string(b) != strings.Repeat("g", 1000) {
		t.Fatalf("stored chunk changed: %q...", b[:min(len(b), 10)])
	}
	if key := e.store.ChunkKey(f.rec.Key, f.rec.Generation, 7); key != "staging/"+f.rec.Key+"/"+f.rec.Generation+"/00000007" {
		t.Fatalf("chunk key = %s", key)
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

func TestAssembleShapes(t *testing.T) {
	cases := []struct {
		name         string
		size, chunk  int64
		force        bool
		copies, ups  int // expected UploadPartCopy and UploadPart calls
		single, none bool
	}{
		// Small chunks are streamed into 16 MiB parts: 37 MiB -> 16+16+5.
		{name: "small chunks", size: 37*MiB + 123, chunk: MiB, force: true, ups: 3},
		// flow.js default: the last chunk carries the remainder (1.7 MiB here).
		{name: "double last chunk", size: 5*MiB + 700*1024, chunk: MiB, ups: 1},
		// Chunks of 5 MiB and more are copied server-side, one part each;
		// the last one here is 2×chunk-1 bytes.
		{name: "big chunks", size: 3*6*MiB - 1, chunk: 6 * MiB, copies: 2},
		// The last chunk is small (forceChunkSize): copied as the last part.
		{name: "big chunks small last", size: 12 * MiB, chunk: 5 * MiB, force: true, copies: 3},
		{name: "one chunk", size: 3000, chunk: MiB, single: true},
		{name: "empty file", size: 0, chunk: MiB, single: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			f := newFile("My File (1).bin", c.size, c.chunk, c.force)
			sum := e.stage(t, f)
			e.in.Reset()
			res, err := e.store.Assemble(context.Background(), f.rec)
			if err != nil {
				t.Fatal(err)
			}
			e.check(t, f, res, sum)
			copies, ups := e.in.Calls("s3.UploadPartCopy"), e.in.Calls("s3.UploadPart")
			if c.copies > 0 {
				// The pinned MinIO refuses to copy a part into a multipart
				// upload with a checksum algorithm (AWS computes the copied
				// part's checksum): the store tries, and streams the parts
				// instead from the first refusal on (the parts in flight
				// meanwhile try too).
				if copies < 1 || copies > c.copies || ups != c.copies {
					t.Errorf("UploadPartCopy calls = %d, UploadPart calls = %d; want 1 to %d tried and %d streamed", copies, ups, c.copies, c.copies)
				}
			} else if copies != 0 || ups != c.ups {
				t.Errorf("UploadPartCopy calls = %d, UploadPart calls = %d; want 0 and %d", copies, ups, c.ups)
			}
			if single := e.in.Calls("s3.CopyObject") == 1; single != c.single {
				t.Errorf("single-chunk copy = %v, want %v", single, c.single)
			}
			if !strings.HasSuffix(res.Object, "/My File (1).bin") {
				t.Errorf("object key %q does not end in the safe file name", res.Object)
			}
			t.Logf("S3 calls to assemble: %v", e.in.AllCalls())

			// A duplicate trigger finds the work done and changes nothing.
			e.in.Reset()
			again, err := e.store.Assemble(context.Background(), f.rec)
			if err != nil || again != res {
				t.Fatalf("second assembly = %+v, %v; want %+v", again, err, res)
			}
			for _, op := range []string{"s3.CreateMultipartUpload", "s3.CopyObject", "s3.UploadPart", "s3.UploadPartCopy"} {
				if n := e.in.Calls(op); n != 0 {
					t.Errorf("duplicate assembly made %d %s calls", n, op)
				}
			}
			e.check(t, f, res, sum)
		})
	}
}

func TestAssembleMissingOrWrongChunkIsPermanent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newFile("gap.bin", 3*MiB, MiB, true)
	e.stage(t, f)
	_, err := e.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.ChunkKey(f.rec.Key, f.rec.Generation, 2))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.store.Assemble(ctx, f.rec)
	var perm *upload.PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "chunk 2") {
		t.Fatalf("assemble with chunk 2 missing: %v, want a permanent error naming chunk 2", err)
	}
	// A chunk of the wrong size (a different geometry's bytes) is refused too.
	wrong := f.rec.Info
	wrong.TotalSize, wrong.TotalChunks = 5*MiB, 5 // chunk 2 of this has 1 MiB too, so use a short one
	_, err = e.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.ChunkKey(f.rec.Key, f.rec.Generation, 2)),
		Body: strings.NewReader("short")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = e.store.Assemble(ctx, f.rec); !errors.As(err, &perm) {
		t.Fatalf("assemble with a short chunk: %v, want permanent", err)
	}
	if ups := awstest.Uploads(t, e.client, e.bucket, ""); len(ups) != 0 {
		t.Fatalf("%d multipart uploads left after a refused assembly", len(ups))
	}
}

// A crash in the middle of an assembly leaves a multipart upload with some
// parts; the next attempt resumes it, sends only the missing parts, and the
// file comes out whole. A crash after completing, or after deleting the
// chunks, is picked up where it stopped.
func TestAssembleCrashResumes(t *testing.T) {
	for _, step := range []struct {
		name string
		nth  int
	}{
		{"s3.CreateMultipartUpload", 1},
		{"s3.UploadPart", 2},
		{"s3.GetObject", 9},
		{"s3.CompleteMultipartUpload", 1},
		{"s3.HeadObject", 2},
		{"s3.DeleteObjects", 1},
	} {
		t.Run(fmt.Sprintf("%s#%d", step.name, step.nth), func(t *testing.T) {
			e := newEnv(t)
			e.store.PartSize = 5 * MiB
			e.store.Concurrency = 1 // deterministic: parts go in order
			f := newFile("crash.bin", 23*MiB+17, MiB, true)
			sum := e.stage(t, f)
			e.in.Rule = func(s string, nth int) faults.Mode {
				if s == step.name && nth == step.nth {
					return faults.Crash
				}
				return faults.Pass
			}
			_, err := e.store.Assemble(faults.Request(context.Background()), f.rec)
			if !errors.Is(err, faults.ErrCrashed) {
				t.Fatalf("first assembly: %v, want the crash", err)
			}
			partsBefore := e.in.Succeeded("s3.UploadPart")
			e.in.Rule = nil
			e.in.Reset()
			res, err := e.store.Assemble(context.Background(), f.rec)
			if err != nil {
				t.Fatal(err)
			}
			e.check(t, f, res, sum)
			// 23 MiB in 5 MiB parts = 5 parts; the ones done before the crash
			// are not sent again.
			if step.name == "s3.UploadPart" || step.name == "s3.GetObject" {
				if got := e.in.Calls("s3.UploadPart"); got != 5-partsBefore {
					t.Errorf("resumed assembly sent %d parts, want %d (5 minus %d done)", got, 5-partsBefore, partsBefore)
				}
			}
			if got := e.in.Succeeded("s3.CompleteMultipartUpload"); step.name == "s3.CompleteMultipartUpload" && got != 0 {
				t.Errorf("completed the multipart upload again after a crash that followed completion")
			}
		})
	}
}

// A part that keeps failing ends the assembly with an error, and the
// multipart upload is aborted: nothing is left behind.
func TestAssembleFailureAborts(t *testing.T) {
	e := newEnv(t)
	f := newFile("fail.bin", 12*MiB, MiB, true)
	e.store.PartSize = 5 * MiB
	e.stage(t, f)
	e.in.Rule = func(s string, nth int) faults.Mode {
		if s == "s3.UploadPart" && nth >= 2 {
			return faults.Fail
		}
		return faults.Pass
	}
	if _, err := e.store.Assemble(context.Background(), f.rec); !errors.Is(err, faults.ErrInjected) {
		t.Fatalf("assemble = %v, want the injected failure", err)
	}
	if ups := awstest.Uploads(t, e.client, e.bucket, ""); len(ups) != 0 {
		t.Fatalf("%d multipart uploads left after a failed assembly", len(ups))
	}
	if n := e.in.Calls("s3.AbortMultipartUpload"); n != 1 {
		t.Fatalf("AbortMultipartUpload calls = %d, want 1", n)
	}
	if keys := awstest.Keys(t, e.client, e.bucket, "staging/"); len(keys) != f.rec.TotalChunks {
		t.Fatalf("a failed assembly must keep the chunks for a retry; %d left", len(keys))
	}
}

func TestDiscardAndStaged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := newFile("a.bin", 3000, 1000, true), newFile("b.bin", 2000, 1000, true)
	// a2 is a later generation of upload a (started again after its record
	// expired): discarding one generation must leave the other alone.
	a2 := a
	a2.rec.Generation = fmt.Sprintf("%016x", rand.Uint64())
	e.stage(t, a)
	e.stage(t, a2)
	e.stage(t, b)
	staged, err := e.store.Staged(ctx)
	if err != nil || len(staged) != 3 {
		t.Fatalf("staged = %+v %v", staged, err)
	}
	seen := map[[2]string]bool{}
	for _, s := range staged {
		seen[[2]string{s.Key, s.Generation}] = true
		if time.Since(s.Modified) > time.Minute {
			t.Fatalf("staged entry %+v", s)
		}
	}
	for _, f := range []file{a, a2, b} {
		if !seen[[2]string{f.rec.Key, f.rec.Generation}] {
			t.Fatalf("staged = %+v, missing %s generation %s", staged, f.rec.Key, f.rec.Generation)
		}
	}
	if err := e.store.Discard(ctx, a.rec.Key, a.rec.Generation); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Discard(ctx, a.rec.Key, a.rec.Generation); err != nil {
		t.Fatalf("discard is not idempotent: %v", err)
	}
	left := awstest.Keys(t, e.client, e.bucket, "staging/")
	want := map[string]bool{}
	for _, f := range []file{a2, b} {
		for n := 1; n <= f.rec.TotalChunks; n++ {
			want[e.store.ChunkKey(f.rec.Key, f.rec.Generation, n)] = true
		}
	}
	if len(left) != len(want) {
		t.Fatalf("after discarding a's first generation: %v", left)
	}
	for _, k := range left {
		if !want[k] {
			t.Fatalf("after discarding a's first generation, %s is left (all: %v)", k, left)
		}
	}
	if err := e.store.Discard(ctx, "../"+a.rec.Key, a.rec.Generation); err == nil {
		t.Fatal("Discard took a key that is not a hash")
	}
}

// MoveChunk copies a chunk into another generation server-side and removes
// the original.
func TestMoveChunk(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newFile("move.bin", 3000, 1000, true)
	other := fmt.Sprintf("%016x", rand.Uint64())
	sum := e.stage(t, f)
	// Chunk 2 was stored under another generation (its request lost the
	// race to create the record): move it where the record counts it.
	if _, err := e.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.ChunkKey(f.rec.Key, f.rec.Generation, 2))}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutChunk(ctx, f.rec.Info, other, 2, f.chunk(2)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MoveChunk(ctx, f.rec.Info, 2, other, f.rec.Generation); err != nil {
		t.Fatalf("MoveChunk: %v", err)
	}
	if left := awstest.Keys(t, e.client, e.bucket, "staging/"+f.rec.Key+"/"+other+"/"); len(left) != 0 {
		t.Fatalf("the moved chunk is still in its first generation: %v", left)
	}
	res, err := e.store.Assemble(ctx, f.rec)
	if err != nil {
		t.Fatal(err)
	}
	e.check(t, f, res, sum)
	if err := e.store.MoveChunk(ctx, f.rec.Info, 1, other, f.rec.Generation); err == nil {
		t.Fatal("MoveChunk of a chunk that is not there succeeded")
	}
}

// A file over 100 MiB of 1 MiB chunks (1 GiB with FLOWGATE_BIG=1): the
// assembly streams, so the heap stays small whatever the size. Reports
// throughput and peak memory.
func TestAssembleLarge(t *testing.T) {
	size := int64(128 * MiB)
	if os.Getenv("FLOWGATE_BIG") != "" {
		size = 1024 * MiB
	}
	e := newEnv(t)
	f := newFile("large.bin", size, MiB, true)
	start := time.Now()
	sum := e.stage(t, f)
	t.Logf("staged %d MiB in %d chunks in %s", size/MiB, f.rec.TotalChunks, time.Since(start).Round(time.Millisecond))

	runtime.GC()
	resetPeakRSS()
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // sample the heap while assembling
		defer close(done)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	e.in.Reset()
	start = time.Now()
	res, err := e.store.Assemble(context.Background(), f.rec)
	elapsed := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	rss := peakRSS()
	t.Logf("assembled %d MiB in %s: %.0f MB/s; peak heap in use %.1f MiB, peak RSS %.1f MiB; S3 calls %v",
		size/MiB, elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds(),
		float64(peakHeap.Load())/MiB, float64(rss)/MiB, e.in.AllCalls())
	// Bounded memory: the heap in use stays far below the file size (it
	// would be over 128 MiB if parts or the file were buffered).
	if peakHeap.Load() > 64*MiB {
		t.Errorf("peak heap %d MiB while assembling: memory is not bounded", peakHeap.Load()/MiB)
	}
	e.check(t, f, res, sum)
}

// resetPeakRSS clears the kernel's high-water mark of this process's RSS.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads the high-water mark of this process's RSS, in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
