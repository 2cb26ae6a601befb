package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/flowgate/flowgate/shared/upload"
)

// The direct data path (upload.DirectStore): a client PUTs a chunk object
// itself, with a URL signed here for exactly that object.
//
// A SigV4 presigned URL covers every query parameter, and flow.js (method
// octet) appends every flow field to the URL it is given: so the fields the
// client will append are signed into the URL, then taken out of the URL
// handed to it, for flow.js to put back. A parameter more, less or changed
// fails the signature (403). The URL also signs:
//
//   - the chunk's exact Content-Length (a body one byte longer or shorter
//     is refused; without a length the PUT is refused with 411);
//   - If-None-Match: * (a chunk object is written once: a second PUT gets
//     412 and changes nothing, so a counted chunk can never be replaced);
//   - x-amz-checksum-crc64nvme, the client's CRC-64/NVME of the chunk: S3
//     refuses a body that does not match it (400), and keeps it with the
//     object, where the assembly finds it to prove the finished file, as it
//     does for chunks the upload function stored;
//   - with a KMS key, the SSE-KMS headers, so the chunk is encrypted as the
//     function's own writes are.
//
// The client must send those headers (Headers of the ChunkURL) and the
// body; the browser sets Content-Length itself. The URL can do nothing else:
// no other key, method, size or content, and nothing after it expires.

// Presigner is the part of the SDK's presign client the store uses;
// *s3.PresignClient implements it.
type Presigner interface {
	PresignPutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

// MaxURLLife is the most a chunk URL may live: S3 takes a week, but a URL
// signed with a role's session credentials (a Lambda function's) dies with
// them, and a short life is what limits a leaked URL.
const MaxURLLife = time.Hour

// SignChunk implements upload.DirectStore: a presigned PUT of chunk n of
// generation gen of the upload, good for life, carrying the fields the
// client will append and the chunk's CRC-64/NVME (base64 of 8 bytes, as S3
// writes it). The URL handed out lacks the fields: the client appends them
// (flow.js does, in its order; the order does not matter to the signature).
func (s *Store) SignChunk(ctx context.Context, info upload.Info, gen string, n int, fields []upload.Field, crc64 string, life time.Duration) (upload.ChunkURL, error) {
	if s.Presign == nil {
		return upload.ChunkURL{}, errors.New("s3store: no presigner")
	}
	if !upload.ValidName(info.Key) || !upload.ValidName(gen) || n < 1 || n > info.TotalChunks {
		return upload.ChunkURL{}, errors.New("s3store: invalid upload key, generation or chunk")
	}
	if life <= 0 || life > MaxURLLife {
		return upload.ChunkURL{}, fmt.Errorf("s3store: a chunk URL lives at most %s", MaxURLLife)
	}
	_, size := info.ChunkBounds(n)
	sse, kmsKey := s.encryption()
	in := &s3.PutObjectInput{
		Bucket:               aws.String(s.Bucket),
		Key:                  aws.String(s.ChunkKey(info.Key, gen, n)),
		IfNoneMatch:          aws.String("*"),
		ChecksumCRC64NVME:    aws.String(crc64),
		ServerSideEncryption: sse,
		SSEKMSKeyId:          kmsKey,
	}
	if size > 0 {
		// The SDK signs no length of 0; S3 stores whatever comes then, and
		// the counting finds the size wrong.
		in.ContentLength = aws.Int64(size)
	}
	now := time.Now()
	req, err := s.Presign.PresignPutObject(ctx, in, s3.WithPresignExpires(life), withSignedQuery(fields))
	if err != nil {
		return upload.ChunkURL{}, fmt.Errorf("s3store: presign chunk %d: %w", n, err)
	}
	u, err := withoutFields(req.URL, fields)
	if err != nil {
		return upload.ChunkURL{}, err
	}
	out := upload.ChunkURL{URL: u, Method: http.MethodPut, Headers: map[string]string{}, Expires: now.Add(life)}
	for name, vs := range req.SignedHeader {
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Content-Length":
			continue // the browser's own
		}
		if len(vs) > 0 {
			out.Headers[http.CanonicalHeaderKey(name)] = vs[0]
		}
	}
	return out, nil
}

