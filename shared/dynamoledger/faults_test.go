package dynamoledger_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/faults"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// The counting fault-injection test. For every step the upload and assembly
// paths take against S3 and DynamoDB, it runs a whole upload twice: once
// with that step failing (the call never reaches the server) and once
// crashing right after it (the call succeeds, the request dies and the
// client retries). It fails or crashes the step on several of its
// occurrences, on top of two faults in every run that leave the crash
// windows of the counting protocol open (a shard filled but not registered,
// every shard registered but the upload not ready), while the client sends
// three chunks at a time, a duplicate mid-upload, the chunks that fill the
// first shard concurrently, one of them twice, and a late duplicate after
// the end.
//
// The upload has three shards (10 chunks in shards of testShards: 4, 4 and
// 2). An earlier attempt at it was abandoned and its record removed, leaving
// a shard of an older generation to replace in each, and the clock jumps
// twice mid-upload past the age at which the ledger confirms its cached
// generation.
//
// The deployment runs as three independent instances over the one table and
// bucket: each has its own ledger (with its own generation cache), store and
// service, and the client's requests (each test GET, each POST) and the
// assembler's runs go to them in turn, so one chunk's test and send, and
// chunks sent at once, reach different instances. Faults follow one schedule
// for the whole deployment (the nth call of a step, on whichever instance
// makes it), and an instance whose request crashed is replaced by a new one,
// as Lambda replaces an execution environment that died: nothing it had
// cached survives.
//
// Whatever happens, the upload must end complete, with the right bytes
// (sha256), assembled exactly once (one CompleteMultipartUpload that
// succeeded, one transition to ready), published, and with no chunk object
// or multipart upload left.
func TestCountingSurvivesFaultsAtEveryStep(t *testing.T) {
	db, s3c := awstest.DynamoDB(t), awstest.S3(t)
	for _, v := range []struct {
		name      string
		shardSize int
	}{
		{"three shards", testShards},
		// The same upload in one shard: the write that fills it is
		// followed by one that registers it and makes the upload ready.
		{"one shard", 16},
	} {
		t.Run(v.name, func(t *testing.T) {
			h := &harness{table: awstest.Table(t, db), bucket: awstest.Bucket(t, s3c), db: db, s3: s3c, shardSize: v.shardSize}
			one := v.shardSize >= ftChunks

			// A clean run (with the baseline faults) names every step there is.
			clean := h.run(t, "clean", "", faults.Pass)
			if one {
				// The window was open (the shard filled, the upload not
				// ready) and closed by a resend.
				if n, calls := clean.Injected(), clean.Calls("ddb.UpdateItem:ready"); n != 1 || calls < 2 {
					t.Fatalf("the clean run injected %d faults and tried to make the upload ready %d times; want the baseline fault and 2 tries at least", n, calls)
				}
			} else if n, calls := clean.Injected(), clean.Calls("ddb.UpdateItem:full"); n != 2 || calls < 5 {
				// Both windows were open, and closed by a resend each: the
				// three shards were registered, one of them twice, and the
				// last one again.
				t.Fatalf("the clean run injected %d faults and registered shards %d times; want the 2 baseline faults and 5 registrations at least", n, calls)
			}
			var steps []string
			for step := range clean.AllCalls() {
				steps = append(steps, step)
			}
			sort.Strings(steps)
			must := []string{
				"s3.PutObject", "ddb.BatchGetItem:lookup", "ddb.GetItem:META", "ddb.GetItem:ID", "ddb.PutItem:ID",
				"ddb.PutItem:META", "ddb.DeleteItem", "ddb.UpdateItem:touch", "ddb.UpdateItem:shard",
				"ddb.PutItem:shard-replace", "ddb.UpdateItem:ready", "ddb.UpdateItem:claim",
				"s3.CreateMultipartUpload", "s3.UploadPart", "s3.CompleteMultipartUpload", "s3.DeleteObjects",
				"ddb.UpdateItem:complete", "ddb.UpdateItem:published",
			}
			if !one {
				must = append(must, "ddb.UpdateItem:full")
			}
			for _, m := range must {
				if !slices.Contains(steps, m) {
					t.Fatalf("the clean run never took step %s; steps seen: %v", m, steps)
				}
			}
			t.Logf("steps under test: %v", steps)

			for _, step := range steps {
				for _, mode := range []faults.Mode{faults.Fail, faults.Crash} {
					t.Run(step+"/"+mode.String(), func(t *testing.T) {
						in := h.run(t, step+"-"+mode.String(), step, mode)
						// The step's fault and the baseline's; with one
						// shard the baseline's step is this one, and after
						// a crash there the upload is ready: one fault.
						want := 2
						if one && step == "ddb.UpdateItem:ready" {
							want = 1
						}
						if in.Calls(step) > 0 && in.Injected() < want {
							t.Errorf("only %d faults injected", in.Injected())
						}
					})
				}
			}
		})
	}
}

