package dynamoledger

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// The Ledger type, its settings and their defaults, and what every part of
// the protocol judges a record by: whether it still stands (dead, tooOld)
// and how long it is kept at least (keepFor). The protocol itself is in the
// package doc; its steps are in lookup.go, create.go and count.go.

// API is the part of the DynamoDB client the ledger uses; *dynamodb.Client
// implements it. Tests wrap a real client to fail or abandon chosen calls.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Defaults for Ledger's zero fields.
const (
	DefaultIdleTTL  = 24 * time.Hour
	DefaultDoneTTL  = 7 * 24 * time.Hour
	DefaultChunkTTL = 30 * 24 * time.Hour
	// The stream brings a ready record to the assembler in seconds; a
	// quarter of an hour means it has failed or given up.
	DefaultRedriveAfter = 15 * time.Minute
)

// Ledger is the DynamoDB ledger. Only Client and Table are required.
type Ledger struct {
	Client API
	Table  string
	// IdleTTL: a receiving upload expires this long after its last chunk
	// (up to an eighth sooner, see the package doc).
	IdleTTL time.Duration
	// DoneTTL: a record that is ready or further is kept this long after its
	// last change (long enough for any assembly and the status page).
	DoneTTL time.Duration
	// ChunkTTL: shard and identity items are kept this long. An upload must
	// finish receiving within it, and within MaxAge.
	ChunkTTL time.Duration
	// MaxAge, if set, is the most time an upload may take from its first
	// chunk to its last: a receiving record older than that is dead (the
	// next chunk starts a new generation). It must end before S3's lifecycle
	// rule may delete the upload's first chunk objects (see awsdeploy).
	MaxAge time.Duration
	// RedriveAfter is how long after becoming ready an upload becomes due
	// for the re-drive, should the stream not have brought it to an
	// assembler by then (see due.go); 0 means DefaultRedriveAfter.
	RedriveAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// shardSize is how many chunks a shard holds; 0 means defaultShardSize,
	// which is what production always uses. Only the package's tests set it
	// (export_test.go), so that a few chunks make several shards. It is not
	// stored: every ledger counting on one table must use the same size.
	shardSize int

	gens genCache
}

var (
	// errStale means the generation we acted on is no longer the record's.
	errStale = errors.New("dynamoledger: stale generation")
	// errPast means the record is no longer receiving: nothing to count.
	errPast = errors.New("dynamoledger: upload past receiving")
)

// dead reports whether a record no longer stands (see the package doc): it
// failed, or it is receiving past its expiry or its age limit. DynamoDB's
// TTL deletes an expired item only some time after its expiry, and reads
// return it until then; the ledger goes by the time, not by the item.
func (l *Ledger) dead(meta map[string]types.AttributeValue) bool {
	switch upload.State(getS(meta, "status")) {
	case upload.StateFailed:
		return true
	case upload.StateReceiving:
		return getN(meta, "expiresAt") <= l.now().Unix() || l.tooOld(meta)
	}
	return false
}

// tooOld reports whether a record was created longer than MaxAge ago.
func (l *Ledger) tooOld(meta map[string]types.AttributeValue) bool {
	return l.MaxAge > 0 && !l.now().Before(time.UnixMilli(getN(meta, "created")).Add(l.MaxAge))
}

// keepFor is how long after its last update a record is kept at least: a
// receiving one expires IdleTTL after, a later one DoneTTL after.
func (l *Ledger) keepFor() time.Duration { return min(l.idleTTL(), l.doneTTL()) }
