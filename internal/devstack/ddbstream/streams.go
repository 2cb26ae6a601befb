// Package ddbstream is the dev stack's DynamoDB Streams: it keeps the stream
// records of the tables the DynamoDB front (package ddbfront) sees change,
// in shards with a retention, and serves them through the DynamoDB Streams
// API (ListStreams, DescribeStream, GetShardIterator, GetRecords) that the
// AWS SDK's dynamodbstreams client speaks, so that code reading a stream by
// sequence number runs against it unchanged.
//
// What it emulates, and how:
//
//   - A stream per table and enablement: enabling a stream (CreateTable or
//     UpdateTable with a StreamSpecification) makes a new stream with its
//     own ARN and label (the creation time, as on AWS); disabling it or
//     deleting the table closes its shards, which stay readable until their
//     records pass the retention.
//   - A fixed number of shards per stream (Options.Shards, 4 by default);
//     an item goes to the shard its partition key hashes to, so the records
//     of one item are in one shard, in the order the item changed. Shards do
//     not split or roll over as AWS's do every few hours: a reader that
//     handles parent and child shards is not exercised here.
//   - Sequence numbers are 21-digit decimal strings, strictly increasing
//     across all streams (AWS promises increasing per shard), so they compare
//     as numbers and as strings alike.
//   - Retention: a record older than Options.Retention (24 h by default, by
//     the injectable clock) is trimmed. A shard iterator or sequence number
//     that points at trimmed records gets TrimmedDataAccessException, and an
//     iterator unused for 15 minutes ExpiredIteratorException, as on AWS.
//   - GetRecords returns at most 1,000 records and about 1 MB per call.
//
// Records carry what AWS's do: eventID, eventName, eventVersion "1.1",
// eventSource "aws:dynamodb", awsRegion, and dynamodb with
// ApproximateCreationDateTime (whole seconds), Keys, NewImage and OldImage as
// the view type says, SequenceNumber, SizeBytes (approximated, see Size) and
// StreamViewType; a TTL delete carries userIdentity (Service,
// dynamodb.amazonaws.com).
package ddbstream

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"
)

// View types, as in StreamSpecification.StreamViewType.
const (
	KeysOnly        = "KEYS_ONLY"
	NewImage        = "NEW_IMAGE"
	OldImage        = "OLD_IMAGE"
	NewAndOldImages = "NEW_AND_OLD_IMAGES"
)

// ValidView reports whether v is a StreamViewType.
func ValidView(v string) bool {
	return v == KeysOnly || v == NewImage || v == OldImage || v == NewAndOldImages
}

// Options configures the streams.
type Options struct {
	// Region and Account go into ARNs and records; defaults us-east-1 and
	// 000000000000.
	Region, Account string
	// Shards per stream; 0 means 4.
	Shards int
	// Retention of records; 0 means 24 hours.
	Retention time.Duration
	// Now is the clock for record times, retention and iterator expiry;
	// nil means time.Now.
	Now func() time.Time
}

// Streams holds every stream of the emulated account.
type Streams struct {
	opt Options

	mu      sync.Mutex
	seq     uint64             // the last sequence number handed out
	streams map[string]*Stream // by ARN
	order   []*Stream          // by creation
	current map[string]*Stream // enabled stream by table name
}

