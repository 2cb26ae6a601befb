package s3count_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/sqslocal"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/s3count"
	"github.com/flowgate/flowgate/shared/upload"
)

// The direct data path end to end, in process, on MinIO and dynalite: the
// upload function's handler hands out URLs, a client stores chunks with
// them, the counting function counts what S3 reports, and the re-drive
// counts what S3 never reported.
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

const MiB = 1 << 20

type fixture struct {
	d      *awsdeploy.Deployment
	api    *httptest.Server
	s3     *s3.Client
	http   *http.Client
	bucket string
}

func newFixture(t *testing.T, extra map[string]string) *fixture {
	t.Helper()
	c := awstest.S3(t)
	f := &fixture{s3: c, http: awstest.HTTP(t), bucket: awstest.Bucket(t, c)}
	env := map[string]string{
		"FLOWGATE_BUCKET": f.bucket, "FLOWGATE_TABLE": awstest.Table(t, awstest.DynamoDB(t)),
		"FLOWGATE_DATA_PATH": "direct", "FLOWGATE_NAMESPACE_HEADER": "X-User",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := awsdeploy.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f.d, err = awsdeploy.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(f.d.Handler())
	t.Cleanup(f.api.Close)
	return f
}

// file is a test file as a page would send it with flow.js.
type file struct {
	id, name string
	data     []byte
	chunk    int64
	user     string
}

func newFile(user, id string, size, chunk int64) file {
	data := make([]byte, size)
	rand.Read(data)
	return file{id: id, name: "photo " + id + ".jpg", data: data, chunk: chunk, user: user}
}

func (fl file) chunks() int { return int(max(int64(len(fl.data))/fl.chunk, 1)) }

func (fl file) info() upload.Info {
	return upload.Info{TotalSize: int64(len(fl.data)), ChunkSize: fl.chunk, TotalChunks: fl.chunks()}
}

func (fl file) bytesOf(n int) []byte {
	off, size := fl.info().ChunkBounds(n)
	return fl.data[off : off+size]
}

// params are flow.js's fields for chunk n (FlowChunk.getParams), in its order.
func (fl file) params(n int) [][2]string {
	_, size := fl.info().ChunkBounds(n)
	return [][2]string{
		{"flowChunkNumber", fmt.Sprint(n)}, {"flowChunkSize", fmt.Sprint(fl.chunk)},
		{"flowCurrentChunkSize", fmt.Sprint(size)}, {"flowTotalSize", fmt.Sprint(len(fl.data))},
		{"flowIdentifier", fl.id}, {"flowFilename", fl.name}, {"flowRelativePath", "dir/" + fl.name},
		{"flowTotalChunks", fmt.Sprint(fl.chunks())},
	}
}

func (fl file) query(n int) string {
	q := url.Values{}
	for _, p := range fl.params(n) {
		q.Set(p[0], p[1])
	}
	return q.Encode()
}

type urlAnswer struct {
	Chunk   int               `json:"chunk"`
	Present bool              `json:"present"`
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// urls asks for the URLs of chunks; the answer's status and chunks.
func (f *fixture) urls(t *testing.T, fl file, body map[string]any) (int, map[int]urlAnswer, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", f.api.URL+"/upload/urls", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User", fl.user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct{ Chunks []urlAnswer }
	json.Unmarshal(raw, &out)
	m := map[int]urlAnswer{}
	for _, a := range out.Chunks {
		m[a.Chunk] = a
	}
	return resp.StatusCode, m, string(raw)
}

// ask is what the page sends for chunks ns.
func (fl file) ask(ns ...int) map[string]any {
	shared := map[string]any{}
	for _, p := range fl.params(1)[1:] {
		if p[0] != "flowCurrentChunkSize" {
			shared[p[0]] = p[1]
		}
	}
	var chunks []map[string]any
	for _, n := range ns {
		_, size := fl.info().ChunkBounds(n)
		chunks = append(chunks, map[string]any{
			"flowChunkNumber": n, "flowCurrentChunkSize": size,
			"checksumCrc64nvme": checksum.Encode(checksum.CRC64NVME(fl.bytesOf(n))),
		})
	}
	return map[string]any{"fields": shared, "contentType": "image/jpeg", "chunks": chunks}
}

func (f *fixture) mustURLs(t *testing.T, fl file, ns ...int) map[int]urlAnswer {
	t.Helper()
	status, m, raw := f.urls(t, fl, fl.ask(ns...))
	if status != 200 {
		t.Fatalf("URLs for %v: %d %s", ns, status, raw)
	}
	return m
}

// put sends chunk n with its URL as flow.js does (octet: the fields
// appended to the URL, the URL's headers, the file's type).
func (f *fixture) put(t *testing.T, fl file, n int, a urlAnswer) int {
	t.Helper()
	req, _ := http.NewRequest(a.Method, a.URL+"&"+fl.query(n), bytes.NewReader(fl.bytesOf(n)))
	for k, v := range a.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// test is flow.js's test GET of chunk n.
func (f *fixture) test(t *testing.T, fl file, n int) int {
	t.Helper()
	req, _ := http.NewRequest("GET", f.api.URL+"/upload?"+fl.query(n), nil)
	req.Header.Set("X-User", fl.user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (f *fixture) status(t *testing.T, fl file) upload.Status {
	t.Helper()
	req, _ := http.NewRequest("GET", f.api.URL+"/upload/status?"+fl.query(1), nil)
	req.Header.Set("X-User", fl.user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st upload.Status
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// key is the object key an answer's URL stores to.
func (f *fixture) key(t *testing.T, a urlAnswer) string {
	t.Helper()
	u, err := url.Parse(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := strings.CutPrefix(u.Path, "/"+f.bucket+"/")
	if !ok {
		t.Fatalf("URL %s is not of bucket %s", a.URL, f.bucket)
	}
	return k
}

// notification is S3's ObjectCreated event for an object, as Lambda
// receives it (the key URL-encoded form-style).
func (f *fixture) notification(key string, size int64) events.S3Event {
	var ev events.S3Event
	b, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano), "eventName": "ObjectCreated:Put",
		"s3": map[string]any{"s3SchemaVersion": "1.0", "bucket": map[string]any{"name": f.bucket, "arn": "arn:aws:s3:::" + f.bucket},
			"object": map[string]any{"key": url.QueryEscape(key), "size": size, "sequencer": "0055AED6DCD90281E5"}},
	}}})
	json.Unmarshal(b, &ev)
	return ev
}

func (f *fixture) notify(t *testing.T, key string, size int64) s3count.Report {
	t.Helper()
	rep, err := f.d.CountHandler().Handle(context.Background(), f.notification(key, size))
	if err != nil {
		t.Fatalf("count %s: %v", key, err)
	}
	return rep
}

// assemble runs the assembly the stream would start, and checks the file.
func (f *fixture) assemble(t *testing.T, fl file) {
	t.Helper()
	key := upload.UploadKey("user:"+fl.user, fl.id, int64(len(fl.data)), fl.chunk, fl.chunks()) // FLOWGATE_NAMESPACE_HEADER's namespace
	if err := f.d.Pipeline("test").Run(context.Background(), key); err != nil {
		t.Fatalf("assemble: %v", err)
	}
	st := f.status(t, fl)
	if st.State != upload.StateComplete || st.CRC64NVME != checksum.Encode(checksum.CRC64NVME(fl.data)) {
		t.Fatalf("status after assembly: %+v", st)
	}
	loc := strings.TrimPrefix(st.Location, "s3://"+f.bucket+"/")
	out, err := f.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(loc)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got, _ := io.ReadAll(out.Body)
	if !bytes.Equal(got, fl.data) {
		t.Fatal("the finished file is not the file sent")
	}
	if aws.ToString(out.ContentType) != "image/jpeg" {
		t.Errorf("the finished file's type is %q", aws.ToString(out.ContentType))
	}
}

// A file sent with URLs: every chunk PUT to the bucket, counted when S3
// reports it (twice, as S3 may), assembled, intact and with its checksum;
// its chunks' PUTs again change nothing.
func TestDirectUpload(t *testing.T) {
	f := newFixture(t, nil)
	fl := newFile("alice", "a1", 3*MiB+100, MiB) // 3 chunks, the last one 1 MiB + 100
	if st := f.status(t, fl); st.State != upload.StateUnknown {
		t.Fatalf("status before anything: %+v", st)
	}
	urls := f.mustURLs(t, fl, 1, 2, 3)
	if st := f.status(t, fl); st.State != upload.StateReceiving || st.Received != 0 {
		t.Fatalf("status once URLs are out: %+v (the record exists before any chunk)", st)
	}
	for n := 1; n <= 3; n++ {
		if f.test(t, fl, n) != 204 {
			t.Fatalf("test GET of chunk %d before it was sent", n)
		}
		if s := f.put(t, fl, n, urls[n]); s != 200 {
			t.Fatalf("PUT chunk %d: %d", n, s)
		}
	}
	for n := 1; n <= 3; n++ {
		key := f.key(t, urls[n])
		_, size := fl.info().ChunkBounds(n)
		for range 2 { // at least once: a duplicate changes nothing
			if rep := f.notify(t, key, size); rep.Counted+rep.Done != 1 {
				t.Fatalf("chunk %d: %+v", n, rep)
			}
		}
	}
	if st := f.status(t, fl); st.State != upload.StateReady {
		t.Fatalf("status after every chunk was counted: %+v", st)
	}
	if s := f.put(t, fl, 2, urls[2]); s != 412 {
		t.Errorf("the same PUT again: %d, want 412 (flow.js takes it as success)", s)
	}
	f.assemble(t, fl)
	// A late duplicate notification for a chunk of a finished upload.
	if rep := f.notify(t, f.key(t, urls[1]), MiB); rep.Done+rep.Missing != 1 {
		t.Errorf("a notification after assembly: %+v", rep)
	}
	// Asked again, everything is present.
	for n, a := range f.mustURLs(t, fl, 1, 2, 3) {
		if !a.Present || a.URL != "" {
			t.Errorf("chunk %d of a finished upload: %+v", n, a)
		}
	}
}

// A chunk stored whose notification has not come (or never will) reads as
// present at the test GET, which counts it; one not stored reads as
// missing. The re-drive counts what nobody reported once the URLs ran out.
func TestUnreportedChunks(t *testing.T) {
	f := newFixture(t, nil)
	fl := newFile("bob", "b1", 4*MiB, MiB)
	urls := f.mustURLs(t, fl, 1, 2, 3, 4)
	for n := 1; n <= 3; n++ {
		if s := f.put(t, fl, n, urls[n]); s != 200 {
			t.Fatalf("PUT chunk %d: %d", n, s)
		}
	}
	if s := f.test(t, fl, 1); s != 200 {
		t.Fatalf("test GET of a stored, unreported chunk: %d, want 200", s)
	}
	if s := f.test(t, fl, 4); s != 204 {
		t.Fatalf("test GET of a chunk never stored: %d, want 204", s)
	}
	if st := f.status(t, fl); st.Received != 1 {
		t.Fatalf("the test GET counted %d chunks, want 1: %+v", st.Received, st)
	}

	rc := f.d.Recounter()
	rep, err := rc.Recount(context.Background(), time.Now())
	if err != nil || rep.Checked != 0 {
		t.Fatalf("a check while the URLs live: %+v, %v", rep, err)
	}
	later := time.Now().Add(awsdeployURLLife + upload.DirectCheckDelay + time.Minute)
	rep, err = rc.Recount(context.Background(), later)
	if err != nil || rep.Checked != 1 || rep.Recounted != 2 {
		t.Fatalf("the check once the URLs ran out: %+v, %v; want 2 chunks counted", rep, err)
	}
	if st := f.status(t, fl); st.State != upload.StateReceiving || st.Received != 3 {
		t.Fatalf("after the check: %+v", st)
	}
	// The client comes back: the last chunk, whose notification is lost too.
	urls = f.mustURLs(t, fl, 4)
	if s := f.put(t, fl, 4, urls[4]); s != 200 {
		t.Fatal(s)
	}
	if rep, _ := rc.Recount(context.Background(), time.Now()); rep.Checked != 0 {
		t.Fatalf("a check right after new URLs: %+v", rep)
	}
	rep, err = rc.Recount(context.Background(), later)
	if err != nil || rep.Recounted != 1 {
		t.Fatalf("the next check: %+v, %v", rep, err)
	}
	if st := f.status(t, fl); st.State != upload.StateReady {
		t.Fatalf("after the last check: %+v", st)
	}
	f.assemble(t, fl)
	if rep, _ := rc.Recount(context.Background(), later.Add(24*time.Hour)); rep.Checked != 0 {
		t.Fatalf("a ready upload was checked: %+v", rep)
	}
}

const awsdeployURLLife = 15 * time.Minute

// An object at a chunk's key that is not the chunk (written some other
// way: another size, no CRC-64/NVME) is deleted and not counted; keys that
// are no chunk's are left alone.
func TestWrongObjects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	fl := newFile("carol", "c1", 2*MiB, MiB)
	urls := f.mustURLs(t, fl, 1, 2)
	k1, k2 := f.key(t, urls[1]), f.key(t, urls[2])
	put := func(key string, b []byte, alg types.ChecksumAlgorithm) {
		if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key),
			Body: bytes.NewReader(b), ChecksumAlgorithm: alg}); err != nil {
			t.Fatal(err)
		}
	}
	put(k1, fl.bytesOf(1)[:100], types.ChecksumAlgorithmCrc64nvme) // short
	put(k2, fl.bytesOf(2), types.ChecksumAlgorithmCrc32)           // no CRC-64/NVME
	for _, k := range []string{k1, k2} {
		if rep := f.notify(t, k, 0); rep.Refused != 1 {
			t.Fatalf("%s: %+v, want refused", k, rep)
		}
	}
	if keys := awstest.Keys(t, f.s3, f.bucket, "staging/"); len(keys) != 0 {
		t.Fatalf("wrong objects stayed: %v", keys)
	}
	if st := f.status(t, fl); st.Received != 0 {
		t.Fatalf("a wrong object was counted: %+v", st)
	}
	odd := strings.TrimSuffix(k1, "00000001") + "notachunk"
	put(odd, []byte("x"), types.ChecksumAlgorithmCrc64nvme)
	if rep := f.notify(t, odd, 1); rep.Ignored != 1 {
		t.Fatalf("an object that is no chunk's: %+v", rep)
	}
	if keys := awstest.Keys(t, f.s3, f.bucket, "staging/"); len(keys) != 1 {
		t.Fatalf("an object that is no chunk's was removed: %v", keys)
	}
	ev := f.notification(k1, 1)
	ev.Records[0].S3.Bucket.Name = "another-bucket"
	if rep, err := f.d.CountHandler().Handle(ctx, ev); err != nil || rep.Ignored != 1 {
		t.Fatalf("another bucket's event: %+v, %v", rep, err)
	}
	// The chunks sent properly afterwards are taken (the wrong ones are
	// gone, so the URLs' If-None-Match lets them in).
	for n := 1; n <= 2; n++ {
		if s := f.put(t, fl, n, urls[n]); s != 200 {
			t.Fatalf("PUT chunk %d: %d", n, s)
		}
		f.notify(t, f.key(t, urls[n]), 0)
	}
	f.assemble(t, fl)
}

