package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// encodeURIComponent is JavaScript's, which flow.js applies to every field
// it appends to a URL: all but A-Z a-z 0-9 - _ . ! ~ * ' ( ) as %XX of UTF-8.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// appendFields appends fields to u as flow.js 2.14.1 does in octet mode.
func appendFields(u string, fields []upload.Field) string {
	var parts []string
	for _, f := range fields {
		parts = append(parts, encodeURIComponent(f.Name)+"="+encodeURIComponent(f.Value))
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + strings.Join(parts, "&")
}

// flowFields are the fields flow.js appends for chunk n.
func flowFields(info upload.Info, n int) []upload.Field {
	_, size := info.ChunkBounds(n)
	return []upload.Field{
		{Name: "flowChunkNumber", Value: fmt.Sprint(n)}, {Name: "flowChunkSize", Value: fmt.Sprint(info.ChunkSize)},
		{Name: "flowCurrentChunkSize", Value: fmt.Sprint(size)}, {Name: "flowTotalSize", Value: fmt.Sprint(info.TotalSize)},
		{Name: "flowIdentifier", Value: info.Identifier}, {Name: "flowFilename", Value: info.FileName},
		{Name: "flowRelativePath", Value: info.RelativePath}, {Name: "flowTotalChunks", Value: fmt.Sprint(info.TotalChunks)},
	}
}

// signedAgo presigns as if it were ago earlier: an expired URL without
// waiting for one to expire.
type signedAgo struct {
	v4.HTTPPresigner
	ago time.Duration
}

func (s signedAgo) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, t time.Time, opts ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return s.HTTPPresigner.PresignHTTP(ctx, creds, r, payloadHash, service, region, t.Add(-s.ago), opts...)
}

type directEnv struct {
	*env
	http *http.Client
	info upload.Info
	gen  string
	data []byte
}

func newDirectEnv(t *testing.T, ns string) *directEnv {
	t.Helper()
	e := newEnv(t)
	e.store.Presign = s3.NewPresignClient(e.client)
	const size, chunk = 2*MiB + 123, MiB
	info := upload.Info{
		Namespace: ns, Identifier: "id-" + ns, FileName: "naïve résumé (1).pdf", RelativePath: "docs/a+b&c=d;e/naïve résumé (1).pdf",
		TotalSize: size, ChunkSize: chunk, TotalChunks: 2,
	}
	info.Key = upload.UploadKey(ns, info.Identifier, size, chunk, 2)
	data := make([]byte, size)
	rand.Read(data)
	return &directEnv{env: e, http: awstest.HTTP(t), info: info, gen: "0123456789abcdef", data: data}
}

func (d *directEnv) chunk(n int) []byte {
	off, size := d.info.ChunkBounds(n)
	return d.data[off : off+size]
}

func crcOfBytes(b []byte) string { return checksum.Encode(checksum.CRC64NVME(b)) }

// put sends body to u with the URL's headers (and extra ones), as a
// browser would, and returns the status and S3's error code.
func (d *directEnv) put(t *testing.T, method, u string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/pdf") // the file's type, as a browser sends it, unsigned
	resp, err := d.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if i := bytes.Index(b, []byte("<Code>")); i >= 0 {
		code = string(b[i+6:])
		code = code[:strings.Index(code, "<")]
	}
	return resp.StatusCode, code
}

