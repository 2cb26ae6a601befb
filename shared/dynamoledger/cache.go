package dynamoledger

import (
	"sync"
	"time"
)

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
type genEntry struct {
	gen     string
	updated time.Time
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