// A URL request is checked as a chunk POST is, for every chunk, before any
// URL exists, and makes the caller's own upload only.
func TestURLRequestsChecked(t *testing.T) {
	f := newFixture(t, map[string]string{"FLOWGATE_ALLOWED_TYPES": "image/*", "FLOWGATE_MAX_FILE_SIZE": "8MiB"})
	fl := newFile("dave", "d1", 2*MiB, MiB)
	mutate := func(edit func(body map[string]any)) map[string]any {
		b := fl.ask(1, 2)
		edit(b)
		return b
	}
	chunk := func(b map[string]any, i int) map[string]any { return b["chunks"].([]map[string]any)[i] }
	cases := []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"no chunks", mutate(func(b map[string]any) { b["chunks"] = []map[string]any{} }), 400},
		{"no checksum", mutate(func(b map[string]any) { delete(chunk(b, 0), "checksumCrc64nvme") }), 400},
		{"a SHA-256 instead", mutate(func(b map[string]any) {
			delete(chunk(b, 0), "checksumCrc64nvme")
			chunk(b, 0)["checksumSha256"] = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
		}), 400},
		{"a field flow.js does not append", mutate(func(b map[string]any) { chunk(b, 0)["extra"] = "1" }), 400},
		{"a wrong current chunk size", mutate(func(b map[string]any) { chunk(b, 1)["flowCurrentChunkSize"] = 5 }), 400},
		{"two files", mutate(func(b map[string]any) { chunk(b, 1)["flowIdentifier"] = "other" }), 400},
		{"a chunk twice", mutate(func(b map[string]any) { chunk(b, 1)["flowChunkNumber"] = 1 }), 400},
		{"a path that climbs", mutate(func(b map[string]any) { b["fields"].(map[string]any)["flowRelativePath"] = "../x.jpg" }), 400},
		{"a float", mutate(func(b map[string]any) { chunk(b, 0)["flowChunkNumber"] = 1.5 }), 400},
		{"too large a file", mutate(func(b map[string]any) {
			b["fields"].(map[string]any)["flowTotalSize"] = "9437184"
			b["fields"].(map[string]any)["flowTotalChunks"] = "9"
		}), 413},
		{"a type not taken", mutate(func(b map[string]any) {
			b["fields"].(map[string]any)["flowFilename"] = "x.exe"
			b["contentType"] = "application/x-msdownload"
		}), 415},
		{"101 chunks", mutate(func(b map[string]any) {
			var many []map[string]any
			for range 101 {
				many = append(many, chunk(b, 0))
			}
			b["chunks"] = many
		}), 413},
	}
	for _, c := range cases {
		if status, _, raw := f.urls(t, fl, c.body); status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, raw, c.status)
		}
	}
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"not JSON":          {"flowChunkNumber=1", 400},
		"an array":          {"[]", 400},
		"an unknown member": {`{"fields": {}, "chunks": [{}], "key": "staging/x"}`, 400},
		"a field an object": {`{"fields": {"flowIdentifier": {"a": 1}}, "chunks": [{}]}`, 400},
		"a body too large":  {`{"fields": {"flowFilename": "` + strings.Repeat("a", 300<<10) + `"}, "chunks": [{}]}`, 413},
	} {
		req, _ := http.NewRequest("POST", f.api.URL+"/upload/urls", strings.NewReader(c.body))
		req.Header.Set("X-User", fl.user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, c.status)
		}
	}
	if st := f.status(t, fl); st.State != upload.StateUnknown {
		t.Fatalf("refused requests made a record: %+v", st)
	}

	// Two users, one identifier: two uploads, and neither sees the other's.
	mine := f.mustURLs(t, fl, 1, 2)
	theirs := fl
	theirs.user = "mallory"
	other := f.mustURLs(t, theirs, 1, 2)
	if f.key(t, mine[1]) == f.key(t, other[1]) {
		t.Fatal("two namespaces got URLs for the same object")
	}
	if s := f.put(t, fl, 1, mine[1]); s != 200 {
		t.Fatal(s)
	}
	f.notify(t, f.key(t, mine[1]), MiB)
	if f.test(t, theirs, 1) != 204 || f.test(t, fl, 1) != 200 {
		t.Fatal("a chunk of one namespace's upload shows in the other's")
	}

	proxy := newFixture(t, map[string]string{"FLOWGATE_DATA_PATH": "proxy"})
	if status, _, _ := proxy.urls(t, fl, fl.ask(1)); status != 409 {
		t.Errorf("URLs from a server whose data path is proxy: %d, want 409", status)
	}
}

