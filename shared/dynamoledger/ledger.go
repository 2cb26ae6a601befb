// Package dynamoledger is the upload.Ledger on DynamoDB. It uses only
// single-item conditional writes and queries, no transactions, so it runs
// unchanged against AWS and against dynalite, the local DynamoDB.
//
// # Items
//
// One table, keys pk (S, hash) and sk (S, range); TTL on expiresAt.
//
//	pk=U#<upload key>  sk=META        one per upload
//	    key, gen, status ("receiving" | "ready" | "assembling" | "complete" | "failed"),
//	    total, remaining, ver, size, chunkSize, ns, ident, name, rel,
//	    created, updated (unix ms), expiresAt (unix s),
//	    owner, leaseUntil (unix ms), loc, bucket, object, rsize, etag, error, published
//	pk=U#<upload key>  sk=C#<chunk n, 8 digits>   one per chunk
//	    gen, counted (BOOL), expiresAt
//	pk=I#<identity key>  sk=ID        one per (namespace, identifier)
//	    uploadKey, expiresAt
//
// gen is random per META item: a record re-created after expiry gets a new
// one, and chunk items of an older generation are ignored everywhere.
// status is a string so that a DynamoDB stream filter can match
// {"status": {"S": ["ready"]}} (stream numbers are strings, so a filter
// cannot compare remaining with zero).
//
// # Counting a chunk
//
// The chunk object is durable before Count runs. Count then:
//
//  1. learns the generation (cached per process; a stale cache is caught by
//     the conditions below), creating META, after the identity check, if
//     there is none;
//  2. puts C#n {gen, counted=false}, unless it is counted in this generation;
//  3. decrements remaining on META, if still receiving in this generation;
//  4. if remaining <= 0: counts this generation's chunk items with a
//     consistent query; if all are there, sets status=ready on the condition
//     status=receiving, and tells the caller it made the upload ready; if
//     some are missing (remaining was over-decremented by retried requests),
//     sets remaining to the true number missing, on the condition that no
//     other decrement happened since (ver unchanged);
//  5. marks C#n counted.
//
// Every chunk item is written before its own decrement, so whoever sees
// remaining <= 0 last finds every item; a request cut off between steps is
// retried by the client and can only decrement again, never lose a count;
// the conditional write makes ready happen once.
//
// # Cost
//
// Per chunk, whatever the upload's size: Count makes three small writes
// (steps 2, 3, 5; the generation comes from a per-process cache, filled by
// Lookup), and each Lookup (flow.js's test GET, and the service's check
// before storing) is one BatchGetItem of two items. The first chunk adds the
// identity check and the record's creation; only the request that finishes
// the upload reads the chunk items, once (about 60 bytes each). No item grows
// with the number of chunks.
package dynamoledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

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
)

// Ledger is the DynamoDB ledger. Only Client and Table are required.
type Ledger struct {
	Client API
	Table  string
	// IdleTTL: a receiving upload expires this long after its last chunk.
	IdleTTL time.Duration
	// DoneTTL: a record that is ready or further is kept this long after its
	// last change (long enough for any assembly and the status page).
	DoneTTL time.Duration
	// ChunkTTL: chunk and identity items are kept this long. An upload must
	// finish receiving within it.
	ChunkTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	gens genCache
}

// Item key values.
const (
	metaSK   = "META"
	identSK  = "ID"
	uploadPK = "U#"
	identPK  = "I#"
	chunkSK  = "C#"
)

func metaKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(uploadPK + key), "sk": str(metaSK)}
}

func chunkKey(key string, n int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(uploadPK + key), "sk": str(fmt.Sprintf("%s%08d", chunkSK, n))}
}

func identKey(identity string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(identPK + identity), "sk": str(identSK)}
}

// errStale means the generation we acted on is no longer the record's.
var errStale = errors.New("dynamoledger: stale generation")

