// The Service's locks within one process: per upload, per chunk, and the new
// generation concurrent first chunks share.

package upload

import "sync"

// keyedLocks hands out a lock per upload (shared by chunk writers, exclusive
// for expiry) and a lock per chunk, kept only while someone holds them.
type keyedLocks struct {
	mu      sync.Mutex
	uploads map[string]*uploadLock
}

type uploadLock struct {
	refs   int
	rw     sync.RWMutex
	chunks map[int]*chunkLock
	// newGen is the generation the requests of this process store a new
	// generation's chunks under while it has no record, and newFor the dead
	// generation it replaces (see newSlot).
	newGen, newFor string
}

type chunkLock struct {
	refs int
	mu   sync.Mutex
}

func (k *keyedLocks) acquire(key string) *uploadLock {
	if k.uploads == nil {
		k.uploads = make(map[string]*uploadLock)
	}
	u := k.uploads[key]
	if u == nil {
		u = &uploadLock{chunks: make(map[int]*chunkLock)}
		k.uploads[key] = u
	}
	u.refs++
	return u
}

func (k *keyedLocks) release(key string, u *uploadLock) {
	if u.refs--; u.refs == 0 {
		delete(k.uploads, key)
	}
}

// chunk locks chunk n of an upload for writing and returns the unlock.
func (k *keyedLocks) chunk(key string, n int) func() {
	k.mu.Lock()
	u := k.acquire(key)
	c := u.chunks[n]
	if c == nil {
		c = &chunkLock{}
		u.chunks[n] = c
	}
	c.refs++
	k.mu.Unlock()

	u.rw.RLock()
	c.mu.Lock()
	return func() {
		c.mu.Unlock()
		u.rw.RUnlock()
		k.mu.Lock()
		if c.refs--; c.refs == 0 {
			delete(u.chunks, n)
		}
		k.release(key, u)
		k.mu.Unlock()
	}
}

// upload locks a whole upload, waiting for its chunk writers to finish.
func (k *keyedLocks) upload(key string) func() {
	k.mu.Lock()
	u := k.acquire(key)
	k.mu.Unlock()
	u.rw.Lock()
	return func() {
		u.rw.Unlock()
		k.mu.Lock()
		k.release(key, u)
		k.mu.Unlock()
	}
}

// newSlot makes the requests of this process that find no live record for
// an upload agree on the new generation to store its chunks under: the first
// one's. Without it, concurrent first chunks would each store under a
// generation of their own, and all but the one whose count creates the
// record would have to move their chunk. The choice is shared only within
// the process, whose locks order a refused request's clean-up (which removes
// the new generation's bytes, see Put) after the other writers of the
// upload; another process never stores under it.
//
// The caller holds a chunk lock of the upload, which keeps the entry alive.
func (k *keyedLocks) newSlot(key string, slot Slot) Slot {
	if !slot.New {
		return slot
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	u := k.uploads[key]
	if u == nil {
		return slot
	}
	if u.newGen == "" || u.newFor != slot.Replaces {
		u.newGen, u.newFor = slot.Generation, slot.Replaces
	}
	slot.Generation = u.newGen
	return slot
}

// created forgets the shared new generation once a record has it: from then
// on Lookup reports it, and a later New slot (the record gone again) must
// get a generation of its own.
func (k *keyedLocks) created(key, gen string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if u := k.uploads[key]; u != nil && u.newGen == gen {
		u.newGen, u.newFor = "", ""
	}
}
