package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/s3store"
)

// awsEnv is MinIO and dynalite, with the bucket and table every S3
// scenario uses, and an S3 client (the SDK's defaults, as the server's) for
// the ceilings and for reading finished files back.
type awsEnv struct {
	servers *localaws.Servers
	env     []string // what points the SDK (in any process) at them
	bucket  string
	table   string
	s3      *s3.Client
}

func startAWS(ctx context.Context, tmp string, log io.Writer) (*awsEnv, error) {
	start, cancel := context.WithTimeout(ctx, 20*time.Minute) // a first run builds MinIO
	defer cancel()
	servers, err := localaws.Start(start, localaws.Options{DataDir: filepath.Join(tmp, "minio"), Log: log})
	if err != nil {
		return nil, err
	}
	a := &awsEnv{servers: servers, env: servers.Env(), bucket: "flowgate-bench", table: "flowgate-bench"}
	// This process's SDK clients, and every child, read the endpoints and
	// credentials from the environment, as on AWS.
	servers.SetEnv()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		a.stop()
		return nil, err
	}
	a.s3 = s3store.NewClient(cfg)
	acfg, err := awsdeploy.Load(a.getenv(nil))
	if err != nil {
		a.stop()
		return nil, err
	}
	if err := awsdeploy.NewWithAWS(acfg, cfg, nil).CreateResources(ctx); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

// serverEnv is the environment of a process on the AWS path.
func (a *awsEnv) serverEnv(extra ...string) []string {
	env := append([]string(nil), a.env...)
	env = append(env, "FLOWGATE_BUCKET="+a.bucket, "FLOWGATE_TABLE="+a.table, "FLOWGATE_LOG_LEVEL=warn")
	return append(env, extra...)
}

// getenv reads serverEnv, then extra, then this process's environment.
func (a *awsEnv) getenv(extra map[string]string) func(string) string {
	m := map[string]string{}
	for _, kv := range a.serverEnv() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		if v, ok := m[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
}

func (a *awsEnv) stop() { a.servers.Stop() }

func (a *awsEnv) describe() string {
	return fmt.Sprintf("MinIO %s (TLS, single drive on the same disk), dynalite %s (Node.js %s)",
		localaws.MinIOVersion, localaws.DynaliteVersion, nodeVersion())
}

// runS3 measures one scenario on the AWS code path, with its ceilings
// measured against the same MinIO just before it and again just after it.
func (r *runner) runS3(ctx context.Context, sc Scenario) (*Result, error) {
	a := r.aws
	res := &Result{Scenario: sc}
	files := makeFiles(sc, r.runID)
	sums(files)
	r.step("files generated and hashed")

	prefix := "ceiling/" + sc.ID + "-" + r.runID + "/"
	ceilings := func(when string) error {
		syncDisk()
		c, err := a.putCeiling(ctx, sc, files, prefix)
		if err != nil {
			return fmt.Errorf("PutObject ceiling: %w", err)
		}
		res.PutCeil = res.PutCeil.or(c)
		var cp ceiling
		if sc.Copy {
			syncDisk()
			if cp, err = a.copyCeiling(ctx, sc, files, prefix); err != nil {
				return fmt.Errorf("copy ceiling: %w", err)
			}
			res.CopyCeil = res.CopyCeil.or(cp)
		}
		if sc.Copy {
			r.step("ceilings %s: PutObject %.0f MiB/s, copy %.0f MiB/s", when, c.MiBps, cp.MiBps)
		} else {
			r.step("ceiling %s: PutObject %.0f MiB/s", when, c.MiBps)
		}
		return a.deletePrefix(ctx, prefix)
	}
	if err := ceilings("before"); err != nil {
		return nil, err
	}

	env := a.serverEnv(roleEnv+"="+roleS3Server, "FLOWGATE_WEBHOOK_URL="+r.events.URL)
	if r.opt.ProfileDir != "" {
		env = append(env, profileEnv+"="+filepath.Join(r.opt.ProfileDir, sc.ID))
	}
	syncDisk()
	srv, err := startServer(ctx, "s3server", r.self, nil, env, r.tmp, filepath.Join(r.tmp, sc.ID+".log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	if err := post(ctx, srv.URL+"/bench/reset"); err != nil {
		return nil, err
	}
	r.step("server started")

	evs, err := r.uploadAndMeasure(ctx, srv, sc, files, res, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	var counts awsCounts
	if err := getJSON(ctx, srv.URL+"/bench/counters", &counts); err != nil {
		return nil, err
	}
	res.Counts = &counts
	r.step("all complete")
	srv.stop()
	r.step("complete; server stopped")

	// Every finished object must be the file that was sent.
	var keys []string
	verify := make(chan error, len(files))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, f := range files {
		ev := evs[i]
		keys = append(keys, ev.Object)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := a.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ev.Bucket), Key: aws.String(ev.Object)})
			if err != nil {
				verify <- fmt.Errorf("read back %s: %w", f.Name, err)
				return
			}
			sum, n, err := hashReader(out.Body)
			out.Body.Close()
			if err != nil {
				verify <- err
				return
			}
			if n != f.Src.Size || sum != f.Sum {
				verify <- fmt.Errorf("%s: the finished object (%d bytes) differs from the file sent (%d bytes)", f.Name, n, f.Src.Size)
			}
		})
	}
	wg.Wait()
	close(verify)
	if err := errors.Join(collect(verify)...); err != nil {
		return nil, err
	}
	res.Verified = len(files)
	r.step("files verified")
	if err := a.deleteKeys(ctx, keys); err != nil {
		return nil, err
	}
	if err := ceilings("after"); err != nil {
		return nil, err
	}
	res.Ceiling, res.CeilingName = res.PutCeil.MiBps, "PutObject"
	return res, nil
}

