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

// Lookup reads the record and chunk n's shard in one request, and the
// identity item too when this process has not seen the upload receiving (a
// new upload needs it for the identity check, and Count for its creation).
func (l *Ledger) Lookup(ctx context.Context, info upload.Info, n int) (upload.Slot, error) {
	for range 2 { // a refresh that finds the record changed looks again
		slot, err := l.lookup(ctx, info, n)
		if !errors.Is(err, errStale) && !errors.Is(err, errPast) {
			return slot, err
		}
	}
	return upload.Slot{}, errors.New("dynamoledger: the upload's record keeps changing")
}

func (l *Ledger) lookup(ctx context.Context, info upload.Info, n int) (upload.Slot, error) {
	k := l.shardOf(n)
	keys := []map[string]types.AttributeValue{metaKey(info.Key), shardKey(info.Key, k)}
	g, ok := l.gens.get(info.Key)
	seen := ok && !g.absent
	if !seen {
		keys = append(keys, identKey(upload.IdentityKey(info.Namespace, info.Identifier)))
	}
	items, err := l.batchGet(ctx, keys...)
	if err != nil {
		return upload.Slot{}, err
	}
	meta, shard := items[0], items[1]
	if meta == nil || l.dead(meta) {
		var id *identity
		if !seen {
			id = readIdentity(items[2])
		}
		return l.newSlot(ctx, info, meta, id)
	}
	state, gen := upload.State(getS(meta, "status")), getS(meta, "gen")
	if state != upload.StateReceiving {
		l.gens.forget(info.Key)
		return upload.Slot{State: state, Counted: true, Generation: gen}, nil
	}
	updated := time.UnixMilli(getN(meta, "updated"))
	l.gens.put(info.Key, genEntry{gen: gen, updated: updated})
	counted := slices.Contains(l.countedIn(meta, shard, k), int64(n))
	if counted && l.now().Sub(updated) >= l.keepFor()/8 {
		// The client will not send this chunk again: make sure the record
		// outlives the answer by most of IdleTTL (see the package doc).
		if err := l.touch(ctx, info.Key, gen, l.now()); err != nil {
			return upload.Slot{}, err
		}
	}
	return upload.Slot{State: state, Counted: counted, Generation: gen}, nil
}