// A presigned chunk URL does one thing: PUT exactly that chunk, with the
// fields flow.js appends, once, before it expires.
func TestPresignedChunkScope(t *testing.T) {
	ctx := context.Background()
	d := newDirectEnv(t, "user:alice")
	n := 1
	fields := flowFields(d.info, n)
	crc := crcOfBytes(d.chunk(n))
	cu, err := d.store.SignChunk(ctx, d.info, d.gen, n, fields, crc, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cu.URL, "flowIdentifier") {
		t.Fatalf("the URL handed out keeps the fields flow.js appends: %s", cu.URL)
	}
	if cu.Headers["If-None-Match"] != "*" || cu.Headers["X-Amz-Checksum-Crc64nvme"] != crc {
		t.Fatalf("headers to send: %v", cu.Headers)
	}
	if _, ok := cu.Headers["Authorization"]; ok {
		t.Fatal("an Authorization header to send")
	}
	t.Logf("headers to send: %v", cu.Headers)
	full := appendFields(cu.URL, fields)
	key := d.store.ChunkKey(d.info.Key, d.gen, n)

	changed := append([]upload.Field(nil), fields...)
	changed[0].Value = "2"
	other := upload.UploadKey("user:bob", d.info.Identifier, d.info.TotalSize, d.info.ChunkSize, d.info.TotalChunks)
	refused := []struct {
		name    string
		method  string
		url     string
		headers map[string]string
		body    []byte
		status  int
	}{
		{"without the flow fields", "PUT", cu.URL, cu.Headers, d.chunk(n), 403},
		{"with a field changed", "PUT", appendFields(cu.URL, changed), cu.Headers, d.chunk(n), 403},
		{"with a field more", "PUT", appendFields(full, []upload.Field{{Name: "checksumSha256", Value: "x"}}), cu.Headers, d.chunk(n), 403},
		{"with a field twice", "PUT", appendFields(full, fields[:1]), cu.Headers, d.chunk(n), 403},
		{"a byte short", "PUT", full, cu.Headers, d.chunk(n)[1:], 403},
		{"a byte long", "PUT", full, cu.Headers, append(append([]byte(nil), d.chunk(n)...), 0), 403},
		{"without If-None-Match", "PUT", full, map[string]string{"X-Amz-Checksum-Crc64nvme": crc}, d.chunk(n), 400},
		{"other bytes of the same size (checksum)", "PUT", full, cu.Headers, d.chunk(2)[:len(d.chunk(n))], 400},
		{"another namespace's upload of the same identifier", "PUT", strings.Replace(full, d.info.Key, other, 1), cu.Headers, d.chunk(n), 403},
		{"another chunk", "PUT", strings.Replace(full, fmt.Sprintf("%08d", n), fmt.Sprintf("%08d", 2), 1), cu.Headers, d.chunk(n), 403},
		{"a GET", "GET", full, cu.Headers, nil, 403},
		{"a DELETE", "DELETE", full, cu.Headers, nil, 403},
	}
	for _, c := range refused {
		status, code := d.put(t, c.method, c.url, c.headers, c.body)
		t.Logf("%s: %d %s", c.name, status, code)
		if status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, code, c.status)
		}
	}
	if keys := awstest.Keys(t, d.client, d.bucket, "staging/"); len(keys) != 0 {
		t.Fatalf("refused PUTs stored %v", keys)
	}

	// The fields in another order are still the same signature.
	reordered := append([]upload.Field{fields[7]}, fields[:7]...)
	if status, code := d.put(t, "PUT", appendFields(cu.URL, reordered), cu.Headers, d.chunk(n)); status != 200 {
		t.Fatalf("the chunk with its URL: %d %s", status, code)
	}
	got, err := d.store.StatChunk(ctx, d.info.Key, d.gen, n)
	if err != nil || got.Size != int64(len(d.chunk(n))) || got.CRC64NVME != crc {
		t.Fatalf("stored chunk: %+v, %v (want its size and CRC %s)", got, err, crc)
	}
	// Once only: the same URL again changes nothing.
	if status, code := d.put(t, "PUT", full, cu.Headers, d.chunk(n)); status != 412 {
		t.Errorf("the same PUT again: %d %s, want 412", status, code)
	}
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(b, d.chunk(n)) {
		t.Error("the stored chunk is not the bytes sent")
	}
}

