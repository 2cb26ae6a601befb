package dynamoledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// The direct data path's part of the ledger (upload.Beginner). Clients
// write chunks to S3 themselves, with URLs the upload function signs for
// one chunk object of the upload's current generation each, so the record,
// and its generation, must exist before the first chunk: Begin creates it
// when the first URL is asked for, exactly as Count creates it for a first
// chunk on the proxy path (the identifier claimed, a dead record replaced),
// and nothing of the counting protocol changes.
//
// Each Begin also refreshes the record (updated, expiresAt), so that it
// stays live for its idle expiry after the last URL was handed out: chunks
// stored with those URLs (which live far shorter) find it live when their
// notification comes. And it puts the upload in the due index's partition
// checkPartition, due when its URLs have all run out: if the client has
// not asked for more by then, the re-drive lists what is stored and counts
// what no notification counted (a notification S3 never sent, or one the
// counting function gave up). markReady moves the upload into the
// partition of uploads owed assembly; a record that expires leaves the
// index with its item (and the re-drive takes a dead one out before that).

// checkPartition is the due index's partition of receiving uploads whose
// stored chunks are to be checked (duePartition holds uploads owed work).
const checkPartition = "check"

// Begin implements upload.Beginner.
func (l *Ledger) Begin(ctx context.Context, info upload.Info, chunks []int, checkAt time.Time) (upload.Begun, error) {
	for range 4 { // a record created or moved on meanwhile costs one more round
		b, err := l.beginOnce(ctx, info, chunks, checkAt)
		if !errors.Is(err, errStale) && !errors.Is(err, errPast) {
			return b, err
		}
		l.gens.forget(info.Key)
	}
	return upload.Begun{}, errors.New("dynamoledger: the upload's record keeps changing")
}

func (l *Ledger) beginOnce(ctx context.Context, info upload.Info, chunks []int, checkAt time.Time) (upload.Begun, error) {
	var shards []int
	for _, n := range chunks {
		if k := l.shardOf(n); !slices.Contains(shards, k) {
			shards = append(shards, k)
		}
	}
	keys := []map[string]types.AttributeValue{metaKey(info.Key), identKey(upload.IdentityKey(info.Namespace, info.Identifier))}
	for _, k := range shards {
		keys = append(keys, shardKey(info.Key, k))
	}
	items, err := l.batchGet(ctx, keys...)
	if err != nil {
		return upload.Begun{}, err
	}
	meta := items[0]
	b := upload.Begun{State: upload.StateReceiving}
	if meta == nil || l.dead(meta) {
		slot, err := l.newSlot(ctx, info, meta, readIdentity(items[1]))
		if err != nil {
			return upload.Begun{}, err
		}
		if _, err := l.begin(ctx, info, slot); err != nil {
			return upload.Begun{}, err
		}
		b.Generation, b.Replaced, b.Created = slot.Generation, slot.Replaces, true
		meta = nil // a new record: nothing of it is counted
	} else {
		b.Generation = getS(meta, "gen")
		if st := upload.State(getS(meta, "status")); st != upload.StateReceiving {
			l.gens.forget(info.Key)
			return upload.Begun{State: st, Generation: b.Generation}, nil
		}
	}
	if err := l.markForCheck(ctx, info.Key, b.Generation, checkAt); err != nil {
		return upload.Begun{}, err
	}
	if meta != nil {
		for i, k := range shards {
			for _, n := range l.countedIn(meta, items[2+i], k) {
				if slices.Contains(chunks, int(n)) {
					b.Counted = append(b.Counted, int(n))
				}
			}
		}
		slices.Sort(b.Counted)
	}
	return b, nil
}

// markForCheck refreshes the receiving record of generation gen (as a
// chunk's count would) and makes it due for a check at checkAt.
func (l *Ledger) markForCheck(ctx context.Context, key, gen string, checkAt time.Time) error {
	now := l.now()
	const set = "SET #updated = :now, #expiresAt = :exp, #duePart = :check, #dueAt = :checkAt"
	vals := values{
		":now": millis(now), ":exp": epoch(now.Add(l.idleTTL())),
		":check": str(checkPartition), ":checkAt": millis(checkAt),
	}
	cond := l.whileReceiving(gen, vals)
	err := l.update(ctx, metaKey(key), set, cond, vals)
	if isConditionFailed(err) {
		return l.whyNotReceiving(ctx, key, gen)
	}
	if err != nil {
		return fmt.Errorf("dynamoledger: refresh record: %w", err)
	}
	l.gens.put(key, genEntry{gen: gen, updated: now})
	return nil
}

// Peek implements upload.Beginner: one read of the record's item.
func (l *Ledger) Peek(ctx context.Context, key string) (upload.Record, error) {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return upload.Record{}, err
	}
	if meta == nil {
		return upload.Record{}, upload.ErrNotFound
	}
	return toRecord(meta), nil
}

// CheckDue implements upload.Beginner with one query of the due index.
func (l *Ledger) CheckDue(ctx context.Context, now time.Time, limit int) ([]string, error) {
	keys, err := l.dueIn(ctx, checkPartition, now, limit)
	if err != nil {
		return nil, fmt.Errorf("dynamoledger: query uploads due for a check: %w", err)
	}
	return keys, nil
}

// Counted implements upload.Beginner: the record and, while it is
// receiving, its shard items, read as Get reads them.
func (l *Ledger) Counted(ctx context.Context, key string) (upload.Record, []int, bool, error) {
	meta, err := l.getMeta(ctx, key)
	if err != nil {
		return upload.Record{}, nil, false, err
	}
	if meta == nil {
		return upload.Record{}, nil, false, upload.ErrNotFound
	}
	rec := toRecord(meta)
	if rec.State != upload.StateReceiving {
		return rec, nil, false, nil
	}
	keys := make([]map[string]types.AttributeValue, getN(meta, "shards"))
	for k := range keys {
		keys[k] = shardKey(key, k)
	}
	shards, err := l.batchGet(ctx, keys...)
	if err != nil {
		return upload.Record{}, nil, false, err
	}
	var counted []int
	for k, shard := range shards {
		for _, n := range l.countedIn(meta, shard, k) {
			counted = append(counted, int(n))
		}
	}
	slices.Sort(counted)
	rec.Received = len(counted)
	return rec, counted, !l.dead(meta), nil
}

// Checked implements upload.Beginner.
func (l *Ledger) Checked(ctx context.Context, key, gen string, next time.Time) error {
	update := "REMOVE #duePart, #dueAt"
	vals := values{":gen": str(gen), ":check": str(checkPartition)}
	if !next.IsZero() {
		update = "SET #dueAt = :next"
		vals[":next"] = millis(next)
	}
	const cond = "#gen = :gen AND #duePart = :check"
	err := l.update(ctx, metaKey(key), update, cond, vals)
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("dynamoledger: record a check: %w", err)
	}
	return nil
}