// A chunk stored under a generation that is not the record's (its record
// expired and the upload began again) is left alone: its own generation's
// removal takes it.
func TestStaleGenerationLeftAlone(t *testing.T) {
	f := newFixture(t, map[string]string{"FLOWGATE_EXPIRY": "1h", "FLOWGATE_DIRECT_URL_LIFE": "1m"})
	fl := newFile("erin", "e1", 2*MiB, MiB)
	old := f.mustURLs(t, fl, 1)
	if s := f.put(t, fl, 1, old[1]); s != 200 {
		t.Fatal(s)
	}
	clock := f.d.Ledger
	clock.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // the record is dead
	fresh := f.mustURLs(t, fl, 1, 2)
	if f.key(t, fresh[1]) == f.key(t, old[1]) {
		t.Fatal("a dead upload begun again kept its generation")
	}
	if rep := f.notify(t, f.key(t, old[1]), MiB); rep.Stale != 1 {
		t.Fatalf("a chunk of the dead generation: %+v", rep)
	}
	if st := f.status(t, fl); st.Received != 0 {
		t.Fatalf("a chunk of the dead generation was counted: %+v", st)
	}
}

// The events the counting function gave up (Lambda's on-failure records,
// or the bare events a rule's dead-letter queue gets) are counted by the
// re-drive, and leave the queue; a message that holds no event leaves it
// too.
func TestFailureQueueReplayed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	fl := newFile("frank", "f1", 2*MiB, MiB)
	urls := f.mustURLs(t, fl, 1, 2)
	for n := 1; n <= 2; n++ {
		if s := f.put(t, fl, n, urls[n]); s != 200 {
			t.Fatal(s)
		}
	}
	sq := sqslocal.New(sqslocal.Options{})
	srv := httptest.NewServer(sq)
	t.Cleanup(srv.Close)
	sq.SetEndpoint(srv.URL)
	queueURL, _, err := sq.CreateQueue("count-failures")
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(awstest.Config(t), func(o *sqs.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	first, _ := json.Marshal(f.notification(f.key(t, urls[1]), MiB))
	second, _ := json.Marshal(f.notification(f.key(t, urls[2]), MiB))
	for _, body := range []string{
		`{"version":"1.0","timestamp":"2026-01-01T00:00:00.000Z","requestContext":{"requestId":"r1","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:count:$LATEST","condition":"RetriesExhausted","approximateInvokeCount":3},"requestPayload":` + string(first) + `,"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"responsePayload":{"errorMessage":"ledger unavailable"}}`,
		string(second),
		`{"not": "an event"}`,
	} {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	rc := f.d.Recounter()
	rc.Failures = &s3count.Failures{Queue: client, QueueURL: queueURL}
	rep, err := rc.Recount(ctx, time.Now())
	if err != nil || rep.Replayed != 2 {
		t.Fatalf("replay: %+v, %v", rep, err)
	}
	if st := f.status(t, fl); st.State != upload.StateReady {
		t.Fatalf("after the replay: %+v", st)
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 0 {
		t.Fatalf("messages left on the queue: %d, %v", len(out.Messages), err)
	}
}
