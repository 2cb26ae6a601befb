// Package dynamoledger is the upload.Ledger on DynamoDB. It uses only
// single-item conditional writes and reads, no transactions, so it runs
// unchanged against AWS and against dynalite, the local DynamoDB.
//
// # Items
//
// One table, keys pk (S, hash) and sk (S, range); TTL on expiresAt.
//
//	pk=U#<upload key>  sk=META        one per upload
//	    key, gen, status ("receiving" | "ready" | "assembling" | "complete" | "failed"),
//	    total, shards, full (NS), size, chunkSize, ns, ident, name, rel,
//	    created, updated (unix ms), expiresAt (unix s),
//	    owner, leaseUntil (unix ms), loc, bucket, object, rsize, etag, error, published
//	pk=U#<upload key>  sk=S#<shard k, 6 digits>   one per 128 chunks
//	    gen, chunks (NS), expiresAt
//	pk=I#<identity key>  sk=ID        one per (namespace, identifier)
//	    uploadKey, expiresAt
//
// Chunk n belongs to shard k = (n-1)/128, whose set chunks holds the numbers
// counted so far; the last shard holds the remainder. 128 chunks a shard is
// the size every Ledger uses; only the package's own tests set a smaller one,
// to reach several shards with a few chunks. META's shards is the
// number of shards, full the set of those known to be complete. gen is random
// per META item: a record re-created after expiry gets a new one, and shard
// items of an older generation are ignored everywhere and replaced when
// written. status is a string so that a DynamoDB stream filter can match
// {"status": {"S": ["ready"]}}; shard and identity items have no status, so
// the filter never lets them through.
//
// # Counting a chunk
//
// The chunk object is durable before Count runs. Count then:
//
//  1. learns the generation (cached per process, see below), creating META,
//     after the identity check, if there is none;
//  2. adds n to its shard's set, on the condition that the shard is absent
//     or of this generation; a shard of an older one is replaced by {n};
//  3. if the set now holds all of the shard's chunks, adds the shard to
//     META's full, on the condition that the record is receiving in this
//     generation;
//  4. if full now holds every shard, sets status=ready on the same condition
//     and tells the caller it made the upload ready. An upload of one shard
//     (up to 128 chunks: most) does steps 3 and 4 in one write.
//
// Sets make repeats harmless: a retry, a duplicate or a concurrent request
// adds a number that is there already, so a chunk is never counted twice nor
// lost, and the conditional write makes ready happen once, only after every
// chunk was added, which each request did after storing its chunk.
//
// A request that dies after filling a shard (step 2) and before registering
// it (step 3), or after registering the last shard and before setting ready
// (step 4), leaves work that no later chunk would do. Lookup therefore reads
// the chunks of a full shard that is not in full as not counted, and every
// chunk as not counted once full holds every shard while the record is still
// receiving. The client of the failed request sends its chunk again (flow.js
// retries a failed POST, and tests every chunk when an upload is resumed);
// the resend is stored and counted again, finds the shard full and does
// steps 3 and 4.
//
// # The generation cache
//
// Step 2 is conditioned on the shard's generation, not on META's, so the
// generation Count acts on must still be the record's. A record is deleted,
// by DynamoDB's TTL or by Forget, only once its updated is
// min(IdleTTL, DoneTTL) old: every write sets expiresAt at least that far
// past updated, and Forget refuses younger records. A generation read
// together with an updated younger than an eighth of that window is therefore
// still the record's for the rest of it (the margin covers slow requests and
// clocks that disagree); an older cache entry is confirmed first by a
// conditional write to META that sets updated and expiresAt afresh (the
// touch). The touch, and step 3, are also what keep a receiving upload alive:
// it expires at least 7/8 of IdleTTL, and at most IdleTTL, after its last
// chunk.
//
// # Cost
//
// Per chunk, Count makes one write: step 2, to an item of under 1 KB (1
// WRU). Each shard adds one write to META (step 3) and each upload one more
// (step 4), and each process counting an upload's chunks touches META about
// once every eighth of IdleTTL. Each Lookup (flow.js's test GET, and the
// service's check before storing) is one BatchGetItem of two items, META and
// the chunk's shard, and of the identity item too until the process has seen
// the record; it also fills the generation cache. The first chunk adds the
// record's creation (two conditional puts: identity, META; Lookup's reads
// serve as the check before them), and the first write to a shard left by an
// older generation adds a read and a put. META grows by a few bytes per
// shard.
package dynamoledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
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
	// IdleTTL: a receiving upload expires this long after its last chunk
	// (up to an eighth sooner, see the package doc).
	IdleTTL time.Duration
	// DoneTTL: a record that is ready or further is kept this long after its
	// last change (long enough for any assembly and the status page).
	DoneTTL time.Duration
	// ChunkTTL: shard and identity items are kept this long. An upload must
	// finish receiving within it.
	ChunkTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// shardSize is how many chunks a shard holds; 0 means defaultShardSize,
	// which is what production always uses. Only the package's tests set it
	// (export_test.go), so that a few chunks make several shards. It is not
	// stored: every ledger counting on one table must use the same size.
	shardSize int

	gens genCache
}

