package serverless

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/redrive"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// stack is one deployment: a bucket, a table, and n function instances,
// each built as a Lambda function builds itself (awsdeploy, from the same
// settings), with SDK clients, a ledger cache and service locks of its own.
type stack struct {
	t             *testing.T
	bucket, table string
	s3            *s3.Client
	inst          []*awsdeploy.Deployment
	// seen are the stream records already delivered, by sequence number.
	seen map[string]bool
}

func newStack(t *testing.T, n int, env map[string]string) *stack {
	t.Helper()
	ctx := context.Background()
	s := &stack{t: t, s3: awstest.S3(t), seen: map[string]bool{}}
	s.bucket = awstest.Bucket(t, s.s3)
	s.table = awstest.Name("flowgate")
	if err := dynamoledger.CreateTable(ctx, plat.DynamoDB(), s.table); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"FLOWGATE_BUCKET": s.bucket, "FLOWGATE_TABLE": s.table}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := awsdeploy.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		d, err := awsdeploy.New(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		d.Ledger.Now = clock.Now
		s.inst = append(s.inst, d)
	}
	return s
}

// file is a file as flow.js cuts it (forceChunkSize: true), with random
// bytes.
type file struct {
	info upload.Info
	data []byte
}

func newFile(id string, size, chunk int64) file {
	chunks := int(max((size+chunk-1)/chunk, 1))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	return file{data: data, info: upload.Info{
		Key:       upload.UploadKey(httpapi.PublicNamespace, id, size, chunk, chunks),
		Namespace: httpapi.PublicNamespace, Identifier: id, FileName: id + ".bin", RelativePath: id + ".bin",
		TotalSize: size, ChunkSize: chunk, TotalChunks: chunks,
	}}
}

func (f file) chunk(n int) []byte {
	off, size := f.info.ChunkBounds(n)
	return f.data[off : off+size]
}

// put sends chunk n to instance i, as a POST would.
func (s *stack) put(i int, f file, n int) error {
	_, err := s.inst[i].Service.Put(context.Background(), f.info, n, upload.Body{Reader: bytes.NewReader(f.chunk(n))})
	return err
}

func (s *stack) mustPut(i int, f file, ns ...int) {
	s.t.Helper()
	for _, n := range ns {
		if err := s.put(i, f, n); err != nil {
			s.t.Fatalf("chunk %d on instance %d: %v", n, i, err)
		}
	}
}

// present is the test GET of chunk n on instance i.
func (s *stack) present(i int, f file, n int) bool {
	s.t.Helper()
	ok, err := s.inst[i].Service.Test(context.Background(), f.info, n)
	if err != nil {
		s.t.Fatalf("test GET of chunk %d on instance %d: %v", n, i, err)
	}
	return ok
}

// resume is flow.js resuming an upload (after a reload, or with
// testChunks): test every chunk, send those not present, each request to
// the next instance in turn.
func (s *stack) resume(f file) {
	s.t.Helper()
	for n := 1; n <= f.info.TotalChunks; n++ {
		i := n % len(s.inst)
		if !s.present(i, f, n) {
			s.mustPut((i+1)%len(s.inst), f, n)
		}
	}
}

func (s *stack) status(i int, f file) upload.Status {
	s.t.Helper()
	st, err := s.inst[i].Service.Status(context.Background(), f.info.Key)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *stack) record(f file) (upload.Record, error) {
	return s.inst[0].Ledger.Get(context.Background(), f.info.Key)
}

// deliver hands the stream's new records that the template's filter lets
// through to instance i's assembler handler, one at a time (BatchSize 1),
// as the event source mapping would, and returns how many. A record whose
// handling fails is delivered again on the next call.
func (s *stack) deliver(i int) int {
	s.t.Helper()
	ctx := context.Background()
	h := s.inst[i].StreamHandler()
	h.Pipeline.Now = clock.Now
	n := 0
	for _, r := range s.newRecords() {
		resp, err := h.Handle(ctx, events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{r}})
		if err != nil || len(resp.BatchItemFailures) > 0 {
			continue
		}
		s.seen[r.Change.SequenceNumber] = true
		n++
	}
	return n
}