// Lookup reads the record and chunk n in one request.
func (l *Ledger) Lookup(ctx context.Context, info upload.Info, n int) (upload.State, bool, error) {
	mk, ck := metaKey(info.Key), chunkKey(info.Key, n)
	items, err := l.batchGet(ctx, mk, ck)
	if err != nil {
		return "", false, err
	}
	meta, chunk := items[0], items[1]
	if meta == nil {
		if err := l.checkIdentity(ctx, info); err != nil {
			return "", false, err
		}
		return upload.StateUnknown, false, nil
	}
	state := upload.State(getS(meta, "status"))
	gen := getS(meta, "gen")
	if state == upload.StateReceiving {
		l.gens.put(info.Key, gen)
	}
	counted := state.PastReceiving() || (chunk != nil && getS(chunk, "gen") == gen && getBool(chunk, "counted"))
	return state, counted, nil
}

// Count implements the counting protocol in the package doc.
func (l *Ledger) Count(ctx context.Context, info upload.Info, n int) (bool, error) {
	for range 4 { // a stale generation or a racing creation costs one more round
		gen, cached, past, err := l.generation(ctx, info)
		if err != nil || past {
			return false, err
		}
		ready, err := l.countIn(ctx, info, n, gen, cached)
		if errors.Is(err, errStale) {
			l.gens.forget(info.Key)
			continue
		}
		return ready, err
	}
	return false, errors.New("dynamoledger: the upload's record keeps changing")
}

// generation returns the generation of a receiving upload (creating its
// record if there is none), or past=true if it is no longer receiving.
func (l *Ledger) generation(ctx context.Context, info upload.Info) (gen string, cached, past bool, err error) {
	if gen, ok := l.gens.get(info.Key); ok {
		return gen, true, false, nil
	}
	meta, err := l.getMeta(ctx, info.Key)
	if err != nil {
		return "", false, false, err
	}
	if meta == nil {
		if meta, err = l.create(ctx, info); err != nil {
			return "", false, false, err
		}
	}
	if upload.State(getS(meta, "status")) != upload.StateReceiving {
		return "", false, true, nil
	}
	gen = getS(meta, "gen")
	l.gens.put(info.Key, gen)
	return gen, false, false, nil
}