// Item key values.
const (
	metaSK   = "META"
	identSK  = "ID"
	uploadPK = "U#"
	identPK  = "I#"
	shardSK  = "S#"
)

// defaultShardSize is how many chunks one shard item holds. 128 chunk
// numbers of up to 6 digits take 4 bytes each, so a shard item stays well
// under 1 KB and every write to it costs one write unit (DynamoDB bills a
// write per started KB of the larger of the item before and after).
const defaultShardSize = 128

// chunksPerShard is the ledger's shard size: defaultShardSize unless a test
// set another.
func (l *Ledger) chunksPerShard() int {
	if l.shardSize > 0 {
		return l.shardSize
	}
	return defaultShardSize
}

// shardOf is the shard chunk n belongs to.
func (l *Ledger) shardOf(n int) int { return (n - 1) / l.chunksPerShard() }

// shardCount is how many shards an upload of total chunks has.
func (l *Ledger) shardCount(total int) int {
	size := l.chunksPerShard()
	return (total + size - 1) / size
}

// shardLen is how many chunks shard k of an upload of total chunks holds.
func (l *Ledger) shardLen(k, total int) int {
	size := l.chunksPerShard()
	return min(size, total-k*size)
}

func metaKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(uploadPK + key), "sk": str(metaSK)}
}

func shardKey(key string, k int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(uploadPK + key), "sk": str(fmt.Sprintf("%s%06d", shardSK, k))}
}

func identKey(identity string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(identPK + identity), "sk": str(identSK)}
}

var (
	// errStale means the generation we acted on is no longer the record's.
	errStale = errors.New("dynamoledger: stale generation")
	// errPast means the record is no longer receiving: nothing to count.
	errPast = errors.New("dynamoledger: upload past receiving")
)

// Lookup reads the record and chunk n's shard in one request, and the
// identity item too when this process has not seen the upload receiving (a
// new upload needs it for the identity check, and Count for its creation).
func (l *Ledger) Lookup(ctx context.Context, info upload.Info, n int) (upload.State, bool, error) {
	k := l.shardOf(n)
	identity := upload.IdentityKey(info.Namespace, info.Identifier)
	keys := []map[string]types.AttributeValue{metaKey(info.Key), shardKey(info.Key, k)}
	g, ok := l.gens.get(info.Key)
	seen := ok && !g.absent
	if !seen {
		keys = append(keys, identKey(identity))
	}
	items, err := l.batchGet(ctx, keys...)
	if err != nil {
		return "", false, err
	}
	meta, shard := items[0], items[1]
	if meta == nil {
		holder := ""
		if seen { // the record has gone since: read the identity now
			if holder, err = l.identityHolder(ctx, identity); err != nil {
				return "", false, err
			}
		} else {
			holder = getS(items[2], "uploadKey")
		}
		if err := l.checkHolder(ctx, info, holder); err != nil {
			l.gens.forget(info.Key)
			return "", false, err
		}
		// Count follows if the chunk is stored: it can create the record
		// straight away, the identity's holder in hand.
		l.gens.put(info.Key, genEntry{absent: true, holder: holder})
		return upload.StateUnknown, false, nil
	}
	state := upload.State(getS(meta, "status"))
	if state != upload.StateReceiving {
		l.gens.forget(info.Key)
		return state, state.PastReceiving(), nil
	}
	l.gens.put(info.Key, genEntry{gen: getS(meta, "gen"), updated: time.UnixMilli(getN(meta, "updated"))})
	return state, slices.Contains(l.countedIn(meta, shard, k), int64(n)), nil
}