// newRecords are the stream's records not yet delivered that the
// template's filter selects, in sequence order.
func (s *stack) newRecords() []events.DynamoDBEventRecord {
	s.t.Helper()
	ctx := context.Background()
	sources, err := esm.LoadTemplate("../../template.yaml", "AssembleFunction")
	if err != nil || len(sources) != 1 {
		s.t.Fatalf("the assembler's stream event in template.yaml: %v", err)
	}
	d, err := plat.DynamoDB().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
	if err != nil {
		s.t.Fatal(err)
	}
	arn := aws.ToString(d.Table.LatestStreamArn)
	st := plat.DynamoDBStreams()
	ds, err := st.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []events.DynamoDBEventRecord
	for _, sh := range ds.StreamDescription.Shards {
		it, err := st.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: sh.ShardId,
			ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			s.t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			page, err := st.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				s.t.Fatal(err)
			}
			for _, r := range page.Records {
				ev := redrive.EventRecord(r, arn)
				if s.seen[ev.Change.SequenceNumber] {
					continue
				}
				var asJSON any
				b, _ := json.Marshal(ev)
				json.Unmarshal(b, &asJSON)
				if ok, err := esm.MatchAny(sources[0].Config.Filters, asJSON); err != nil {
					s.t.Fatal(err)
				} else if ok {
					out = append(out, ev)
				} else {
					s.seen[ev.Change.SequenceNumber] = true
				}
			}
			if len(page.Records) == 0 {
				break
			}
			iter = page.NextShardIterator
		}
	}
	sort.Slice(out, func(a, b int) bool { return seqLess(out[a].Change.SequenceNumber, out[b].Change.SequenceNumber) })
	return out
}

func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// expire moves the clock by d and lets the emulated TTL delete whatever it
// would by then.
func (s *stack) expire(d time.Duration) {
	s.t.Helper()
	clock.Advance(d)
	if _, err := plat.Front.SweepTTL(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

// complete checks that the upload is complete, announced, with the file's
// bytes, and that no chunk of it is left in staging.
func (s *stack) complete(f file) {
	s.t.Helper()
	ctx := context.Background()
	rec, err := s.record(f)
	if err != nil || rec.State != upload.StateComplete || rec.Result == nil {
		s.t.Fatalf("record of %s = %+v, %v; want complete", f.info.Identifier, rec, err)
	}
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(rec.Result.Object)})
	if err != nil {
		s.t.Fatalf("finished object: %v", err)
	}
	got := sha256.New()
	io.Copy(got, out.Body)
	out.Body.Close()
	if want := sha256.Sum256(f.data); !bytes.Equal(got.Sum(nil), want[:]) {
		s.t.Fatalf("the finished object of %s differs from the file", f.info.Identifier)
	}
	if left := awstest.Keys(s.t, s.s3, s.bucket, "staging/"+f.info.Key+"/"+rec.Generation+"/"); len(left) != 0 {
		s.t.Fatalf("chunks of the assembled generation left: %v", left)
	}
}

// hooked is an S3 client that runs a function before chosen operations:
// a way to make another instance act in the middle of this one's work.
type hooked struct {
	s3store.API
	before map[string]func()
}

func (h *hooked) run(op string) {
	if f := h.before[op]; f != nil {
		delete(h.before, op) // once
		f()
	}
}

func (h *hooked) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	h.run("ListObjectsV2")
	return h.API.ListObjectsV2(ctx, in, o...)
}

func (h *hooked) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	h.run("PutObject")
	return h.API.PutObject(ctx, in, o...)
}

// hook makes instance i's S3 client run f before its next op, and returns
// a check that it did (the interleaving under test happened).
func (s *stack) hook(i int, op string, f func()) (fired func() bool) {
	st := s.inst[i].Store
	h, ok := st.Client.(*hooked)
	if !ok {
		h = &hooked{API: st.Client, before: map[string]func(){}}
		st.Client = h
	}
	h.before[op] = f
	return func() bool { _, waiting := h.before[op]; return !waiting }
}
