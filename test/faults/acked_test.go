package faults

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// TestKillKeepsAcknowledgedChunks: a chunk that got its 200 is stored and
// counted, whatever moment the server dies at. Six senders POST the chunks
// of three files (each chunk once, in a random order, both chunk sizes of
// the write buffers) while the embedded server is killed with SIGKILL four
// times at random moments and started again on the same data directory.
// After each restart, a test GET of every chunk acknowledged before the kill
// must answer 200 (counted), before the client sends anything more; a chunk
// whose request the kill cut off is sent again. At the end every file is
// complete with its exact bytes.
//
// TestKillUnderLoad checks that uploads end right through kills; it cannot
// see a lost acknowledgement, because its clients test every chunk again
// after an error and send what is missing. This test asks about each one.
func TestKillKeepsAcknowledgedChunks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 15))

	type file struct {
		name string
		data []byte
		opts flowclient.Options
		geo  flowclient.Geometry
	}
	var files []*file
	for i, f := range []struct {
		chunk int64
		size  int
	}{{64 << 10, 600 * 64 << 10}, {256 << 10, 150*256<<10 + 777}, {1 << 20, 40<<20 + 5}} {
		o := flowclient.Options{ChunkSize: f.chunk, ForceChunkSize: true, Identifier: fmt.Sprintf("acked-%d", i)}
		name := fmt.Sprintf("acked-%d.bin", i)
		g, err := flowclient.NewGeometry(o, int64(f.size), name)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, &file{name: name, data: randomBytes(seed+uint64(i), f.size), opts: o, geo: g})
	}

	dataDir := t.TempDir()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cur := server(t, ctx, dataDir, addr)
	var restarted []*proc.Proc
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range append(restarted, cur) {
				t.Logf("log of server %d (last 4 KiB):\n%s", i+1, lastBytes(p.Log(), 4<<10))
			}
		}
	})
	base := "http://" + addr + "/upload?"
	hc := &http.Client{Timeout: 10 * time.Second}
	query := func(f *file, n int) string {
		q := url.Values{}
		for _, p := range f.geo.Params(n) {
			q.Set(p.Name, p.Value)
		}
		return q.Encode()
	}

	type chunk struct {
		f *file
		n int
	}
	var (
		mu      sync.Mutex
		todo    []chunk
		acked   = map[chunk]bool{}
		sent    atomic.Int64
		cutOffs atomic.Int64
	)
	for _, f := range files {
		for n := 1; n <= f.geo.TotalChunks; n++ {
			todo = append(todo, chunk{f, n})
		}
	}
	rng.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
	take := func() (chunk, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(todo) == 0 {
			return chunk{}, false
		}
		c := todo[0]
		todo = todo[1:]
		return c, true
	}
	var paused sync.RWMutex // held for writing while the acknowledged chunks are checked
	var senders sync.WaitGroup
	for range 6 {
		senders.Go(func() {
			for ctx.Err() == nil {
				paused.RLock()
				c, ok := take()
				if !ok {
					paused.RUnlock()
					return
				}
				start, end := c.f.geo.Bounds(c.n)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+query(c.f, c.n), bytes.NewReader(c.f.data[start:end]))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := hc.Do(req)
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				if code == http.StatusOK {
					acked[c] = true
					sent.Add(1)
				} else {
					todo = append(todo, c) // cut off by a kill (or 503 while it stops): again later
					cutOffs.Add(1)
				}
				mu.Unlock()
				paused.RUnlock()
				if code != http.StatusOK {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}

	// checkAcked asks the server about every chunk in ack, each acknowledged
	// before the server was killed.
	checkAcked := func(round int, ack []chunk) {
		for _, c := range ack {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+query(c.f, c.n), nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("after kill %d: test GET of %s chunk %d: %v", round, c.f.name, c.n, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("after kill %d: %s chunk %d was acknowledged, and its test GET answers %d, want 200", round, c.f.name, c.n, resp.StatusCode)
			}
		}
	}
	const kills = 4
	for round := 1; round <= kills; round++ {
		time.Sleep(time.Duration(20+rng.IntN(120)) * time.Millisecond)
		if err := cur.Kill(); err != nil {
			t.Fatal(err)
		}
		paused.Lock() // no request in flight from here until the check is done
		var ack []chunk
		for c := range acked {
			ack = append(ack, c)
		}
		restarted = append(restarted, cur)
		cur = server(t, ctx, dataDir, addr)
		checkAcked(round, ack)
		t.Logf("kill %d: %d acknowledged chunks still counted", round, len(ack))
		paused.Unlock()
		if t.Failed() {
			cancel()
			break
		}
	}
	senders.Wait()
	if t.Failed() {
		return
	}
	if cutOffs.Load() == 0 {
		t.Error("no request was cut off by a kill: the kills came too late to test anything")
	}

	client := &flowclient.Client{BaseURL: "http://" + addr}
	for _, f := range files {
		st, err := client.WaitComplete(ctx, f.opts, int64(len(f.data)), f.name, 20*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		got, err := os.ReadFile(filepath.Join(dataDir, filepath.FromSlash(st.Location)))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(f.data) {
			t.Errorf("%s: finished file %q: %d bytes (err %v), want %d with its sha256", f.name, st.Location, len(got), err, len(f.data))
		}
	}
}