type harness struct {
	table, bucket string
	db            dynamoledger.API
	s3            *s3.Client
	shardSize     int
}

// chunkSize and the file's size: 10 chunks, three shards of testShards (4,
// 4 and 2 chunks), the last chunk carrying the remainder (flow.js's default
// forceChunkSize: false).
const (
	ftChunk  = 1 << 10
	ftChunks = 10
	ftSize   = ftChunks*ftChunk + 1000
)

func (h *harness) run(t *testing.T, name, target string, mode faults.Mode) *faults.Injector {
	ctx := context.Background()
	in := &faults.Injector{Rule: func(step string, nth int) faults.Mode {
		if step == target && (nth == 1 || nth == 2 || nth == 4) {
			return mode
		}
		if h.shardSize >= ftChunks {
			// Baseline with one shard: the first write that would register
			// it and make the upload ready fails, leaving a full shard
			// unregistered.
			if step == "ddb.UpdateItem:ready" && nth == 1 {
				return faults.Fail
			}
			return faults.Pass
		}
		if step == "ddb.UpdateItem:full" {
			// Baseline: the first registration (chunk 9 filling shard 2)
			// fails, leaving a full shard unregistered; the second is its
			// resend's, the third shard 1's; the fourth (shard 0, the last)
			// crashes, leaving every shard registered and the upload not
			// ready.
			switch nth {
			case 1:
				return faults.Fail
			case 4:
				return faults.Crash
			}
		}
		return faults.Pass
	}}
	clock := &awstest.Clock{}
	var readies atomic.Int32
	events := &recorder{}
	d := &deployment{new: func() *instance {
		ledger := &dynamoledger.Ledger{Client: faults.DynamoDB{API: h.db, In: in}, Table: h.table, Now: clock.Now}
		dynamoledger.SetShardSize(ledger, h.shardSize)
		store := &s3store.Store{Client: faults.S3{API: h.s3, In: in}, Bucket: h.bucket}
		return &instance{ledger: ledger, store: store,
			svc: &upload.Service{Store: store, Ledger: ledger, OnReady: func(string) { readies.Add(1) }}}
	}}
	d.start(ftInstances)

	data := make([]byte, ftSize)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	ident := fmt.Sprintf("%d-%s", ftSize, name)
	info := upload.Info{
		Key:        upload.UploadKey("", ident, ftSize, ftChunk, ftChunks),
		Identifier: ident, FileName: "report " + name + ".pdf",
		TotalSize: ftSize, ChunkSize: ftChunk, TotalChunks: ftChunks,
	}

	// The client, as flow.js behaves: test, then send; retry on failure.
	send := func(n int) {
		off, size := info.ChunkBounds(n)
		for try := 0; ; try++ {
			if try == 15 {
				t.Errorf("chunk %d: still failing after %d tries", n, try)
				return
			}
			i, inst := d.next()
			present, err := inst.svc.Test(faults.Request(ctx), info, n)
			d.after(i, err)
			if err == nil && present {
				return
			}
			if err == nil {
				i, inst = d.next()
				_, err = inst.svc.Put(faults.Request(ctx), info, n, upload.Body{Reader: strings.NewReader(string(data[off : off+size]))})
				d.after(i, err)
				if err == nil {
					return
				}
			}
			var ie *upload.InputError
			if errors.As(err, &ie) {
				t.Errorf("chunk %d: refused as bad input: %v", n, err)
				return
			}
		}
	}
	// An earlier attempt sent a chunk of each shard and was abandoned; its
	// record expired and is removed, as DynamoDB's TTL would.
	send(1)
	send(5)
	send(ftChunks)
	var abandoned upload.Record
	for try := 0; ; try++ { // the read itself may be the step under test
		var err error
		if abandoned, err = d.any().ledger.Get(ctx, info.Key); err == nil {
			break
		} else if try == 10 {
			t.Fatal(err)
		}
	}
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	for try := 0; ; try++ {
		if try == 10 {
			t.Fatal("the abandoned record is still there")
		}
		// As DynamoDB's TTL would; the call may fail here, Get tells.
		dynamoledger.RemoveExpired(ctx, d.any().ledger, info.Key, clock.Now())
		if _, err := d.any().ledger.Get(ctx, info.Key); errors.Is(err, upload.ErrNotFound) {
			break
		}
	}
	// Its chunks go, as the assembler removes them on the stream's REMOVE
	// record (whenever that comes: a generation's chunks are its own).
	if err := (&s3store.Store{Client: h.s3, Bucket: h.bucket}).Discard(ctx, info.Key, abandoned.Generation); err != nil {
		t.Fatal(err)
	}

	// sendAll sends chunks three at a time, as flow.js does by default.
	sendAll := func(ns ...int) {
		next := make(chan int)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for n := range next {
					send(n)
				}
			})
		}
		for _, n := range ns {
			next <- n
		}
		close(next)
		wg.Wait()
	}

	// The upload: the first and last chunks first (flow.js's
	// prioritizeFirstAndLastChunk), and the one that completes shard 2.
	for _, n := range []int{1, ftChunks, ftChunks - 1} {
		send(n)
	}
	sendAll(2, 5, 6, 2) // and a duplicate, as after a lost response
	// The user paused, twice: the cached generation needs confirming.
	clock.Advance(dynamoledger.DefaultIdleTTL/8 + time.Minute)
	sendAll(7, 8) // these fill shard 1
	clock.Advance(dynamoledger.DefaultIdleTTL/8 + time.Minute)
	sendAll(3, 4, 4) // the chunks that fill shard 0 race, one twice
	send(2)          // a late duplicate after the upload is ready
	if readies.Load() > 1 {
		t.Errorf("ready reported %d times", readies.Load())
	}

	// The assembler, as the stream and the re-drive drive it: every upload
	// owed work runs through the pipeline, on the next instance; a crashed
	// run's lease expires before the next.
	const lease = time.Minute
	for round := 0; ; round++ {
		if round == 10 {
			t.Fatalf("upload not finished after %d assembler rounds", round)
		}
		owed, err := d.any().ledger.Overdue(ctx, clock.Now().Add(24*time.Hour), 100)
		if err != nil {
			continue
		}
		if len(owed) == 0 {
			break
		}
		for _, key := range owed {
			i, inst := d.next()
			p := &upload.Pipeline{
				Ledger: inst.ledger, Assembler: inst.store, Publisher: events,
				Owner: fmt.Sprintf("assembler-%d", round), Lease: lease, Now: clock.Now,
				Log: slog.New(slog.DiscardHandler),
			}
			d.after(i, p.Run(faults.Request(ctx), key))
		}
		clock.Advance(lease + time.Second)
	}
	// A duplicate stream record, long after (and with faults over): nothing
	// happens.
	in.Rule = nil
	_, inst := d.next()
	dup := &upload.Pipeline{Ledger: inst.ledger, Assembler: inst.store, Publisher: events, Owner: "late", Lease: lease,
		Now: clock.Now, Log: slog.New(slog.DiscardHandler)}
	if err := dup.Run(ctx, info.Key); err != nil {
		t.Errorf("duplicate trigger: %v", err)
	}

	rec, err := d.any().ledger.Get(ctx, info.Key)
	if err != nil || rec.State != upload.StateComplete || !rec.Published || rec.Result == nil {
		t.Fatalf("record = %+v, %v; want complete and published", rec, err)
	}
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.bucket), Key: aws.String(rec.Result.Object)})
	if err != nil {
		t.Fatalf("finished object: %v", err)
	}
	got := sha256.New()
	io.Copy(got, out.Body)
	out.Body.Close()
	want := sha256.Sum256(data)
	if hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want[:]) {
		t.Fatal("the finished object's sha256 differs from the file's")
	}
	if n := in.Succeeded("s3.CompleteMultipartUpload"); n != 1 {
		t.Errorf("multipart upload completed %d times, want exactly once", n)
	}
	if n := in.Succeeded("ddb.UpdateItem:ready"); n != 1 {
		t.Errorf("upload became ready %d times, want exactly once", n)
	}
	if target != "ddb.UpdateItem:ready" && readies.Load() != 1 {
		t.Errorf("ready reported to %d callers, want 1", readies.Load())
	}
	// The upload's chunks were assembled away. What a request that died
	// right after storing a first chunk left under a generation of its own
	// (one that never became the record's) is the lifecycle rule's: at most
	// one object per fault.
	left := awstest.Keys(t, h.s3, h.bucket, "staging/"+info.Key+"/")
	for _, k := range left {
		if strings.Contains(k, "/"+rec.Generation+"/") || strings.Contains(k, "/"+abandoned.Generation+"/") {
			t.Errorf("chunk object left: %s (of all: %v)", k, left)
		}
	}
	if len(left) > in.Injected() {
		t.Errorf("%d orphan chunk objects left by %d faults: %v", len(left), in.Injected(), left)
	}
	if ups := awstest.Uploads(t, h.s3, h.bucket, "files/"+info.Key); len(ups) != 0 {
		t.Errorf("%d multipart uploads left", len(ups))
	}
	evs := events.of(info.Key)
	if len(evs) == 0 {
		t.Fatal("no completion event")
	}
	if ev := evs[0]; ev.Size != ftSize || ev.Chunks != ftChunks || ev.Object != rec.Result.Object || ev.Bucket != h.bucket {
		t.Errorf("event = %+v", ev)
	}
	return in
}