// New returns empty streams.
func New(opt Options) *Streams {
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Account == "" {
		opt.Account = "000000000000"
	}
	if opt.Shards <= 0 {
		opt.Shards = 4
	}
	if opt.Retention <= 0 {
		opt.Retention = 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Streams{opt: opt, streams: map[string]*Stream{}, current: map[string]*Stream{}}
}

// Region is the region records and ARNs name.
func (s *Streams) Region() string { return s.opt.Region }

// Account is the account ARNs name.
func (s *Streams) Account() string { return s.opt.Account }

// KeyElement is one attribute of a table's key schema.
type KeyElement struct {
	AttributeName string
	KeyType       string // HASH or RANGE
}

// Stream is one table's stream.
type Stream struct {
	ARN, Label, Table, View string
	KeySchema               []KeyElement
	Created                 time.Time

	s       *Streams
	enabled bool
	shards  []*shard
}

type shard struct {
	id      string
	start   uint64 // StartingSequenceNumber: reserved, no record has it
	trimmed uint64 // records up to this sequence number are gone
	end     uint64 // EndingSequenceNumber once closed; 0 while open
	records []*Record
}

// Enable starts a new stream for table, closing the one it had. The table's
// key schema is needed to find an item's partition key.
func (s *Streams) Enable(table, view string, keys []KeyElement) (*Stream, error) {
	if !ValidView(view) {
		return nil, fmt.Errorf("ddbstream: stream view type %q", view)
	}
	hash := ""
	for _, k := range keys {
		if k.KeyType == "HASH" {
			hash = k.AttributeName
		}
	}
	if hash == "" {
		return nil, fmt.Errorf("ddbstream: table %s has no HASH key in %v", table, keys)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disableLocked(table)
	now := s.opt.Now().UTC()
	label := now.Format("2006-01-02T15:04:05.000")
	arn := fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s/stream/%s", s.opt.Region, s.opt.Account, table, label)
	for s.streams[arn] != nil { // two enablements within a millisecond
		now = now.Add(time.Millisecond)
		label = now.Format("2006-01-02T15:04:05.000")
		arn = fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s/stream/%s", s.opt.Region, s.opt.Account, table, label)
	}
	st := &Stream{ARN: arn, Label: label, Table: table, View: view, KeySchema: append([]KeyElement(nil), keys...),
		Created: now, s: s, enabled: true}
	for range s.opt.Shards {
		s.seq++
		var r [4]byte
		rand.Read(r[:])
		st.shards = append(st.shards, &shard{
			id:    fmt.Sprintf("shardId-%020d-%s", now.UnixMilli(), hex.EncodeToString(r[:])),
			start: s.seq, trimmed: s.seq,
		})
	}
	s.streams[arn] = st
	s.order = append(s.order, st)
	s.current[table] = st
	return st, nil
}

// Disable closes table's stream, if it has one enabled.
func (s *Streams) Disable(table string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disableLocked(table)
}

func (s *Streams) disableLocked(table string) {
	st := s.current[table]
	if st == nil {
		return
	}
	delete(s.current, table)
	st.enabled = false
	for _, sh := range st.shards {
		sh.end = sh.trimmed
		if n := len(sh.records); n > 0 {
			sh.end = sh.records[n-1].seq
		}
	}
}

// Current returns table's enabled stream, or nil.
func (s *Streams) Current(table string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[table]
}

// Lookup returns the stream with arn, or nil.
func (s *Streams) Lookup(arn string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[arn]
}

// Enabled reports whether the stream still records changes.
func (st *Stream) Enabled() bool {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	return st.enabled
}

// HashKey is the name of the table's partition key attribute.
func (st *Stream) HashKey() string {
	for _, k := range st.KeySchema {
		if k.KeyType == "HASH" {
			return k.AttributeName
		}
	}
	return ""
}

// Keys returns the key attributes of item.
func (st *Stream) Keys(item Item) Item {
	keys := Item{}
	for _, k := range st.KeySchema {
		if v, ok := item[k.AttributeName]; ok {
			keys[k.AttributeName] = v
		}
	}
	return keys
}

// ServiceIdentity is the userIdentity of a record TTL wrote.
var ServiceIdentity = &Identity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}

// Append records that an item changed from old to new (nil for "no item");
// identity is nil for a client's write and ServiceIdentity for TTL. It
// returns the record, or nil if old and new hold the same data (DynamoDB
// writes no record for a write that changes nothing) or the stream is
// disabled. The caller serializes the changes of one item (and calls Append
// in that order): that is what makes per-item order exact.
func (st *Stream) Append(old, new Item, identity *Identity) (*Record, error) {
	if Equal(old, new) {
		return nil, nil
	}
	image := new
	name := "MODIFY"
	switch {
	case old == nil:
		name = "INSERT"
	case new == nil:
		name = "REMOVE"
		image = old
	}
	keys := st.Keys(image)
	pk, err := Canonical(keys[st.HashKey()])
	if err != nil {
		return nil, fmt.Errorf("ddbstream: partition key of %v: %w", keys, err)
	}
	h := fnv.New32a()
	h.Write([]byte(pk))

	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !st.enabled {
		return nil, nil
	}
	now := s.opt.Now()
	s.seq++
	var id [16]byte
	rand.Read(id[:])
	r := &Record{
		EventID: hex.EncodeToString(id[:]), EventName: name, EventVersion: "1.1",
		EventSource: "aws:dynamodb", AWSRegion: s.opt.Region, UserIdentity: identity,
		Dynamodb: StreamRecord{
			ApproximateCreationDateTime: now.Unix(), Keys: keys,
			SequenceNumber: formatSeq(s.seq), StreamViewType: st.View,
		},
		seq: s.seq, created: now,
	}
	if new != nil && (st.View == NewImage || st.View == NewAndOldImages) {
		r.Dynamodb.NewImage = new
	}
	if old != nil && (st.View == OldImage || st.View == NewAndOldImages) {
		r.Dynamodb.OldImage = old
	}
	r.Dynamodb.SizeBytes = Size(keys) + Size(r.Dynamodb.NewImage) + Size(r.Dynamodb.OldImage)
	sh := st.shards[h.Sum32()%uint32(len(st.shards))]
	s.trimLocked(sh)
	sh.records = append(sh.records, r)
	return r, nil
}

// trimLocked drops sh's records past the retention.
func (s *Streams) trimLocked(sh *shard) {
	cut := s.opt.Now().Add(-s.opt.Retention)
	i := sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].created.Before(cut) })
	if i == 0 {
		return
	}
	sh.trimmed = sh.records[i-1].seq
	sh.records = append([]*Record(nil), sh.records[i:]...)
}

// formatSeq renders a sequence number in 21 digits (like AWS's): a 1 and
// the counter in 20 digits, so that string and numeric order agree.
func formatSeq(n uint64) string { return fmt.Sprintf("1%020d", n) }

func parseSeq(s string) (uint64, bool) {
	if len(s) != 21 || s[0] != '1' {
		return 0, false
	}
	n, err := strconv.ParseUint(s[1:], 10, 64)
	return n, err == nil
}