func collect(c chan error) []error {
	var out []error
	for err := range c {
		out = append(out, err)
	}
	return out
}

// putCeiling is raw PutObject of the scenario's chunks (the same bytes, the
// same sizes) to the same MinIO, with as many requests in flight as the
// scenario's client has. Bodies are streamed as the chunk store streams
// them (not seekable, so the SDK sends them once, with a CRC-64/NVME trailer, as the store does).
// The chunk objects are left under prefix for the copy ceiling.
func (a *awsEnv) putCeiling(ctx context.Context, sc Scenario, files []*benchFile, prefix string) (ceiling, error) {
	type job struct {
		f *benchFile
		n int
	}
	jobs := make(chan job, sc.Chunks())
	for _, f := range files {
		for n := 1; n <= sc.ChunksPerFile(); n++ {
			jobs <- job{f, n}
		}
	}
	close(jobs)
	var (
		mu    sync.Mutex
		lats  []time.Duration
		first error
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range sc.InFlight() {
		wg.Go(func() {
			for j := range jobs {
				off, size := chunkBounds(sc, j.n)
				t := time.Now()
				_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{
					Bucket:            aws.String(a.bucket),
					Key:               aws.String(ceilingChunkKey(prefix, j.f, j.n)),
					Body:              struct{ io.Reader }{io.NewSectionReader(j.f.Src, off, size)},
					ContentLength:     aws.Int64(size),
					ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc64nvme,
				})
				mu.Lock()
				lats = append(lats, time.Since(t))
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if first != nil {
		return ceiling{}, first
	}
	return ceiling{MiBps: mibps(sc.Bytes(), wall), P50: percentile(lats, 50), P99: percentile(lats, 99), Wall: wall}, nil
}

// copyCeiling is a raw stream copy of the same bytes through MinIO: each
// file's chunk objects (left by putCeiling) are read back and sent on as
// the parts of one multipart upload, parts of the chunk store's default
// part size, as many in flight as the chunk store's default concurrency.
// That is what assembly must do with chunks under 5 MiB, without the
// ledger, the checks and the cleanup.
func (a *awsEnv) copyCeiling(ctx context.Context, sc Scenario, files []*benchFile, prefix string) (ceiling, error) {
	start := time.Now()
	for _, f := range files {
		if err := a.streamCopy(ctx, sc, f, prefix); err != nil {
			return ceiling{}, err
		}
	}
	wall := time.Since(start)
	return ceiling{MiBps: mibps(sc.Bytes(), wall), Wall: wall}, nil
}

func (a *awsEnv) streamCopy(ctx context.Context, sc Scenario, f *benchFile, prefix string) error {
	final := prefix + f.Name
	perPart := int(max(1, (s3store.DefaultPartSize+sc.ChunkSize-1)/sc.ChunkSize))
	chunks := sc.ChunksPerFile()
	if chunks <= perPart {
		// One part: a plain PutObject of the streamed chunks.
		_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(a.bucket), Key: aws.String(final),
			Body:              &objectStream{ctx: ctx, a: a, keys: chunkKeys(prefix, f, 1, chunks)},
			ContentLength:     aws.Int64(f.Src.Size),
			ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc64nvme,
		})
		return err
	}
	// With a full-object CRC-64/NVME, as the assembler builds the file.
	up, err := a.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(a.bucket), Key: aws.String(final),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc64nvme, ChecksumType: s3types.ChecksumTypeFullObject,
	})
	if err != nil {
		return err
	}
	type part struct {
		num         int32
		first, last int
	}
	parts := make(chan part)
	go func() {
		defer close(parts)
		for first, num := 1, int32(1); first <= chunks; first, num = first+perPart, num+1 {
			select {
			case parts <- part{num, first, min(first+perPart-1, chunks)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu    sync.Mutex
		done  []s3types.CompletedPart
		first error
	)
	var wg sync.WaitGroup
	for range s3store.DefaultConcurrency {
		wg.Go(func() {
			for p := range parts {
				startOff, _ := chunkBounds(sc, p.first)
				lastOff, lastSize := chunkBounds(sc, p.last)
				out, err := a.s3.UploadPart(ctx, &s3.UploadPartInput{
					Bucket: aws.String(a.bucket), Key: aws.String(final), UploadId: up.UploadId,
					PartNumber:        aws.Int32(p.num),
					Body:              &objectStream{ctx: ctx, a: a, keys: chunkKeys(prefix, f, p.first, p.last)},
					ContentLength:     aws.Int64(lastOff + lastSize - startOff),
					ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc64nvme,
				})
				mu.Lock()
				if err != nil {
					if first == nil {
						first = err
					}
				} else {
					done = append(done, s3types.CompletedPart{PartNumber: aws.Int32(p.num), ETag: out.ETag, ChecksumCRC64NVME: out.ChecksumCRC64NVME})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		a.s3.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(a.bucket), Key: aws.String(final), UploadId: up.UploadId})
		return first
	}
	sort.Slice(done, func(i, j int) bool { return *done[i].PartNumber < *done[j].PartNumber })
	_, err = a.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(a.bucket), Key: aws.String(final), UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done},
		ChecksumType:    s3types.ChecksumTypeFullObject,
	})
	return err
}

// objectStream reads objects one after another, opening each when the
// previous one is used up.
type objectStream struct {
	ctx  context.Context
	a    *awsEnv
	keys []string
	cur  io.ReadCloser
}

func (o *objectStream) Read(p []byte) (int, error) {
	for {
		if o.cur == nil {
			if len(o.keys) == 0 {
				return 0, io.EOF
			}
			out, err := o.a.s3.GetObject(o.ctx, &s3.GetObjectInput{Bucket: aws.String(o.a.bucket), Key: aws.String(o.keys[0])})
			if err != nil {
				return 0, err
			}
			o.keys, o.cur = o.keys[1:], out.Body
		}
		n, err := o.cur.Read(p)
		if err == io.EOF {
			o.cur.Close()
			o.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func chunkBounds(sc Scenario, n int) (off, size int64) {
	off = int64(n-1) * sc.ChunkSize
	return off, min(sc.ChunkSize, sc.FileSize-off)
}

func ceilingChunkKey(prefix string, f *benchFile, n int) string {
	return fmt.Sprintf("%s%s/%08d", prefix, f.Name, n)
}

func chunkKeys(prefix string, f *benchFile, first, last int) []string {
	var out []string
	for n := first; n <= last; n++ {
		out = append(out, ceilingChunkKey(prefix, f, n))
	}
	return out
}

// deletePrefix removes every object under prefix.
func (a *awsEnv) deletePrefix(ctx context.Context, prefix string) error {
	var keys []string
	p := s3.NewListObjectsV2Paginator(a.s3, &s3.ListObjectsV2Input{Bucket: aws.String(a.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return a.deleteKeys(ctx, keys)
}

func (a *awsEnv) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		ids := make([]s3types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			ids[i] = s3types.ObjectIdentifier{Key: aws.String(k)}
		}
		if _, err := a.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(a.bucket), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func post(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