func (l *Ledger) countIn(ctx context.Context, info upload.Info, n int, gen string, cached bool) (bool, error) {
	now := l.now()
	pk := str(uploadPK + info.Key)

	// Step 2: the chunk item, unless this generation counted it already.
	item := chunkKey(info.Key, n)
	item["gen"], item["counted"], item["expiresAt"] = str(gen), boolean(false), epoch(now.Add(l.chunkTTL()))
	const putCond = "attribute_not_exists(#pk) OR #gen <> :gen OR #counted = :false"
	_, err := l.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression:       aws.String(putCond),
		ExpressionAttributeNames:  names(putCond),
		ExpressionAttributeValues: values{":gen": str(gen), ":false": boolean(false)},
	})
	if isConditionFailed(err) {
		// Counted in generation gen; make sure gen is still the record's.
		if cached {
			return false, l.confirm(ctx, info.Key, gen)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dynamoledger: put chunk item: %w", err)
	}

	// Step 3: decrement.
	const decr = "SET #remaining = #remaining - :one, #ver = #ver + :one, #updated = :now, #expiresAt = :exp"
	const decrCond = "#status = :receiving AND #gen = :gen"
	out, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(info.Key),
		UpdateExpression:         aws.String(decr),
		ConditionExpression:      aws.String(decrCond),
		ExpressionAttributeNames: names(decr, decrCond),
		ExpressionAttributeValues: values{
			":one": num(1), ":now": millis(now), ":exp": epoch(now.Add(l.idleTTL())),
			":receiving": str(string(upload.StateReceiving)), ":gen": str(gen),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		// Not receiving any more (nothing to do), or another generation.
		return false, l.confirm(ctx, info.Key, gen)
	}
	if err != nil {
		return false, fmt.Errorf("dynamoledger: count chunk: %w", err)
	}
	remaining, ver, total := getN(out.Attributes, "remaining"), getN(out.Attributes, "ver"), getN(out.Attributes, "total")

	// Step 4: was that the last one?
	if remaining <= 0 {
		found, err := l.countChunks(ctx, pk, gen)
		if err != nil {
			return false, err
		}
		if found >= total {
			const set = "SET #status = :ready, #remaining = :zero, #updated = :now, #expiresAt = :exp"
			_, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String(l.Table), Key: metaKey(info.Key),
				UpdateExpression:         aws.String(set),
				ConditionExpression:      aws.String(decrCond),
				ExpressionAttributeNames: names(set, decrCond),
				ExpressionAttributeValues: values{
					":ready": str(string(upload.StateReady)), ":zero": num(0), ":now": millis(now),
					":exp": epoch(now.Add(l.doneTTL())), ":receiving": str(string(upload.StateReceiving)), ":gen": str(gen),
				},
			})
			if isConditionFailed(err) {
				return false, nil // someone else made it ready
			}
			if err != nil {
				return false, fmt.Errorf("dynamoledger: mark ready: %w", err)
			}
			// Past receiving, every chunk reads as counted: step 5 is moot.
			l.gens.forget(info.Key)
			return true, nil
		}
		// Over-decremented by retries: put remaining back to the truth, if
		// nobody decremented meanwhile (each decrement bumps ver). Losing
		// this race is fine: it only leaves remaining too low, never too high.
		const fix = "SET #remaining = :left, #ver = #ver + :one"
		const fixCond = "#ver = :ver AND #status = :receiving AND #gen = :gen"
		_, err = l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(l.Table), Key: metaKey(info.Key),
			UpdateExpression:         aws.String(fix),
			ConditionExpression:      aws.String(fixCond),
			ExpressionAttributeNames: names(fix, fixCond),
			ExpressionAttributeValues: values{
				":left": num(total - found), ":one": num(1), ":ver": num(ver),
				":receiving": str(string(upload.StateReceiving)), ":gen": str(gen),
			},
		})
		if err != nil && !isConditionFailed(err) {
			return false, fmt.Errorf("dynamoledger: repair count: %w", err)
		}
	}

	// Step 5: counted.
	const mark = "SET #counted = :true"
	const markCond = "#gen = :gen"
	_, err = l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: chunkKey(info.Key, n),
		UpdateExpression:          aws.String(mark),
		ConditionExpression:       aws.String(markCond),
		ExpressionAttributeNames:  names(mark, markCond),
		ExpressionAttributeValues: values{":true": boolean(true), ":gen": str(gen)},
	})
	if err != nil && !isConditionFailed(err) {
		return false, fmt.Errorf("dynamoledger: mark chunk counted: %w", err)
	}
	return false, nil
}

// confirm returns errStale unless gen is still the record's generation.
func (l *Ledger) confirm(ctx context.Context, key, gen string) error {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return err
	}
	if meta == nil || getS(meta, "gen") != gen {
		return errStale
	}
	return nil
}

// countChunks counts generation gen's chunk items with a consistent query.
func (l *Ledger) countChunks(ctx context.Context, pk types.AttributeValue, gen string) (int64, error) {
	const keyCond = "#pk = :pk AND begins_with(#sk, :c)"
	const filter = "#gen = :gen"
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.Table),
		KeyConditionExpression:    aws.String(keyCond),
		FilterExpression:          aws.String(filter),
		ExpressionAttributeNames:  names(keyCond, filter),
		ExpressionAttributeValues: values{":pk": pk, ":c": str(chunkSK), ":gen": str(gen)},
		Select:                    types.SelectCount,
		ConsistentRead:            aws.Bool(true),
	}
	var found int64
	for range 100_000 { // a page holds at least ~10,000 chunk items
		out, err := l.Client.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("dynamoledger: count chunk items: %w", err)
		}
		found += int64(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return found, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return 0, errors.New("dynamoledger: too many pages of chunk items")
}