// countedIn returns the chunks of shard k (item shard, nil if absent) that
// read as counted while meta is receiving: none of another generation's
// shard, none of a full shard missing from full, and none at all once full
// holds every shard (see the package doc: the client must send one of them
// again to finish what a failed request left).
func (l *Ledger) countedIn(meta, shard map[string]types.AttributeValue, k int) []int64 {
	full := getNS(meta, "full")
	if shard == nil || getS(shard, "gen") != getS(meta, "gen") || int64(len(full)) >= getN(meta, "shards") {
		return nil
	}
	chunks := getNS(shard, "chunks")
	if len(chunks) >= l.shardLen(k, int(getN(meta, "total"))) && !slices.Contains(full, int64(k)) {
		return nil
	}
	return chunks
}

// Count implements the counting protocol in the package doc.
func (l *Ledger) Count(ctx context.Context, info upload.Info, n int) (bool, error) {
	for range 4 { // a stale generation or a racing creation costs one more round
		g, err := l.generation(ctx, info)
		if err == nil {
			var ready bool
			if ready, err = l.countIn(ctx, info, n, g); err == nil {
				return ready, nil
			}
		}
		switch {
		case errors.Is(err, errStale):
			l.gens.forget(info.Key)
		case errors.Is(err, errPast):
			l.gens.forget(info.Key)
			return false, nil
		default:
			return false, err
		}
	}
	return false, errors.New("dynamoledger: the upload's record keeps changing")
}

// generation returns the generation of a receiving upload, creating its
// record if there is none, or errPast if it is no longer receiving.
func (l *Ledger) generation(ctx context.Context, info upload.Info) (genEntry, error) {
	g, ok := l.gens.get(info.Key)
	if ok && !g.absent {
		return g, nil
	}
	var meta map[string]types.AttributeValue
	var err error
	if ok {
		// Lookup found no record moments ago: create it without reading
		// again. Both writes of create are conditional, so a record or an
		// identity that appeared meanwhile is found, not overwritten.
		meta, err = l.create(ctx, info, &g.holder)
	} else if meta, err = l.getMeta(ctx, info.Key); err == nil && meta == nil {
		meta, err = l.create(ctx, info, nil)
	}
	if err != nil {
		return genEntry{}, err
	}
	if upload.State(getS(meta, "status")) != upload.StateReceiving {
		return genEntry{}, errPast
	}
	g = genEntry{gen: getS(meta, "gen"), updated: time.UnixMilli(getN(meta, "updated"))}
	l.gens.put(info.Key, g)
	return g, nil
}

// countIn counts chunk n in generation g (steps 2 to 4).
func (l *Ledger) countIn(ctx context.Context, info upload.Info, n int, g genEntry) (bool, error) {
	now := l.now()
	if now.Sub(g.updated) >= l.keepFor()/8 {
		// The cache entry is too old to vouch for the generation.
		if err := l.touch(ctx, info.Key, g.gen, now); err != nil {
			return false, err
		}
	}
	k := l.shardOf(n)
	have, err := l.addToShard(ctx, info.Key, k, n, g.gen, now)
	if err != nil || have < l.shardLen(k, info.TotalChunks) {
		return false, err
	}
	if l.shardCount(info.TotalChunks) == 1 {
		// Registering the only shard completes the upload: steps 3 and 4
		// in one write.
		return l.markReady(ctx, info, k, g.gen, now)
	}
	full, err := l.registerShard(ctx, info.Key, k, g.gen, now)
	if err != nil || full < l.shardCount(info.TotalChunks) {
		return false, err
	}
	return l.markReady(ctx, info, -1, g.gen, now)
}

// whileReceiving is the condition of every write to META that counting makes.
const whileReceiving = "#status = :receiving AND #gen = :gen"

// touch sets META's updated and expiresAt afresh, confirming that gen is the
// record's generation and that it is receiving.
func (l *Ledger) touch(ctx context.Context, key, gen string, now time.Time) error {
	const set = "SET #updated = :now, #expiresAt = :exp"
	_, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression:         aws.String(set),
		ConditionExpression:      aws.String(whileReceiving),
		ExpressionAttributeNames: names(set, whileReceiving),
		ExpressionAttributeValues: values{
			":now": millis(now), ":exp": epoch(now.Add(l.idleTTL())),
			":receiving": str(string(upload.StateReceiving)), ":gen": str(gen),
		},
	})
	if isConditionFailed(err) {
		return l.whyNotReceiving(ctx, key, gen)
	}
	if err != nil {
		return fmt.Errorf("dynamoledger: touch record: %w", err)
	}
	l.gens.put(key, genEntry{gen: gen, updated: now})
	return nil
}

