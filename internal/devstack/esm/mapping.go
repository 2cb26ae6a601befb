package esm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Function invokes the function synchronously with a raw JSON event and
// returns its raw JSON response. An error means the function failed (a
// function error: it counts toward MaximumRetryAttempts and may bisect the
// batch), unless it wraps ErrNotInvoked: then the function was never
// reached (throttled, not started) and Lambda retries without counting,
// until the records are too old.
type Function func(ctx context.Context, event []byte) ([]byte, error)

// ErrNotInvoked marks an error from a Function that never reached the
// function.
var ErrNotInvoked = errors.New("esm: the function was not invoked")

// StreamsAPI is what the mapping needs of the SDK's dynamodbstreams client.
type StreamsAPI interface {
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// Options configure a Mapping.
type Options struct {
	Config
	// StreamARN is the stream to read (the table's LatestStreamArn).
	StreamARN string
	// Streams reads it: the SDK's dynamodbstreams client.
	Streams StreamsAPI
	// Function is invoked with each batch.
	Function Function
	// OnFailure receives what the mapping gives up; nil drops it (a
	// mapping without a destination).
	OnFailure Destination
	// Now is the clock that ages records; nil means time.Now. It must be
	// the clock the stream dates its records by.
	Now func() time.Time
	// PollInterval is how often an idle shard is polled (Lambda: four times
	// a second); 0 means 250 ms. It also paces the batching window.
	PollInterval time.Duration
	// RetryBackoff is the wait before the first retry of a failed batch,
	// doubling with each retry up to MaxRetryBackoff; 0 means 1 s and 1 min.
	// Tests make them small.
	RetryBackoff, MaxRetryBackoff time.Duration
	// DuplicateProbability is the chance that a batch the function took is
	// delivered once more (one of the last few batches of its lane, so a
	// duplicate may come after newer records): at-least-once delivery made
	// visible. 0 never.
	DuplicateProbability float64
	// Seed seeds the duplicate draws (0: random), for reproducible runs.
	Seed uint64
	// Region and Account name the function's ARN; defaults us-east-1 and
	// 000000000000.
	Region, Account string
	// Log gets what the mapping gives up and why; nil discards it.
	Log *slog.Logger
}

// Stats count what a mapping did so far.
type Stats struct {
	Read                int // records read from the stream
	Filtered            int // records no filter matched: dropped
	Invocations         int // calls of the function, duplicates included
	FunctionErrors      int // invocations that failed
	PartialFailures     int // invocations that reported batchItemFailures
	NotInvoked          int // invocations that did not reach the function
	Bisections          int // failed batches split in two
	Retries             int // retries counted toward MaximumRetryAttempts
	Succeeded           int // records the function took, first delivery
	Duplicates          int // batches delivered again after they succeeded
	Discarded           int // records given up
	DestinationMessages int // messages the on-failure destination took
	// Pending is records read, matched and not yet taken or given up.
	Pending int
}

// Mapping is a running event source mapping.
type Mapping struct {
	opt     Options
	cfg     Config
	hashKey string

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	stats  Stats
	shards map[string]bool
	rnd    *mrand.Rand
}

// Start validates opt, finds the stream's shards and starts reading them.
// Stop ends it.
func Start(ctx context.Context, opt Options) (*Mapping, error) {
	if err := opt.Config.Validate(); err != nil {
		return nil, err
	}
	if opt.Streams == nil || opt.Function == nil || opt.StreamARN == "" {
		return nil, fmt.Errorf("esm: Streams, Function and StreamARN are required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = 250 * time.Millisecond
	}
	if opt.RetryBackoff <= 0 {
		opt.RetryBackoff = time.Second
	}
	if opt.MaxRetryBackoff < opt.RetryBackoff {
		opt.MaxRetryBackoff = max(time.Minute, opt.RetryBackoff)
	}
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Account == "" {
		opt.Account = "000000000000"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.FunctionName == "" {
		opt.FunctionName = "function"
	}
	seed := opt.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	m := &Mapping{opt: opt, cfg: opt.Config, shards: map[string]bool{}, rnd: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	ds, err := opt.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(opt.StreamARN)})
	if err != nil {
		return nil, fmt.Errorf("esm: describe stream %s: %w", opt.StreamARN, err)
	}
	for _, k := range ds.StreamDescription.KeySchema {
		if k.KeyType == types.KeyTypeHash {
			m.hashKey = aws.ToString(k.AttributeName)
		}
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.startShards(run, ds.StreamDescription.Shards)
	m.wg.Add(1)
	go m.discover(run)
	return m, nil
}

// Stop stops reading and invoking, and waits for it to end. An invocation
// in progress is cancelled.
func (m *Mapping) Stop() {
	m.cancel()
	m.wg.Wait()
}

// Stats returns what the mapping did so far.
func (m *Mapping) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

func (m *Mapping) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

// discover looks for new shards now and then, as Lambda does.
func (m *Mapping) discover(ctx context.Context) {
	defer m.wg.Done()
	for sleep(ctx, 10*time.Second) {
		ds, err := m.opt.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(m.opt.StreamARN)})
		if err != nil {
			continue
		}
		m.startShards(ctx, ds.StreamDescription.Shards)
	}
}

func (m *Mapping) startShards(ctx context.Context, shards []types.Shard) {
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		m.mu.Lock()
		known := m.shards[id]
		m.shards[id] = true
		m.mu.Unlock()
		if !known {
			m.wg.Add(1)
			go m.readShard(ctx, id)
		}
	}
}