// create makes the upload's record after checking that no other receiving
// upload holds its identifier, and returns it (or the one a concurrent
// request made first).
func (l *Ledger) create(ctx context.Context, info upload.Info) (map[string]types.AttributeValue, error) {
	if err := l.claimIdentity(ctx, info); err != nil {
		return nil, err
	}
	now := l.now()
	item := metaKey(info.Key)
	for k, v := range map[string]types.AttributeValue{
		"key": str(info.Key), "gen": str(newGeneration()), "status": str(string(upload.StateReceiving)),
		"total": num(int64(info.TotalChunks)), "remaining": num(int64(info.TotalChunks)), "ver": num(0),
		"size": num(info.TotalSize), "chunkSize": num(info.ChunkSize),
		"ns": str(info.Namespace), "ident": str(info.Identifier), "name": str(info.FileName), "rel": str(info.RelativePath),
		"created": millis(now), "updated": millis(now), "expiresAt": epoch(now.Add(l.idleTTL())),
	} {
		item[k] = v
	}
	const cond = "attribute_not_exists(#pk)"
	_, err := l.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: names(cond),
	})
	if isConditionFailed(err) {
		meta, err := l.getMeta(ctx, info.Key)
		if err == nil && meta == nil {
			err = errors.New("dynamoledger: record vanished while being created")
		}
		return meta, err
	}
	if err != nil {
		return nil, fmt.Errorf("dynamoledger: create record: %w", err)
	}
	return item, nil
}

// claimIdentity points the identity item at this upload, unless another
// upload still receiving holds it (ErrConflict). It is a compare-and-swap,
// so two uploads that start together under one identifier cannot both win.
func (l *Ledger) claimIdentity(ctx context.Context, info upload.Info) error {
	identity := upload.IdentityKey(info.Namespace, info.Identifier)
	for range 4 {
		holder, err := l.identityHolder(ctx, identity)
		if err != nil {
			return err
		}
		if holder == info.Key {
			return nil
		}
		if holder != "" {
			busy, err := l.receiving(ctx, holder)
			if err != nil {
				return err
			}
			if busy {
				return fmt.Errorf("dynamoledger: %w", upload.ErrConflict)
			}
		}
		item := identKey(identity)
		item["uploadKey"], item["expiresAt"] = str(info.Key), epoch(l.now().Add(l.chunkTTL()))
		cond, vals := "attribute_not_exists(#pk)", values(nil)
		if holder != "" {
			cond, vals = "#uploadKey = :holder", values{":holder": str(holder)}
		}
		_, err = l.Client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(l.Table), Item: item,
			ConditionExpression: aws.String(cond), ExpressionAttributeNames: names(cond),
			ExpressionAttributeValues: vals,
		})
		if err == nil {
			return nil
		}
		if !isConditionFailed(err) {
			return fmt.Errorf("dynamoledger: claim identifier: %w", err)
		}
	}
	return errors.New("dynamoledger: identifier contended; retry")
}

// checkIdentity is claimIdentity's read-only half, for Lookup.
func (l *Ledger) checkIdentity(ctx context.Context, info upload.Info) error {
	holder, err := l.identityHolder(ctx, upload.IdentityKey(info.Namespace, info.Identifier))
	if err != nil || holder == "" || holder == info.Key {
		return err
	}
	busy, err := l.receiving(ctx, holder)
	if err == nil && busy {
		err = fmt.Errorf("dynamoledger: %w", upload.ErrConflict)
	}
	return err
}

func (l *Ledger) identityHolder(ctx context.Context, identity string) (string, error) {
	out, err := l.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: identKey(identity), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("dynamoledger: read identity: %w", err)
	}
	return getS(out.Item, "uploadKey"), nil
}