// addToShard adds chunk n to shard k in generation gen (step 2) and returns
// how many chunks the shard holds now.
func (l *Ledger) addToShard(ctx context.Context, key string, k, n int, gen string, now time.Time) (int, error) {
	exp := epoch(now.Add(l.chunkTTL()))
	for range 4 {
		const add = "SET #gen = :gen, #expiresAt = :exp ADD #chunks :n"
		const cond = "attribute_not_exists(#pk) OR #gen = :gen"
		out, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(l.Table), Key: shardKey(key, k),
			UpdateExpression:          aws.String(add),
			ConditionExpression:       aws.String(cond),
			ExpressionAttributeNames:  names(add, cond),
			ExpressionAttributeValues: values{":gen": str(gen), ":exp": exp, ":n": numSet(int64(n))},
			ReturnValues:              types.ReturnValueUpdatedNew,
		})
		if err == nil {
			return len(getNS(out.Attributes, "chunks")), nil
		}
		if !isConditionFailed(err) {
			return 0, fmt.Errorf("dynamoledger: add chunk to its shard: %w", err)
		}
		// The shard is another generation's. Ours is the record's (or we
		// stop here), so that one is older and its chunks count for nothing.
		if err := l.checkReceiving(ctx, key, gen); err != nil {
			return 0, err
		}
		item := shardKey(key, k)
		item["gen"], item["chunks"], item["expiresAt"] = str(gen), numSet(int64(n)), exp
		const replace = "attribute_not_exists(#pk) OR #gen <> :gen"
		_, err = l.Client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(l.Table), Item: item,
			ConditionExpression:       aws.String(replace),
			ExpressionAttributeNames:  names(replace),
			ExpressionAttributeValues: values{":gen": str(gen)},
		})
		if err == nil {
			return 1, nil
		}
		if !isConditionFailed(err) {
			return 0, fmt.Errorf("dynamoledger: replace an old shard: %w", err)
		}
		// Another request of this generation replaced it first: add to theirs.
	}
	return 0, errors.New("dynamoledger: the shard keeps changing")
}

// registerShard adds the full shard k to META's full (step 3) and returns
// how many shards full holds now.
func (l *Ledger) registerShard(ctx context.Context, key string, k int, gen string, now time.Time) (int, error) {
	const set = "SET #updated = :now, #expiresAt = :exp ADD #full :k"
	out, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression:         aws.String(set),
		ConditionExpression:      aws.String(whileReceiving),
		ExpressionAttributeNames: names(set, whileReceiving),
		ExpressionAttributeValues: values{
			":now": millis(now), ":exp": epoch(now.Add(l.idleTTL())), ":k": numSet(int64(k)),
			":receiving": str(string(upload.StateReceiving)), ":gen": str(gen),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if isConditionFailed(err) {
		return 0, l.whyNotReceiving(ctx, key, gen)
	}
	if err != nil {
		return 0, fmt.Errorf("dynamoledger: register a full shard: %w", err)
	}
	l.gens.put(key, genEntry{gen: gen, updated: now})
	return len(getNS(out.Attributes, "full")), nil
}

// markReady sets status=ready (step 4) and reports whether this call did.
// With k >= 0 it also registers shard k, the upload's only one (step 3).
func (l *Ledger) markReady(ctx context.Context, info upload.Info, k int, gen string, now time.Time) (bool, error) {
	set := "SET #status = :ready, #updated = :now, #expiresAt = :exp"
	// The size check repeats what the caller saw, inside the write that
	// depends on it.
	cond := whileReceiving + " AND size(#full) = :shards"
	vals := values{
		":ready": str(string(upload.StateReady)), ":now": millis(now), ":exp": epoch(now.Add(l.doneTTL())),
		":receiving": str(string(upload.StateReceiving)), ":gen": str(gen),
		":shards": num(int64(l.shardCount(info.TotalChunks))),
	}
	if k >= 0 {
		set += " ADD #full :k"
		cond = whileReceiving
		vals[":k"] = numSet(int64(k))
		delete(vals, ":shards")
	}
	_, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(info.Key),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names(set, cond),
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		if k >= 0 {
			// Ready already (someone else made it), or not ours to count.
			return false, l.whyNotReceiving(ctx, info.Key, gen)
		}
		return false, nil // someone else made it ready
	}
	if err != nil {
		return false, fmt.Errorf("dynamoledger: mark ready: %w", err)
	}
	l.gens.forget(info.Key)
	return true, nil
}