// A URL dies when its life is over, and lives at most MaxURLLife.
func TestPresignedChunkExpires(t *testing.T) {
	ctx := context.Background()
	d := newDirectEnv(t, "public")
	d.store.Presign = s3.NewPresignClient(d.client, func(o *s3.PresignOptions) {
		o.Presigner = signedAgo{HTTPPresigner: v4.NewSigner(), ago: 16 * time.Minute}
	})
	fields := flowFields(d.info, 2)
	cu, err := d.store.SignChunk(ctx, d.info, d.gen, 2, fields, crcOfBytes(d.chunk(2)), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, code := d.put(t, "PUT", appendFields(cu.URL, fields), cu.Headers, d.chunk(2)); status != 403 || code != "AccessDenied" {
		t.Errorf("a URL signed 16 minutes ago for 15: %d %s, want 403 AccessDenied", status, code)
	}
	if _, err := d.store.SignChunk(ctx, d.info, d.gen, 2, fields, "", s3store.MaxURLLife+time.Second); err == nil {
		t.Error("a URL for longer than MaxURLLife")
	}
	if _, err := d.store.SignChunk(ctx, d.info, "../x", 2, fields, "", time.Minute); err == nil {
		t.Error("a URL for a generation that is not one")
	}
	if _, err := d.store.SignChunk(ctx, d.info, d.gen, 3, fields, "", time.Minute); err == nil {
		t.Error("a URL for a chunk the upload does not have")
	}
}

// With a KMS key, the URL makes the client's PUT encrypt the chunk with
// it, as the function's own writes do.
func TestPresignedChunkKMS(t *testing.T) {
	ctx := context.Background()
	d := newDirectEnv(t, "public")
	d.store.KMSKey = localaws.KMSKeyID
	fields := flowFields(d.info, 2)
	cu, err := d.store.SignChunk(ctx, d.info, d.gen, 2, fields, crcOfBytes(d.chunk(2)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if cu.Headers["X-Amz-Server-Side-Encryption"] != "aws:kms" {
		t.Fatalf("headers: %v", cu.Headers)
	}
	if status, code := d.put(t, "PUT", appendFields(cu.URL, fields), cu.Headers, d.chunk(2)); status != 200 {
		t.Fatalf("PUT: %d %s", status, code)
	}
	head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.store.ChunkKey(d.info.Key, d.gen, 2))})
	if err != nil || head.ServerSideEncryption != types.ServerSideEncryptionAwsKms {
		t.Errorf("the chunk is not encrypted with the KMS key: %v, %v", head, err)
	}
}

// What the server sees of chunks clients stored: StatChunk, ListChunks,
// RemoveChunk, and keys read back as ChunkKey writes them.
func TestStoredChunks(t *testing.T) {
	ctx := context.Background()
	d := newDirectEnv(t, "public")
	if _, err := d.store.StatChunk(ctx, d.info.Key, d.gen, 1); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("a chunk never stored: %v", err)
	}
	for n := 1; n <= 2; n++ {
		if err := d.store.PutChunk(ctx, d.info, d.gen, n, bytes.NewReader(d.chunk(n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.store.PutChunk(ctx, d.info, "fedcba9876543210", 1, bytes.NewReader(d.chunk(1))); err != nil {
		t.Fatal(err)
	}
	list, err := d.store.ListChunks(ctx, d.info.Key, d.gen)
	if err != nil || len(list) != 2 || list[0].N != 1 || list[1].N != 2 || list[1].Size != int64(len(d.chunk(2))) {
		t.Fatalf("ListChunks: %+v, %v", list, err)
	}
	if err := d.store.RemoveChunk(ctx, d.info.Key, d.gen, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.StatChunk(ctx, d.info.Key, d.gen, 1); !errors.Is(err, upload.ErrNotFound) {
		t.Errorf("a removed chunk: %v", err)
	}
	if _, err := d.store.StatChunk(ctx, d.info.Key, "fedcba9876543210", 1); err != nil {
		t.Errorf("removing one generation's chunk touched another's: %v", err)
	}

	key := d.store.ChunkKey(d.info.Key, d.gen, 12)
	if k, g, n, ok := d.store.ParseChunkKey(key); !ok || k != d.info.Key || g != d.gen || n != 12 {
		t.Errorf("ParseChunkKey(%s) = %s %s %d %v", key, k, g, n, ok)
	}
	for _, bad := range []string{
		"staging/" + d.info.Key + "/" + d.gen + "/00000000",
		"staging/" + d.info.Key + "/" + d.gen + "/0000001",
		"staging/" + d.info.Key + "/" + d.gen + "/0000000x",
		"staging/" + d.info.Key + "/" + d.gen + "/00000001/x",
		"staging/" + d.info.Key + "/" + d.gen + "/+0000001",
		"staging/" + d.info.Key + "/XYZ/00000001",
		"staging/../" + d.gen + "/00000001",
		"files/" + d.info.Key + "/" + d.gen + "/00000001",
		"staging/" + d.info.Key + "-" + d.gen + "/00000001",
	} {
		if _, _, _, ok := d.store.ParseChunkKey(bad); ok {
			t.Errorf("ParseChunkKey took %q", bad)
		}
	}
}