// withSignedQuery puts fields on the request before it is signed, so that
// they are part of the signature.
func withSignedQuery(fields []upload.Field) func(*s3.PresignOptions) {
	return func(po *s3.PresignOptions) {
		po.ClientOptions = append(po.ClientOptions, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				return st.Build.Add(middleware.BuildMiddlewareFunc("flowgateSignedQuery",
					func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
						req, ok := in.Request.(*smithyhttp.Request)
						if !ok {
							return middleware.BuildOutput{}, middleware.Metadata{}, errors.New("s3store: unexpected request type")
						}
						q := req.URL.Query()
						for _, f := range fields {
							q.Add(f.Name, f.Value)
						}
						req.URL.RawQuery = q.Encode()
						return next.HandleBuild(ctx, in)
					}), middleware.After)
			})
		})
	}
}

// withoutFields removes the signed fields from a presigned URL's query,
// keeping the rest as the SDK wrote it.
func withoutFields(raw string, fields []upload.Field) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("s3store: presigned URL: %w", err)
	}
	drop := map[string]bool{}
	for _, f := range fields {
		drop[f.Name] = true
	}
	var keep []string
	for _, part := range strings.Split(u.RawQuery, "&") {
		name, _, _ := strings.Cut(part, "=")
		if dn, err := url.QueryUnescape(name); err == nil && drop[dn] {
			continue
		}
		keep = append(keep, part)
	}
	u.RawQuery = strings.Join(keep, "&")
	return u.String(), nil
}

// StatChunk implements upload.DirectStore with a HEAD of the chunk object.
func (s *Store) StatChunk(ctx context.Context, key, gen string, n int) (upload.StoredChunk, error) {
	if !upload.ValidName(key) || !upload.ValidName(gen) {
		return upload.StoredChunk{}, errors.New("s3store: invalid upload key or generation")
	}
	head, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(s.ChunkKey(key, gen, n)), ChecksumMode: types.ChecksumModeEnabled,
	})
	if isNotFound(err) {
		return upload.StoredChunk{}, upload.ErrNotFound
	}
	if err != nil {
		return upload.StoredChunk{}, fmt.Errorf("s3store: head chunk %d: %w", n, err)
	}
	return upload.StoredChunk{N: n, Size: aws.ToInt64(head.ContentLength), CRC64NVME: aws.ToString(head.ChecksumCRC64NVME)}, nil
}

// ListChunks implements upload.DirectStore: one LIST per 1,000 chunks.
// Objects under the generation whose names are not chunk numbers are left
// out.
func (s *Store) ListChunks(ctx context.Context, key, gen string) ([]upload.StoredChunk, error) {
	if !upload.ValidName(key) || !upload.ValidName(gen) {
		return nil, errors.New("s3store: invalid upload key or generation")
	}
	objs, err := s.listStaged(ctx, key, gen)
	if err != nil {
		return nil, err
	}
	out := make([]upload.StoredChunk, 0, len(objs))
	for _, o := range objs {
		if k, g, n, ok := s.ParseChunkKey(aws.ToString(o.Key)); ok && k == key && g == gen {
			out = append(out, upload.StoredChunk{N: n, Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// RemoveChunk implements upload.DirectStore.
func (s *Store) RemoveChunk(ctx context.Context, key, gen string, n int) error {
	if !upload.ValidName(key) || !upload.ValidName(gen) {
		return errors.New("s3store: invalid upload key or generation")
	}
	return s.deleteKeys(ctx, []string{s.ChunkKey(key, gen, n)})
}

// ParseChunkKey reads an object key the way ChunkKey writes it: the
// staging prefix, an upload key, a generation and a chunk number of 8
// digits or more (not 0). Anything else is not a chunk object.
func (s *Store) ParseChunkKey(object string) (key, gen string, n int, ok bool) {
	rest, found := strings.CutPrefix(object, s.staging())
	if !found {
		return "", "", 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !upload.ValidName(parts[0]) || !upload.ValidName(parts[1]) || len(parts[2]) < 8 || len(parts[2]) > 12 {
		return "", "", 0, false
	}
	for _, c := range parts[2] {
		if c < '0' || c > '9' {
			return "", "", 0, false
		}
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 1 || s.ChunkKey(parts[0], parts[1], n) != object {
		return "", "", 0, false
	}
	return parts[0], parts[1], n, true
}