// checkReceiving returns nil if the record is receiving in generation gen,
// errPast if it moved on from receiving in gen, and errStale if gen is not
// the record's generation (or there is no record).
func (l *Ledger) checkReceiving(ctx context.Context, key, gen string) error {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return err
	}
	if meta == nil || getS(meta, "gen") != gen {
		return errStale
	}
	if upload.State(getS(meta, "status")) != upload.StateReceiving {
		return errPast
	}
	return nil
}

// whyNotReceiving explains a failed whileReceiving condition: errPast or
// errStale, or the error reading the record.
func (l *Ledger) whyNotReceiving(ctx context.Context, key, gen string) error {
	if err := l.checkReceiving(ctx, key, gen); err != nil {
		return err
	}
	// The condition failed, yet the record reads as receiving in gen; a
	// record never returns to receiving, so this should not be. Starting
	// over is safe.
	return errStale
}

// keepFor is how long after its last update a record is kept at least: a
// receiving one expires IdleTTL after, a later one DoneTTL after.
func (l *Ledger) keepFor() time.Duration { return min(l.idleTTL(), l.doneTTL()) }

// create makes the upload's record after checking that no other receiving
// upload holds its identifier, and returns it (or the one a concurrent
// request made first).
func (l *Ledger) create(ctx context.Context, info upload.Info, holder *string) (map[string]types.AttributeValue, error) {
	if err := l.claimIdentity(ctx, info, holder); err != nil {
		return nil, err
	}
	now := l.now()
	item := metaKey(info.Key)
	for k, v := range map[string]types.AttributeValue{
		"key": str(info.Key), "gen": str(newGeneration()), "status": str(string(upload.StateReceiving)),
		"total": num(int64(info.TotalChunks)), "shards": num(int64(l.shardCount(info.TotalChunks))),
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
// known, if set, is the holder as Lookup just read it, saving the first read
// (if it has changed since, the swap fails and the holder is read again).
func (l *Ledger) claimIdentity(ctx context.Context, info upload.Info, known *string) error {
	identity := upload.IdentityKey(info.Namespace, info.Identifier)
	for range 4 {
		var holder string
		var err error
		if known != nil {
			holder, known = *known, nil
		} else if holder, err = l.identityHolder(ctx, identity); err != nil {
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

// checkHolder is claimIdentity's read-only half, for Lookup: holder, the
// upload the identity item points at, must be this one, none, or one no
// longer receiving.
func (l *Ledger) checkHolder(ctx context.Context, info upload.Info, holder string) error {
	if holder == "" || holder == info.Key {
		return nil
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
	// While receiving, the count is in the shard items, which Get reads.
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
// seen, saving a read per chunk. An entry is trusted only while it is young
// (see the package doc); an older one is confirmed by a write conditioned on
// it, so a stale entry costs a retry, never a wrong count.
type genCache struct {
	mu sync.Mutex
	m  map[string]genEntry
}

// genEntry is a generation and the record's updated time when it was read,
// or the time of a write of ours that was conditioned on it.
//
// absent marks instead that Lookup found no record, and holder is who held
// the upload's identity then: a hint for Count's creation of the record.
type genEntry struct {
	gen     string
	updated time.Time
	absent  bool
	holder  string
}

const genCacheMax = 10_000

func (c *genCache) get(key string) (genEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.m[key]
	return g, ok
}

func (c *genCache) put(key string, g genEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= genCacheMax {
		c.m = make(map[string]genEntry) // crude but bounded
	}
	c.m[key] = g
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
func numSet(n int64) types.AttributeValue {
	return &types.AttributeValueMemberNS{Value: []string{strconv.FormatInt(n, 10)}}
}
func epoch(t time.Time) types.AttributeValue { return num(t.Unix()) }

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

// getNS returns a number set's members; a set that has none is absent.
func getNS(m map[string]types.AttributeValue, k string) []int64 {
	v, ok := m[k].(*types.AttributeValueMemberNS)
	if !ok {
		return nil
	}
	ns := make([]int64, len(v.Value))
	for i, s := range v.Value {
		ns[i], _ = strconv.ParseInt(s, 10, 64)
	}
	return ns
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