// newSlot is Lookup's answer when the upload has no live record (meta is
// the dead one, or nil): a fresh generation, once the identity check has
// passed. id is the identity item if it was read with meta.
func (l *Ledger) newSlot(ctx context.Context, info upload.Info, meta map[string]types.AttributeValue, id *identity) (upload.Slot, error) {
	if id == nil {
		var err error
		if id, err = l.readIdentity(ctx, upload.IdentityKey(info.Namespace, info.Identifier)); err != nil {
			return upload.Slot{}, err
		}
	}
	if err := l.checkHolder(ctx, info, *id); err != nil {
		l.gens.forget(info.Key)
		return upload.Slot{}, err
	}
	// Count follows if the chunk is stored: it can claim the identity
	// straight away, its current state in hand.
	l.gens.put(info.Key, genEntry{absent: true, ident: *id})
	slot := upload.Slot{State: upload.StateUnknown, New: true, Generation: newGeneration()}
	if meta != nil {
		slot.Replaces = getS(meta, "gen")
	}
	return slot, nil
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
func (l *Ledger) Count(ctx context.Context, info upload.Info, n int, slot upload.Slot) (bool, error) {
	for range 4 { // a stale cache entry or a racing creation costs one more round
		var g genEntry
		var err error
		if slot.New && info.TotalChunks == 1 {
			// The first chunk is the whole upload: the record is born
			// ready, in one write (see beginReady).
			var ready bool
			if ready, err = l.beginReady(ctx, info, slot); err == nil {
				return ready, nil
			}
		} else if slot.New {
			g, err = l.begin(ctx, info, slot)
		} else {
			g, err = l.generation(ctx, info.Key, slot.Generation)
		}
		if err == nil && g.gen != "" {
			var ready bool
			if ready, err = l.countIn(ctx, info, n, g); err == nil {
				return ready, nil
			}
		}
		switch {
		case errors.Is(err, errStale):
			l.gens.forget(info.Key)
			cur, err := l.current(ctx, info, n)
			if err != nil {
				return false, err
			}
			if !cur.New && cur.Generation == slot.Generation {
				slot = cur // ours after all (created meanwhile): count again
				continue
			}
			return false, &upload.StaleSlotError{Current: cur}
		case errors.Is(err, errPast):
			l.gens.forget(info.Key)
			return false, nil
		default:
			return false, err
		}
	}
	return false, errors.New("dynamoledger: the upload's record keeps changing")
}

// generation confirms that gen is the generation of the upload's record and
// that it is receiving: from the cache while the entry is young, else by
// reading. A record past its idle expiry but not yet deleted still counts
// (countIn's touch revives it, and TTL never deletes an item whose expiry
// was moved past the present); one past its age limit does not.
func (l *Ledger) generation(ctx context.Context, key, gen string) (genEntry, error) {
	if g, ok := l.gens.get(key); ok && !g.absent && g.gen == gen {
		return g, nil
	}
	meta, err := l.getMeta(ctx, key)
	switch {
	case err != nil:
		return genEntry{}, err
	case meta == nil || getS(meta, "gen") != gen || l.tooOld(meta):
		return genEntry{}, errStale
	case upload.State(getS(meta, "status")) != upload.StateReceiving:
		return genEntry{}, errPast
	}
	g := genEntry{gen: gen, updated: time.UnixMilli(getN(meta, "updated"))}
	l.gens.put(key, g)
	return g, nil
}

// current reads where chunk n stands now, for a StaleSlotError.
func (l *Ledger) current(ctx context.Context, info upload.Info, n int) (upload.Slot, error) {
	k := l.shardOf(n)
	items, err := l.batchGet(ctx, metaKey(info.Key), shardKey(info.Key, k))
	if err != nil {
		return upload.Slot{}, err
	}
	meta, shard := items[0], items[1]
	switch {
	case meta == nil:
		return upload.Slot{State: upload.StateUnknown, New: true, Generation: newGeneration()}, nil
	case l.dead(meta):
		return upload.Slot{State: upload.StateUnknown, New: true, Generation: newGeneration(), Replaces: getS(meta, "gen")}, nil
	}
	slot := upload.Slot{State: upload.State(getS(meta, "status")), Generation: getS(meta, "gen")}
	slot.Counted = slot.State.PastReceiving() || slices.Contains(l.countedIn(meta, shard, k), int64(n))
	return slot, nil
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

// whileReceiving is the condition of every write to META that counting
// makes, and its values: the record is receiving, in generation gen, and
// (with MaxAge) younger than its age limit. Its idle expiry is not part of
// it: a write that counts a chunk of the generation revives a record that
// expired but is still there.
func (l *Ledger) whileReceiving(gen string, vals values) string {
	vals[":receiving"], vals[":gen"] = str(string(upload.StateReceiving)), str(gen)
	if l.MaxAge <= 0 {
		return "#status = :receiving AND #gen = :gen"
	}
	vals[":ageCut"] = millis(l.now().Add(-l.MaxAge))
	return "#status = :receiving AND #gen = :gen AND #created > :ageCut"
}

// touch sets META's updated and expiresAt afresh, confirming that gen is the
// record's generation and that it is receiving.
func (l *Ledger) touch(ctx context.Context, key, gen string, now time.Time) error {
	const set = "SET #updated = :now, #expiresAt = :exp"
	vals := values{":now": millis(now), ":exp": epoch(now.Add(l.idleTTL()))}
	cond := l.whileReceiving(gen, vals)
	_, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names(set, cond),
		ExpressionAttributeValues: vals,
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
	vals := values{":now": millis(now), ":exp": epoch(now.Add(l.idleTTL())), ":k": numSet(int64(k))}
	cond := l.whileReceiving(gen, vals)
	out, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names(set, cond),
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueUpdatedNew,
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
// It also makes the upload due for the re-drive (see due.go), should the
// stream never bring it to an assembler.
func (l *Ledger) markReady(ctx context.Context, info upload.Info, k int, gen string, now time.Time) (bool, error) {
	set := "SET #status = :ready, #updated = :now, #expiresAt = :exp, " + setDue
	vals := values{
		":ready": str(string(upload.StateReady)), ":now": millis(now), ":exp": epoch(now.Add(l.doneTTL())),
		":duePart": str(duePartition), ":dueAt": millis(now.Add(l.redriveAfter())),
	}
	// The size check repeats what the caller saw, inside the write that
	// depends on it.
	cond := l.whileReceiving(gen, vals) + " AND size(#full) = :shards"
	vals[":shards"] = num(int64(l.shardCount(info.TotalChunks)))
	if k >= 0 {
		set += " ADD #full :k"
		cond = l.whileReceiving(gen, vals)
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

// checkReceiving returns nil if the record is receiving in generation gen
// (within its age limit), errPast if it moved on from receiving in gen, and
// errStale if gen is not the record's generation any more (or there is no
// record).
func (l *Ledger) checkReceiving(ctx context.Context, key, gen string) error {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return err
	}
	if meta == nil || getS(meta, "gen") != gen || l.tooOld(meta) {
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

// begin creates the record of a new generation of the upload, slot's, once
// the identity is claimed for it: where there is none, or in place of the
// dead generation slot.Replaces if that is still the record and still dead.
// If another request created a record first, it returns errStale, unless
// that record is of slot's generation (another request of this process).
func (l *Ledger) begin(ctx context.Context, info upload.Info, slot upload.Slot) (genEntry, error) {
	var hint *identity
	if g, ok := l.gens.get(info.Key); ok && g.absent {
		hint = &g.ident
	}
	if err := l.claimIdentity(ctx, info, hint); err != nil {
		return genEntry{}, err
	}
	now := l.now()
	item, cond, vals := l.newRecord(info, slot, now)
	_, err := l.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: names(cond),
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		return l.generation(ctx, info.Key, slot.Generation)
	}
	if err != nil {
		return genEntry{}, fmt.Errorf("dynamoledger: create record: %w", err)
	}
	g := genEntry{gen: slot.Generation, updated: now}
	l.gens.put(info.Key, g)
	return g, nil
}

// beginReady creates the record of an upload of one chunk, whose only chunk
// is durable: ready at once, with one write and no shard item. No identity
// claim is written either: only a receiving upload holds its identifier, and
// this one is never receiving; the check that another receiving upload
// holds it (409) is a read, done by Lookup moments ago or here. It reports
// whether this call made the upload ready; a record another request created
// first is errStale (or errPast when it is of this generation).
func (l *Ledger) beginReady(ctx context.Context, info upload.Info, slot upload.Slot) (bool, error) {
	id := (*identity)(nil)
	if g, ok := l.gens.get(info.Key); ok && g.absent {
		id = &g.ident
	} else {
		var err error
		if id, err = l.readIdentity(ctx, upload.IdentityKey(info.Namespace, info.Identifier)); err != nil {
			return false, err
		}
	}
	if err := l.checkHolder(ctx, info, *id); err != nil {
		return false, err
	}
	now := l.now()
	item, cond, vals := l.newRecord(info, slot, now)
	item["status"], item["expiresAt"] = str(string(upload.StateReady)), epoch(now.Add(l.doneTTL()))
	item["full"] = numSet(0)
	item["duePart"], item["dueAt"] = str(duePartition), millis(now.Add(l.redriveAfter()))
	_, err := l.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: names(cond),
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		meta, err := l.getMeta(ctx, info.Key)
		if err == nil && meta != nil && getS(meta, "gen") == slot.Generation {
			return false, errPast // made ready by another request of this generation
		}
		if err == nil {
			err = errStale
		}
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("dynamoledger: create a ready record: %w", err)
	}
	l.gens.forget(info.Key)
	return true, nil
}

// newRecord is the record of a new generation of the upload, receiving,
// and the condition of its creation: no record, or the dead one slot
// replaces, still dead (a record is never revived once another generation
// may have been told it is gone, except by counting a chunk of its own,
// which this condition sees).
func (l *Ledger) newRecord(info upload.Info, slot upload.Slot, now time.Time) (map[string]types.AttributeValue, string, values) {
	item := metaKey(info.Key)
	for k, v := range map[string]types.AttributeValue{
		"key": str(info.Key), "gen": str(slot.Generation), "status": str(string(upload.StateReceiving)),
		"total": num(int64(info.TotalChunks)), "shards": num(int64(l.shardCount(info.TotalChunks))),
		"size": num(info.TotalSize), "chunkSize": num(info.ChunkSize),
		"ns": str(info.Namespace), "ident": str(info.Identifier), "name": str(info.FileName), "rel": str(info.RelativePath),
		"ctype":   str(info.ContentType),
		"created": millis(now), "updated": millis(now), "expiresAt": epoch(now.Add(l.idleTTL())),
	} {
		item[k] = v
	}
	cond, vals := "attribute_not_exists(#pk)", values(nil)
	if slot.Replaces != "" {
		cond += " OR (#gen = :old AND (#status = :failed OR (#status = :receiving AND (#expiresAt <= :nowSec OR #created <= :ageCut))))"
		ageCut := time.Time{}
		if l.MaxAge > 0 {
			ageCut = now.Add(-l.MaxAge)
		}
		vals = values{
			":old": str(slot.Replaces), ":failed": str(string(upload.StateFailed)),
			":receiving": str(string(upload.StateReceiving)), ":nowSec": epoch(now), ":ageCut": millis(ageCut),
		}
	}
	return item, cond, vals
}
