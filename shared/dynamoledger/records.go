package dynamoledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// Reading records (getMeta, batchGet, Get) and the assembler's writes to
// them: Claim, Complete, Postpone, Fail and MarkPublished.

func (l *Ledger) getMeta(ctx context.Context, key string) (map[string]types.AttributeValue, error) {
	out, err := l.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamoledger: read record: %w", err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// batchGetMax is the most keys DynamoDB takes in one BatchGetItem.
const batchGetMax = 100

// batchGet reads items by key, consistently, in one request per 100 keys
// (repeated for keys DynamoDB leaves unprocessed). Missing items come back nil.
func (l *Ledger) batchGet(ctx context.Context, keys ...map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	found := map[[2]string]map[string]types.AttributeValue{}
	for batch := range slices.Chunk(keys, batchGetMax) {
		req := map[string]types.KeysAndAttributes{l.Table: {Keys: batch, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt == 10 {
				return nil, errors.New("dynamoledger: batch read kept coming back unprocessed")
			}
			if attempt > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Duration(attempt*attempt) * 10 * time.Millisecond):
				}
			}
			out, err := l.Client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("dynamoledger: batch read: %w", err)
			}
			for _, it := range out.Responses[l.Table] {
				found[[2]string{getS(it, "pk"), getS(it, "sk")}] = it
			}
			req = out.UnprocessedKeys
		}
	}
	res := make([]map[string]types.AttributeValue, len(keys))
	for i, k := range keys {
		res[i] = found[[2]string{getS(k, "pk"), getS(k, "sk")}]
	}
	return res, nil
}

// Get returns the record. Received, while receiving, counts the chunks
// Lookup reads as counted, from the upload's shard items.
func (l *Ledger) Get(ctx context.Context, key string) (upload.Record, error) {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return upload.Record{}, err
	}
	if meta == nil {
		return upload.Record{}, upload.ErrNotFound
	}
	rec := toRecord(meta)
	if rec.State != upload.StateReceiving {
		return rec, nil
	}
	keys := make([]map[string]types.AttributeValue, getN(meta, "shards"))
	for k := range keys {
		keys[k] = shardKey(key, k)
	}
	shards, err := l.batchGet(ctx, keys...)
	if err != nil {
		return upload.Record{}, err
	}
	for k, shard := range shards {
		rec.Received += len(l.countedIn(meta, shard, k))
	}
	return rec, nil
}

// Claim implements upload.Ledger.
func (l *Ledger) Claim(ctx context.Context, key, owner string, lease time.Duration) (upload.Record, error) {
	now := l.now()
	// The claim counts the attempt, and makes the upload due for the
	// re-drive when its lease runs out.
	const set = "SET #status = :assembling, #owner = :owner, #leaseUntil = :until, #updated = :now, #expiresAt = :exp, #dueAt = :until ADD #attempts :one"
	const cond = "#status = :ready OR (#status = :assembling AND (#owner = :owner OR #leaseUntil < :now))"
	vals := values{
		":assembling": str(string(upload.StateAssembling)), ":ready": str(string(upload.StateReady)),
		":owner": str(owner), ":until": millis(now.Add(lease)), ":now": millis(now),
		":exp": epoch(now.Add(lease + l.doneTTL())), ":one": num(1),
	}
	meta, err := l.updateReturning(ctx, metaKey(key), set, cond, vals, types.ReturnValueAllNew)
	if isConditionFailed(err) {
		rec, err := l.Get(ctx, key)
		if err != nil {
			return rec, err
		}
		return rec, upload.ErrNotClaimable
	}
	if err != nil {
		return upload.Record{}, fmt.Errorf("dynamoledger: claim: %w", err)
	}
	return toRecord(meta), nil
}

// Complete implements upload.Ledger.
func (l *Ledger) Complete(ctx context.Context, key, owner string, res upload.Result) error {
	now := l.now()
	const set = "SET #status = :complete, #loc = :loc, #bucket = :bucket, #object = :object, #rsize = :rsize, #etag = :etag, #crc = :crc, #rtype = :rtype, #rdisp = :rdisp, #updated = :now, #expiresAt = :exp REMOVE #leaseUntil"
	return l.finish(ctx, key, owner, upload.StateComplete, set, values{
		":complete": str(string(upload.StateComplete)), ":loc": str(res.Location), ":bucket": str(res.Bucket),
		":object": str(res.Object), ":rsize": num(res.Size), ":etag": str(res.ETag),
		":crc": str(res.CRC64NVME), ":rtype": str(res.ContentType), ":rdisp": str(res.ContentDisposition),
		":now": millis(now), ":exp": epoch(now.Add(l.doneTTL())),
	})
}

