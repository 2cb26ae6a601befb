// Package boltledger is the embedded Ledger: one bbolt database file.
//
// bbolt gives real transactions, so counting is simply "if chunk n is not
// marked, mark it and add one" inside one transaction; concurrent writes
// share a commit (and its fsync) through groupCommit. Layout:
//
//	uploads/<key>/_meta       JSON upload.Record
//	uploads/<key>/<n, 4 bytes big-endian>   present when chunk n is counted
//	identities/<identity key> upload key in progress under that identifier
//
// bbolt holds an exclusive file lock, so one process owns the ledger. That
// makes recovery simple: whatever was assembling when the process stopped
// was abandoned, and Open puts it back to ready.
//
// A record is live unless it failed, or is receiving and has had no chunk
// for IdleTTL: the sweeper removes such a record when it next runs, and until
// then Lookup already treats it as gone (a New slot), so that no client is
// told a chunk is there that the sweeper is about to remove. A receiving
// record whose counted chunk Lookup reports is refreshed first if it is older
// than an eighth of IdleTTL, so it stays live for most of IdleTTL after the
// answer.
package boltledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flowgate/flowgate/shared/upload"
)

var (
	bucketUploads    = []byte("uploads")
	bucketIdentities = []byte("identities")
	keyMeta          = []byte("_meta") // 5 bytes: never equal to a 4-byte chunk key
	// countedMark is the value under a counted chunk's key. Not empty: bbolt
	// reads a key written with a nil value in the same transaction as
	// absent, and a group commit runs many counts in one transaction.
	countedMark = []byte{1}
)

// Ledger is an upload.Ledger and upload.Scanner on bbolt.
type Ledger struct {
	db      *bolt.DB
	writes  groupCommit
	now     func() time.Time
	idleTTL time.Duration
}

