package dynamoledger

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// Reading where a chunk stands: Lookup (the service's check before it
// stores a chunk, and flow.js's test GET), countedIn (which chunks of a shard
// read as counted), and current, the same reading for a StaleSlotError.

// Lookup reads the record and chunk n's shard in one request, and the
// identity item too when this process has not seen the upload receiving (a
// new upload needs it for the identity check).
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
	_, seen := l.gens.get(info.Key)
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
	// Whatever the cache holds of the upload is a generation that is gone.
	l.gens.forget(info.Key)
	if id == nil {
		var err error
		if id, err = l.readIdentity(ctx, upload.IdentityKey(info.Namespace, info.Identifier)); err != nil {
			return upload.Slot{}, err
		}
	}
	if err := l.checkHolder(ctx, info, *id); err != nil {
		return upload.Slot{}, err
	}
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