// Postpone implements upload.Ledger.
func (l *Ledger) Postpone(ctx context.Context, key, owner, reason string, until time.Time) error {
	const set = "SET #lastError = :reason, #leaseUntil = :until, #dueAt = :until"
	return l.finish(ctx, key, owner, upload.StateAssembling, set, values{
		":reason": str(reason), ":until": millis(until),
	})
}

// Fail implements upload.Ledger.
func (l *Ledger) Fail(ctx context.Context, key, owner, reason string) error {
	now := l.now()
	const set = "SET #status = :failed, #error = :reason, #updated = :now, #expiresAt = :exp REMOVE #leaseUntil, " + removeDue
	return l.finish(ctx, key, owner, upload.StateFailed, set, values{
		":failed": str(string(upload.StateFailed)), ":reason": str(reason),
		":now": millis(now), ":exp": epoch(now.Add(l.doneTTL())),
	})
}

// finish moves an upload owner is assembling to its end state (or, with to
// StateAssembling, records something of the assembly). Repeating it is a
// no-op for that owner; anyone else, including an owner whose lease was
// taken over by the one who finished, gets ErrLeaseLost.
func (l *Ledger) finish(ctx context.Context, key, owner string, to upload.State, set string, vals values) error {
	const cond = "#status = :assembling AND #owner = :owner"
	vals[":assembling"], vals[":owner"] = str(string(upload.StateAssembling)), str(owner)
	err := l.update(ctx, metaKey(key), set, cond, vals)
	if isConditionFailed(err) {
		rec, err := l.Get(ctx, key)
		if err != nil {
			return err
		}
		if rec.State == to && rec.Owner == owner {
			return nil
		}
		return upload.ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("dynamoledger: record %s: %w", to, err)
	}
	return nil
}

// MarkPublished implements upload.Ledger.
func (l *Ledger) MarkPublished(ctx context.Context, key string) error {
	// Nothing is owed any more: out of the re-drive's index.
	const set = "SET #published = :true REMOVE " + removeDue
	const cond = "attribute_exists(#pk)"
	err := l.update(ctx, metaKey(key), set, cond, values{":true": boolean(true)})
	if isConditionFailed(err) {
		return upload.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("dynamoledger: mark published: %w", err)
	}
	return nil
}

func toRecord(m map[string]types.AttributeValue) upload.Record {
	total := getN(m, "total")
	rec := upload.Record{
		Info: upload.Info{
			Key: getS(m, "key"), Namespace: getS(m, "ns"), Identifier: getS(m, "ident"),
			FileName: getS(m, "name"), RelativePath: getS(m, "rel"), ContentType: getS(m, "ctype"),
			TotalSize: getN(m, "size"), ChunkSize: getN(m, "chunkSize"), TotalChunks: int(total),
		},
		Generation: getS(m, "gen"),
		State:      upload.State(getS(m, "status")),
		CreatedAt:  time.UnixMilli(getN(m, "created")),
		UpdatedAt:  time.UnixMilli(getN(m, "updated")),
		Owner:      getS(m, "owner"),
		Attempts:   int(getN(m, "attempts")),
		LastError:  getS(m, "lastError"),
		Error:      getS(m, "error"),
		Published:  getBool(m, "published"),
	}
	if _, ok := m["leaseUntil"]; ok {
		rec.LeaseUntil = time.UnixMilli(getN(m, "leaseUntil"))
	}
	// While receiving, the count is in the shard items, which Get reads.
	if rec.State.PastReceiving() {
		rec.Received = int(total)
	}
	if rec.State == upload.StateComplete {
		rec.Result = &upload.Result{
			Location: getS(m, "loc"), Bucket: getS(m, "bucket"), Object: getS(m, "object"),
			Size: getN(m, "rsize"), ETag: getS(m, "etag"),
			CRC64NVME: getS(m, "crc"), ContentType: getS(m, "rtype"), ContentDisposition: getS(m, "rdisp"),
		}
	}
	return rec
}