// ftInstances is how many instances the deployment runs.
const ftInstances = 3

// instance is one function instance: a ledger, a store and a service of
// its own, over the deployment's table and bucket.
type instance struct {
	ledger *dynamoledger.Ledger
	store  *s3store.Store
	svc    *upload.Service
}

// deployment hands requests to its instances in turn, and replaces an
// instance whose request crashed with a new one.
type deployment struct {
	new   func() *instance
	mu    sync.Mutex
	insts []*instance
	turn  int
}

func (d *deployment) start(n int) {
	for range n {
		d.insts = append(d.insts, d.new())
	}
}

// next is the instance the next request goes to.
func (d *deployment) next() (int, *instance) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.turn % len(d.insts)
	d.turn++
	return i, d.insts[i]
}

// any is an instance for a read that is no request of the client's.
func (d *deployment) any() *instance {
	_, inst := d.next()
	return inst
}

// after notes how instance i's request ended: a crash takes the instance
// with it.
func (d *deployment) after(i int, err error) {
	if errors.Is(err, faults.ErrCrashed) {
		d.mu.Lock()
		d.insts[i] = d.new()
		d.mu.Unlock()
	}
}

// recorder is a Publisher that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	evs []upload.Event
}

func (r *recorder) Publish(_ context.Context, ev upload.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

func (r *recorder) of(key string) []upload.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []upload.Event
	for _, ev := range r.evs {
		if ev.UploadKey == key {
			out = append(out, ev)
		}
	}
	return out
}