// Open opens (or creates) the database at path and releases assemblies that
// were in progress when the last process stopped. idleTTL is how long a
// receiving upload stays live without a chunk (the sweeper's expiry); 0
// means for ever.
func Open(path string, idleTTL time.Duration) (*Ledger, error) {
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	l := &Ledger{db: db, writes: groupCommit{db: db}, now: time.Now, idleTTL: idleTTL}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketIdentities); err != nil {
			return err
		}
		ups, err := tx.CreateBucketIfNotExists(bucketUploads)
		if err != nil {
			return err
		}
		return ups.ForEachBucket(func(k []byte) error {
			b := ups.Bucket(k)
			rec, err := readMeta(b)
			if err != nil || rec.State != upload.StateAssembling {
				return err
			}
			rec.State, rec.Owner, rec.LeaseUntil = upload.StateReady, "", time.Time{}
			return writeMeta(b, rec)
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	return l, nil
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// SetClock replaces the clock, for tests of expiry and leases.
func (l *Ledger) SetClock(now func() time.Time) { l.now = now }

// Lookup implements upload.Ledger.
func (l *Ledger) Lookup(ctx context.Context, info upload.Info, n int) (slot upload.Slot, err error) {
	refresh := false
	err = l.db.View(func(tx *bolt.Tx) error {
		if err := l.checkIdentity(tx, info); err != nil {
			return err
		}
		var rec *upload.Record
		slot, rec, err = l.slot(tx, info.Key, n)
		refresh = err == nil && slot.Counted && rec.State == upload.StateReceiving &&
			l.idleTTL > 0 && l.now().Sub(rec.UpdatedAt) > l.idleTTL/8
		return err
	})
	if err != nil || !refresh {
		return slot, err
	}
	// Make sure the record outlives the answer (see the package doc). The
	// write decides afresh: the record may have moved on meanwhile.
	err = l.writes.do(func(tx *bolt.Tx) error {
		var rec *upload.Record
		slot, rec, err = l.slot(tx, info.Key, n)
		if err != nil || !slot.Counted || rec.State != upload.StateReceiving {
			return err
		}
		rec.UpdatedAt = l.now()
		return writeMeta(tx.Bucket(bucketUploads).Bucket([]byte(info.Key)), *rec)
	})
	return slot, err
}

// slot tells where chunk n of the upload stands (see upload.Slot), and
// returns the live record, if any.
func (l *Ledger) slot(tx *bolt.Tx, key string, n int) (upload.Slot, *upload.Record, error) {
	b := tx.Bucket(bucketUploads).Bucket([]byte(key))
	if b == nil {
		return upload.Slot{State: upload.StateUnknown, New: true, Generation: newGeneration()}, nil, nil
	}
	rec, err := readMeta(b)
	if err != nil {
		return upload.Slot{}, nil, err
	}
	if !l.live(rec) {
		return upload.Slot{State: upload.StateUnknown, New: true, Generation: newGeneration(), Replaces: rec.Generation}, nil, nil
	}
	counted := rec.State.PastReceiving() || b.Get(chunkKey(n)) != nil
	return upload.Slot{State: rec.State, Counted: counted, Generation: rec.Generation}, &rec, nil
}

// live reports whether the record still stands: not failed, and not
// receiving past its idle expiry.
func (l *Ledger) live(rec upload.Record) bool {
	switch {
	case rec.State == upload.StateFailed:
		return false
	case rec.State == upload.StateReceiving && l.idleTTL > 0:
		return l.now().Sub(rec.UpdatedAt) < l.idleTTL
	}
	return true
}

// Count implements upload.Ledger.
func (l *Ledger) Count(ctx context.Context, info upload.Info, n int, slot upload.Slot) (ready bool, err error) {
	// The function may run more than once; it decides afresh each time.
	err = l.writes.do(func(tx *bolt.Tx) error {
		ready = false
		if err := l.checkIdentity(tx, info); err != nil {
			return err
		}
		now := l.now()
		b, rec, err := l.countable(tx, info, n, slot, now)
		if err != nil || b == nil {
			return err
		}
		if rec.State != upload.StateReceiving || b.Get(chunkKey(n)) != nil {
			return nil
		}
		if err := b.Put(chunkKey(n), countedMark); err != nil {
			return err
		}
		rec.Received++
		rec.UpdatedAt = now
		if rec.Received >= rec.TotalChunks {
			rec.State, ready = upload.StateReady, true
		}
		if err := tx.Bucket(bucketIdentities).Put([]byte(upload.IdentityKey(info.Namespace, info.Identifier)), []byte(info.Key)); err != nil {
			return err
		}
		return writeMeta(b, rec)
	})
	return ready, err
}

// countable returns the bucket and record of the generation a chunk stored
// under slot may be counted in, creating or replacing the record for a New
// slot. When the chunk belongs to a generation that is not the record's, it
// returns a *upload.StaleSlotError naming the one that is.
func (l *Ledger) countable(tx *bolt.Tx, info upload.Info, n int, slot upload.Slot, now time.Time) (*bolt.Bucket, upload.Record, error) {
	ups := tx.Bucket(bucketUploads)
	b := ups.Bucket([]byte(info.Key))
	if b == nil {
		if !slot.New {
			// The record the chunk was meant for has gone (swept).
			return nil, upload.Record{}, &upload.StaleSlotError{Current: upload.Slot{
				State: upload.StateUnknown, New: true, Generation: newGeneration()}}
		}
		return l.create(tx, info, slot.Generation, now)
	}
	rec, err := readMeta(b)
	if err != nil {
		return nil, rec, err
	}
	if rec.Generation == slot.Generation {
		return b, rec, nil
	}
	if !l.live(rec) {
		if slot.New && slot.Replaces == rec.Generation {
			if err := ups.DeleteBucket([]byte(info.Key)); err != nil {
				return nil, rec, err
			}
			return l.create(tx, info, slot.Generation, now)
		}
		return nil, rec, &upload.StaleSlotError{Current: upload.Slot{
			State: upload.StateUnknown, New: true, Generation: newGeneration(), Replaces: rec.Generation}}
	}
	current := upload.Slot{State: rec.State, Generation: rec.Generation,
		Counted: rec.State.PastReceiving() || b.Get(chunkKey(n)) != nil}
	return nil, rec, &upload.StaleSlotError{Current: current}
}

// create makes the record of a new generation of the upload.
func (l *Ledger) create(tx *bolt.Tx, info upload.Info, gen string, now time.Time) (*bolt.Bucket, upload.Record, error) {
	b, err := tx.Bucket(bucketUploads).CreateBucket([]byte(info.Key))
	if err != nil {
		return nil, upload.Record{}, err
	}
	rec := upload.Record{Info: info, Generation: gen, State: upload.StateReceiving, CreatedAt: now, UpdatedAt: now}
	return b, rec, nil
}

// checkIdentity refuses an upload whose identifier is in use by another
// live upload still receiving (with a different geometry, since the key
// differs).
func (l *Ledger) checkIdentity(tx *bolt.Tx, info upload.Info) error {
	other := tx.Bucket(bucketIdentities).Get([]byte(upload.IdentityKey(info.Namespace, info.Identifier)))
	if other == nil || string(other) == info.Key {
		return nil
	}
	b := tx.Bucket(bucketUploads).Bucket(other)
	if b == nil {
		return nil
	}
	rec, err := readMeta(b)
	if err != nil {
		return err
	}
	if rec.State == upload.StateReceiving && l.live(rec) {
		return upload.ErrConflict
	}
	return nil
}

func (l *Ledger) Get(ctx context.Context, key string) (rec upload.Record, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUploads).Bucket([]byte(key))
		if b == nil {
			return upload.ErrNotFound
		}
		rec, err = readMeta(b)
		return err
	})
	return rec, err
}

func (l *Ledger) Claim(ctx context.Context, key, owner string, lease time.Duration) (rec upload.Record, err error) {
	err = l.update(key, func(r *upload.Record) error {
		now := l.now()
		switch {
		case r.State == upload.StateReady,
			r.State == upload.StateAssembling && (r.Owner == owner || now.After(r.LeaseUntil)):
			r.State, r.Owner, r.LeaseUntil = upload.StateAssembling, owner, now.Add(lease)
			r.Attempts++
			rec = *r
			return nil
		}
		rec = *r
		return upload.ErrNotClaimable
	})
	return rec, err
}

