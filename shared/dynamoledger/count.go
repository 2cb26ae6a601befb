package dynamoledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// Counting a chunk, steps 1 to 4 of the package doc: Count, the
// generation it counts in, and the conditional writes to the shard and to
// META it makes.

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
	if g, ok := l.gens.get(key); ok && g.gen == gen {
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
	err := l.update(ctx, metaKey(key), set, cond, vals)
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
		vals := values{":gen": str(gen), ":exp": exp, ":n": numSet(int64(n))}
		shard, err := l.updateReturning(ctx, shardKey(key, k), add, cond, vals, types.ReturnValueUpdatedNew)
		if err == nil {
			return len(getNS(shard, "chunks")), nil
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
		err = l.put(ctx, item, replace, values{":gen": str(gen)})
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
	meta, err := l.updateReturning(ctx, metaKey(key), set, cond, vals, types.ReturnValueUpdatedNew)
	if isConditionFailed(err) {
		return 0, l.whyNotReceiving(ctx, key, gen)
	}
	if err != nil {
		return 0, fmt.Errorf("dynamoledger: register a full shard: %w", err)
	}
	l.gens.put(key, genEntry{gen: gen, updated: now})
	return len(getNS(meta, "full")), nil
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
	err := l.update(ctx, metaKey(info.Key), set, cond, vals)
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