// The work per chunk is constant: on the default shard size (128), which
// production uses, uploads of 40 chunks (one partial shard) and of 300 (two
// full shards and a partial one) make one DynamoDB write per
// chunk, plus one per shard and a fixed amount per upload, and two reads per
// chunk, plus one per upload (the identity item, before its claim). (An upload of one shard registers it with the write that makes it
// ready.) This also measures the numbers the package doc quotes.
func TestRequestsPerChunkAreConstant(t *testing.T) {
	db, s3c := awstest.DynamoDB(t), awstest.S3(t)
	table, bucket := awstest.Table(t, db), awstest.Bucket(t, s3c)
	for _, c := range []struct{ chunks, shards int }{{40, 1}, {300, 3}} {
		chunks := c.chunks
		in := &faults.Injector{}
		ledger := &dynamoledger.Ledger{Client: faults.DynamoDB{API: db, In: in}, Table: table}
		store := &s3store.Store{Client: faults.S3{API: s3c, In: in}, Bucket: bucket}
		svc := &upload.Service{Store: store, Ledger: ledger}
		const chunk = 1024
		size := int64(chunks * chunk)
		ident := fmt.Sprintf("%d-perchunk", size)
		info := upload.Info{Key: upload.UploadKey("", ident, size, chunk, chunks), Identifier: ident,
			FileName: "p.bin", TotalSize: size, ChunkSize: chunk, TotalChunks: chunks}
		ctx := context.Background()
		body := strings.Repeat("x", chunk)
		for n := 1; n <= chunks; n++ { // as flow.js does: test, then send
			if present, err := svc.Test(ctx, info, n); err != nil || present {
				t.Fatalf("test chunk %d: %v %v", n, present, err)
			}
			if _, err := svc.Put(ctx, info, n, upload.Body{Reader: strings.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
		}
		upCalls := in.AllCalls()
		in.Reset()
		p := &upload.Pipeline{Ledger: ledger, Assembler: store, Owner: "a", Lease: time.Minute, Log: slog.New(slog.DiscardHandler)}
		if err := p.Run(ctx, info.Key); err != nil {
			t.Fatal(err)
		}
		asmCalls := in.AllCalls()
		t.Logf("%d chunks: upload calls %v", chunks, upCalls)
		t.Logf("%d chunks: assembly calls %v", chunks, asmCalls)
		// Exactly these writes, and these reads.
		want := map[string]int{
			"ddb.UpdateItem:shard":    chunks,
			"ddb.UpdateItem:full":     map[bool]int{true: 0, false: c.shards}[c.shards == 1],
			"ddb.UpdateItem:ready":    1,
			"ddb.PutItem:META":        1,
			"ddb.PutItem:ID":          1,
			"ddb.BatchGetItem:lookup": 2 * chunks, // the test GET and the POST's own check
			"ddb.GetItem:ID":          1,          // the state the identity's claim swaps from
			"s3.PutObject":            chunks,
		}
		for step, n := range upCalls {
			if _, ok := want[step]; !ok && (strings.HasPrefix(step, "ddb.PutItem") || strings.HasPrefix(step, "ddb.UpdateItem") ||
				strings.HasPrefix(step, "ddb.DeleteItem")) {
				t.Errorf("%d chunks: %d unexpected writes %s", chunks, n, step)
			}
			// Creating the record reads only the identity item.
			if _, ok := want[step]; !ok && strings.HasPrefix(step, "ddb.GetItem") {
				t.Errorf("%d chunks: %d unexpected reads %s", chunks, n, step)
			}
		}
		for step, n := range want {
			if upCalls[step] != n {
				t.Errorf("%d chunks: %s = %d, want %d", chunks, step, upCalls[step], n)
			}
		}
	}
}
