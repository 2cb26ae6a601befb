package dynamoledger

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// Creating the record of a new generation: a receiving one after the
// identity claim (begin), or, for an upload of one chunk, a ready one
// (beginReady).

// begin creates the record of a new generation of the upload, slot's, once
// the identity is claimed for it: where there is none, or in place of the
// dead generation slot.Replaces if that is still the record and still dead.
// If another request created a record first, it returns errStale, unless
// that record is of slot's generation (another request of this process).
func (l *Ledger) begin(ctx context.Context, info upload.Info, slot upload.Slot) (genEntry, error) {
	if err := l.claimIdentity(ctx, info); err != nil {
		return genEntry{}, err
	}
	now := l.now()
	item, cond, vals := l.newRecord(info, slot, now)
	err := l.put(ctx, item, cond, vals)
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
// holds it (409) is a read of the identity item, here as in Lookup. It reports
// whether this call made the upload ready; a record another request created
// first is errStale (or errPast when it is of this generation).
func (l *Ledger) beginReady(ctx context.Context, info upload.Info, slot upload.Slot) (bool, error) {
	id, err := l.readIdentity(ctx, upload.IdentityKey(info.Namespace, info.Identifier))
	if err != nil {
		return false, err
	}
	if err := l.checkHolder(ctx, info, *id); err != nil {
		return false, err
	}
	now := l.now()
	item, cond, vals := l.newRecord(info, slot, now)
	item["status"], item["expiresAt"] = str(string(upload.StateReady)), epoch(now.Add(l.doneTTL()))
	item["full"] = numSet(0)
	item["duePart"], item["dueAt"] = str(duePartition), millis(now.Add(l.redriveAfter()))
	err = l.put(ctx, item, cond, vals)
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
