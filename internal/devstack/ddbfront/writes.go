package ddbfront

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"

	"github.com/flowgate/flowgate/internal/devstack/ddbstream"
)

// keyLocks is a mutex per item, made on demand and dropped when unused.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks the items ids, in sorted order (so that two batches never
// deadlock), and returns the unlock.
func (l *keyLocks) lock(ids []string) (unlock func()) {
	ids = append([]string(nil), ids...)
	sort.Strings(ids)
	var held []*keyLock
	var names []string
	for i, id := range ids {
		if i > 0 && id == ids[i-1] {
			continue
		}
		l.mu.Lock()
		if l.m == nil {
			l.m = map[string]*keyLock{}
		}
		k := l.m[id]
		if k == nil {
			k = &keyLock{}
			l.m[id] = k
		}
		k.refs++
		l.mu.Unlock()
		k.mu.Lock()
		held = append(held, k)
		names = append(names, id)
	}
	return func() {
		for i, k := range held {
			k.mu.Unlock()
			l.mu.Lock()
			if k.refs--; k.refs == 0 {
				delete(l.m, names[i])
			}
			l.mu.Unlock()
		}
	}
}

// itemID names an item for locking.
func itemID(table string, key ddbstream.Item) string {
	c, err := ddbstream.CanonicalItem(key)
	if err != nil { // an odd key: dynalite will refuse the write anyway
		b, _ := json.Marshal(key)
		c = string(b)
	}
	return table + "\x00" + c
}

// change is one item a write may change.
type change struct {
	st     *ddbstream.Stream
	table  string
	key    ddbstream.Item
	before ddbstream.Item
}

// keyOf returns the key attributes of item (or of a Key) per the table's
// key schema, or nil if one is missing.
func keyOf(t *tableInfo, item ddbstream.Item) ddbstream.Item {
	key := ddbstream.Item{}
	for _, k := range t.keys {
		v, ok := item[k.AttributeName]
		if !ok {
			return nil
		}
		key[k.AttributeName] = v
	}
	return key
}

// itemWrite handles PutItem, UpdateItem and DeleteItem.
func (f *Front) itemWrite(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	var req struct {
		TableName string
		Item, Key ddbstream.Item
	}
	if json.Unmarshal(body, &req) != nil {
		f.forward(w, r, body)
		return
	}
	st := f.streams.Current(req.TableName)
	if st == nil {
		f.forward(w, r, body)
		return
	}
	t, err := f.table(r.Context(), req.TableName)
	if err != nil {
		writeError(w, err)
		return
	}
	src := req.Key
	if op == "PutItem" {
		src = req.Item
	}
	key := keyOf(t, src)
	if key == nil {
		f.forward(w, r, body) // dynalite says what is wrong
		return
	}
	f.recordedWrite(w, r, body, []change{{st: st, table: req.TableName, key: key}})
}

// batchWrite handles BatchWriteItem: each put or delete is a change of its
// own, recorded like a single write's (and only if it took place: an
// unprocessed item is unchanged).
func (f *Front) batchWrite(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		RequestItems map[string][]struct {
			PutRequest    *struct{ Item ddbstream.Item }
			DeleteRequest *struct{ Key ddbstream.Item }
		}
	}
	if json.Unmarshal(body, &req) != nil {
		f.forward(w, r, body)
		return
	}
	var changes []change
	seen := map[string]bool{}
	for table, reqs := range req.RequestItems {
		st := f.streams.Current(table)
		if st == nil {
			continue
		}
		t, err := f.table(r.Context(), table)
		if err != nil {
			writeError(w, err)
			return
		}
		for _, wr := range reqs {
			var key ddbstream.Item
			switch {
			case wr.PutRequest != nil:
				key = keyOf(t, wr.PutRequest.Item)
			case wr.DeleteRequest != nil:
				key = keyOf(t, wr.DeleteRequest.Key)
			}
			if key == nil {
				f.forward(w, r, body) // malformed: dynalite refuses it whole
				return
			}
			// The same item twice is refused whole by DynamoDB (and dynalite).
			if id := itemID(table, key); !seen[id] {
				seen[id] = true
				changes = append(changes, change{st: st, table: table, key: key})
			}
		}
	}
	if len(changes) == 0 {
		f.forward(w, r, body)
		return
	}
	f.recordedWrite(w, r, body, changes)
}

// recordedWrite forwards a write under the locks of the items it may
// change, with their images read before and after, and appends a record for
// each item that changed before it answers.
func (f *Front) recordedWrite(w http.ResponseWriter, r *http.Request, body []byte, changes []change) {
	ids := make([]string, len(changes))
	for i, c := range changes {
		ids[i] = itemID(c.table, c.key)
	}
	unlock := f.locks.lock(ids)
	defer unlock()
	ctx := r.Context()
	for i := range changes {
		before, err := f.getItem(ctx, changes[i].table, changes[i].key)
		if err != nil {
			writeError(w, err)
			return
		}
		changes[i].before = before
	}
	resp, err := f.send(ctx, r, body)
	if err != nil {
		// Whether the write happened is unknown; what the item is now is
		// still recorded below, as its change.
		f.opt.Log.Warn("ddbfront: forwarding a write failed", "err", err)
	}
	// The write has happened (or not) whatever the client does now: read
	// the outcome even if the client went away.
	ctx = context.WithoutCancel(ctx)
	for _, c := range changes {
		if rerr := f.record(ctx, c, nil); rerr != nil && err == nil {
			err = rerr
		}
	}
	if resp == nil {
		writeError(w, err)
		return
	}
	if err != nil {
		f.opt.Log.Error("ddbfront: a change may be missing from the stream", "err", err)
	}
	resp.write(w)
}

// record reads c's item after a write and appends its change, if any.
func (f *Front) record(ctx context.Context, c change, identity *ddbstream.Identity) error {
	var after ddbstream.Item
	var err error
	for range 3 { // dynalite on this machine: a failed read is rare and brief
		if after, err = f.getItem(ctx, c.table, c.key); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	_, err = c.st.Append(c.before, after, identity)
	return err
}