// readShard reads one shard in order and hands each record that passes the
// filters to its lane: the lane of its partition key, so one item's records
// stay in order while up to ParallelizationFactor lanes invoke at once.
func (m *Mapping) readShard(ctx context.Context, shard string) {
	defer m.wg.Done()
	lanes := make([]*lane, m.cfg.ParallelizationFactor)
	var lwg sync.WaitGroup
	for i := range lanes {
		lanes[i] = newLane(m, shard)
		lwg.Add(1)
		go func() { defer lwg.Done(); lanes[i].run(ctx) }()
	}
	defer func() {
		for _, l := range lanes {
			l.close()
		}
		lwg.Wait()
	}()

	position := types.ShardIteratorType(m.cfg.StartingPosition)
	last := "" // the last sequence number read
	var iter *string
	for try := 1; ctx.Err() == nil; {
		if iter == nil {
			in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(m.opt.StreamARN), ShardId: aws.String(shard), ShardIteratorType: position}
			if last != "" {
				in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(last)
			}
			out, err := m.opt.Streams.GetShardIterator(ctx, in)
			var trimmed *types.TrimmedDataAccessException
			switch {
			case errors.As(err, &trimmed):
				m.opt.Log.Warn("esm: records passed the stream's retention unread", "shard", shard, "after", last)
				last, position = "", types.ShardIteratorTypeTrimHorizon
				continue
			case err != nil:
				if !sleep(ctx, m.backoff(try)) {
					return
				}
				try++
				continue
			}
			iter = out.ShardIterator
		}
		out, err := m.opt.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
		if err != nil {
			var expired *types.ExpiredIteratorException
			var trimmed *types.TrimmedDataAccessException
			var gone *types.ResourceNotFoundException
			switch {
			case errors.As(err, &expired):
				iter = nil // a new one after the last record read
			case errors.As(err, &trimmed):
				m.opt.Log.Warn("esm: records passed the stream's retention unread", "shard", shard, "after", last)
				iter, last, position = nil, "", types.ShardIteratorTypeTrimHorizon
			case errors.As(err, &gone):
				return
			default:
				if !sleep(ctx, m.backoff(try)) {
					return
				}
				try++
			}
			continue
		}
		try = 1
		// What one GetRecords returned reaches the lanes at once, so that
		// it can make one batch, as it does on Lambda.
		perLane := make([][]*record, len(lanes))
		read, filtered := 0, 0
		for _, r := range out.Records {
			rec, err := newRecord(r, m.opt.StreamARN, m.hashKey)
			if err != nil {
				m.opt.Log.Error("esm: unreadable record", "err", err)
				continue
			}
			last = rec.seq
			read++
			var ev any
			_ = json.Unmarshal(rec.raw, &ev)
			ok, err := MatchAny(m.cfg.Filters, ev)
			if err != nil {
				m.opt.Log.Error("esm: filter", "err", err)
			}
			if !ok {
				filtered++
				continue
			}
			h := fnv.New32a()
			h.Write([]byte(rec.partition))
			i := h.Sum32() % uint32(len(lanes))
			perLane[i] = append(perLane[i], rec)
		}
		m.count(func(s *Stats) { s.Read += read; s.Filtered += filtered; s.Pending += read - filtered })
		for i, recs := range perLane {
			if len(recs) > 0 {
				lanes[i].push(recs...)
			}
		}
		if out.NextShardIterator == nil {
			return // a closed shard read to its end
		}
		iter = out.NextShardIterator
		// Poll again at once while there is more; read no further ahead
		// than the lanes can use.
		if len(out.Records) == 0 || m.Stats().Pending > maxBuffered {
			if !sleep(ctx, m.opt.PollInterval) {
				return
			}
		}
	}
}

// maxBuffered bounds how far the readers run ahead of the invocations.
const maxBuffered = 10_000

// backoff is the wait before retry try (1, 2, ...).
func (m *Mapping) backoff(try int) time.Duration {
	d := m.opt.RetryBackoff
	for i := 1; i < try && d < m.opt.MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, m.opt.MaxRetryBackoff)
}

// sleep waits d, or less if ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