// receiving reports whether the upload is still taking chunks. A record past
// its expiry time counts as gone even before DynamoDB's TTL removes it
// (which may take days).
func (l *Ledger) receiving(ctx context.Context, key string) (bool, error) {
	meta, err := l.getMeta(ctx, key)
	if err != nil || meta == nil {
		return false, err
	}
	return upload.State(getS(meta, "status")) == upload.StateReceiving &&
		getN(meta, "expiresAt") > l.now().Unix(), nil
}

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

// batchGet reads items by key, consistently, in one request (repeated for
// keys DynamoDB leaves unprocessed). Missing items come back nil.
func (l *Ledger) batchGet(ctx context.Context, keys ...map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	req := map[string]types.KeysAndAttributes{l.Table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	var got []map[string]types.AttributeValue
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
		got = append(got, out.Responses[l.Table]...)
		req = out.UnprocessedKeys
	}
	res := make([]map[string]types.AttributeValue, len(keys))
	for i, k := range keys {
		for _, it := range got {
			if getS(it, "pk") == getS(k, "pk") && getS(it, "sk") == getS(k, "sk") {
				res[i] = it
			}
		}
	}
	return res, nil
}

// Get returns the record.
func (l *Ledger) Get(ctx context.Context, key string) (upload.Record, error) {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return upload.Record{}, err
	}
	if meta == nil {
		return upload.Record{}, upload.ErrNotFound
	}
	return toRecord(meta), nil
}