func (l *Ledger) Complete(ctx context.Context, key, owner string, res upload.Result) error {
	return l.update(key, func(r *upload.Record) error {
		if r.State == upload.StateComplete && r.Owner == owner {
			return errNoChange
		}
		if r.State != upload.StateAssembling || r.Owner != owner {
			return upload.ErrLeaseLost
		}
		r.State, r.Result, r.LeaseUntil, r.UpdatedAt = upload.StateComplete, &res, time.Time{}, l.now()
		return nil
	})
}

func (l *Ledger) Fail(ctx context.Context, key, owner, reason string) error {
	return l.update(key, func(r *upload.Record) error {
		if r.State != upload.StateAssembling || r.Owner != owner {
			return upload.ErrLeaseLost
		}
		r.State, r.Error, r.Owner, r.LeaseUntil, r.UpdatedAt = upload.StateFailed, reason, "", time.Time{}, l.now()
		return nil
	})
}

// Postpone implements upload.Ledger.
func (l *Ledger) Postpone(ctx context.Context, key, owner, reason string, until time.Time) error {
	return l.update(key, func(r *upload.Record) error {
		if r.State != upload.StateAssembling || r.Owner != owner {
			return upload.ErrLeaseLost
		}
		r.LastError, r.LeaseUntil = reason, until
		return nil
	})
}

func (l *Ledger) MarkPublished(ctx context.Context, key string) error {
	return l.update(key, func(r *upload.Record) error {
		if r.Published {
			return errNoChange
		}
		r.Published = true
		return nil
	})
}

// errNoChange ends an update that has nothing to write, successfully.
var errNoChange = errors.New("no change")

// update applies fn to the record of key in one transaction.
func (l *Ledger) update(key string, fn func(*upload.Record) error) error {
	err := l.writes.do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUploads).Bucket([]byte(key))
		if b == nil {
			return upload.ErrNotFound
		}
		rec, err := readMeta(b)
		if err != nil {
			return err
		}
		if err := fn(&rec); err != nil {
			return err
		}
		return writeMeta(b, rec)
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

// Pending lists what the pipeline still has to do.
func (l *Ledger) Pending(ctx context.Context) ([]upload.Record, error) {
	return l.scan(func(r upload.Record) bool {
		return r.State == upload.StateReady || r.State == upload.StateAssembling ||
			r.State == upload.StateComplete && !r.Published
	})
}

// Idle lists uploads last updated before the given time.
func (l *Ledger) Idle(ctx context.Context, before time.Time) ([]upload.Record, error) {
	return l.scan(func(r upload.Record) bool { return r.UpdatedAt.Before(before) })
}

func (l *Ledger) scan(keep func(upload.Record) bool) ([]upload.Record, error) {
	var out []upload.Record
	err := l.db.View(func(tx *bolt.Tx) error {
		ups := tx.Bucket(bucketUploads)
		return ups.ForEachBucket(func(k []byte) error {
			rec, err := readMeta(ups.Bucket(k))
			if err != nil {
				return err
			}
			if keep(rec) {
				out = append(out, rec)
			}
			return nil
		})
	})
	return out, err
}

// Forget deletes an upload that is still idle since before, with its
// identity entry if that still points to it.
func (l *Ledger) Forget(ctx context.Context, key string, before time.Time) (gone bool, err error) {
	err = l.db.Update(func(tx *bolt.Tx) error {
		ups := tx.Bucket(bucketUploads)
		b := ups.Bucket([]byte(key))
		if b == nil {
			return nil
		}
		rec, err := readMeta(b)
		if err != nil {
			return err
		}
		// Work still owed is never forgotten: an upload to assemble, or a
		// result whose event has not gone out.
		if !rec.UpdatedAt.Before(before) || rec.State == upload.StateAssembling || rec.State == upload.StateReady ||
			rec.State == upload.StateComplete && !rec.Published {
			return nil
		}
		ids := tx.Bucket(bucketIdentities)
		idk := []byte(upload.IdentityKey(rec.Namespace, rec.Identifier))
		if string(ids.Get(idk)) == key {
			if err := ids.Delete(idk); err != nil {
				return err
			}
		}
		gone = true
		return ups.DeleteBucket([]byte(key))
	})
	return gone, err
}

func readMeta(b *bolt.Bucket) (upload.Record, error) {
	var rec upload.Record
	v := b.Get(keyMeta)
	if v == nil {
		return rec, errors.New("ledger: upload without meta")
	}
	err := json.Unmarshal(v, &rec)
	return rec, err
}

func writeMeta(b *bolt.Bucket, rec upload.Record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Put(keyMeta, v)
}

func chunkKey(n int) []byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], uint32(n))
	return k[:]
}

func newGeneration() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}