// Claim implements upload.Ledger.
func (l *Ledger) Claim(ctx context.Context, key, owner string, lease time.Duration) (upload.Record, error) {
	now := l.now()
	const set = "SET #status = :assembling, #owner = :owner, #leaseUntil = :until, #updated = :now, #expiresAt = :exp"
	const cond = "#status = :ready OR (#status = :assembling AND (#owner = :owner OR #leaseUntil < :now))"
	out, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression:         aws.String(set),
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: names(set, cond),
		ExpressionAttributeValues: values{
			":assembling": str(string(upload.StateAssembling)), ":ready": str(string(upload.StateReady)),
			":owner": str(owner), ":until": millis(now.Add(lease)), ":now": millis(now),
			":exp": epoch(now.Add(lease + l.doneTTL())),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
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
	return toRecord(out.Attributes), nil
}

// Complete implements upload.Ledger.
func (l *Ledger) Complete(ctx context.Context, key, owner string, res upload.Result) error {
	now := l.now()
	const set = "SET #status = :complete, #loc = :loc, #bucket = :bucket, #object = :object, #rsize = :rsize, #etag = :etag, #updated = :now, #expiresAt = :exp REMOVE #leaseUntil"
	return l.finish(ctx, key, owner, upload.StateComplete, set, values{
		":complete": str(string(upload.StateComplete)), ":loc": str(res.Location), ":bucket": str(res.Bucket),
		":object": str(res.Object), ":rsize": num(res.Size), ":etag": str(res.ETag),
		":now": millis(now), ":exp": epoch(now.Add(l.doneTTL())),
	})
}

// Fail implements upload.Ledger.
func (l *Ledger) Fail(ctx context.Context, key, owner, reason string) error {
	now := l.now()
	const set = "SET #status = :failed, #error = :reason, #updated = :now, #expiresAt = :exp REMOVE #leaseUntil"
	return l.finish(ctx, key, owner, upload.StateFailed, set, values{
		":failed": str(string(upload.StateFailed)), ":reason": str(reason),
		":now": millis(now), ":exp": epoch(now.Add(l.doneTTL())),
	})
}

// finish moves an upload owner is assembling to its end state. Repeating it
// is a no-op for that owner; anyone else, including an owner whose lease was
// taken over by the one who finished, gets ErrLeaseLost.
func (l *Ledger) finish(ctx context.Context, key, owner string, to upload.State, set string, vals values) error {
	const cond = "#status = :assembling AND #owner = :owner"
	vals[":assembling"], vals[":owner"] = str(string(upload.StateAssembling)), str(owner)
	_, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression: aws.String(set), ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: names(set, cond), ExpressionAttributeValues: vals,
	})
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
	const set = "SET #published = :true"
	const cond = "attribute_exists(#pk)"
	_, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression: aws.String(set), ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: names(set, cond), ExpressionAttributeValues: values{":true": boolean(true)},
	})
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
			FileName: getS(m, "name"), RelativePath: getS(m, "rel"),
			TotalSize: getN(m, "size"), ChunkSize: getN(m, "chunkSize"), TotalChunks: int(total),
		},
		Generation: getS(m, "gen"),
		State:      upload.State(getS(m, "status")),
		CreatedAt:  time.UnixMilli(getN(m, "created")),
		UpdatedAt:  time.UnixMilli(getN(m, "updated")),
		Owner:      getS(m, "owner"),
		Error:      getS(m, "error"),
		Published:  getBool(m, "published"),
	}
	if _, ok := m["leaseUntil"]; ok {
		rec.LeaseUntil = time.UnixMilli(getN(m, "leaseUntil"))
	}
	// remaining may have been over-decremented; Received is for display.
	rec.Received = int(min(max(total-getN(m, "remaining"), 0), total))
	if rec.State.PastReceiving() {
		rec.Received = int(total)
	}
	if rec.State == upload.StateComplete {
		rec.Result = &upload.Result{
			Location: getS(m, "loc"), Bucket: getS(m, "bucket"), Object: getS(m, "object"),
			Size: getN(m, "rsize"), ETag: getS(m, "etag"),
		}
	}
	return rec
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Ledger) idleTTL() time.Duration  { return orDefault(l.IdleTTL, DefaultIdleTTL) }
func (l *Ledger) doneTTL() time.Duration  { return orDefault(l.DoneTTL, DefaultDoneTTL) }
func (l *Ledger) chunkTTL() time.Duration { return orDefault(l.ChunkTTL, DefaultChunkTTL) }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func newGeneration() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// genCache remembers the generation of receiving uploads this process has
// seen, saving a read per chunk. Every write that depends on it is
// conditioned on it, so a stale entry costs a retry, never a wrong count.
type genCache struct {
	mu sync.Mutex
	m  map[string]string
}

const genCacheMax = 10_000

func (c *genCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.m[key]
	return g, ok
}

func (c *genCache) put(key, gen string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= genCacheMax {
		c.m = make(map[string]string) // crude but bounded
	}
	c.m[key] = gen
}

func (c *genCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// Attribute value helpers.

type values = map[string]types.AttributeValue

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func boolean(b bool) types.AttributeValue     { return &types.AttributeValueMemberBOOL{Value: b} }
func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }
func epoch(t time.Time) types.AttributeValue  { return num(t.Unix()) }

func getS(m map[string]types.AttributeValue, k string) string {
	if v, ok := m[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(m map[string]types.AttributeValue, k string) int64 {
	if v, ok := m[k].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getBool(m map[string]types.AttributeValue, k string) bool {
	v, ok := m[k].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

// names maps every #name in the expressions to the attribute of that name.
// Writing every attribute as #name sidesteps DynamoDB's long list of reserved
// words (status, key, size, name, owner ...), and deriving the map from the
// expressions keeps it exact: DynamoDB rejects unused names.
func names(exprs ...string) map[string]string {
	m := map[string]string{}
	for _, e := range exprs {
		for _, match := range nameRE.FindAllStringSubmatch(e, -1) {
			m["#"+match[1]] = match[1]
		}
	}
	return m
}

var nameRE = regexp.MustCompile(`#([A-Za-z][A-Za-z0-9]*)`)

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
