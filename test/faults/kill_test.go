package faults

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/upload"
)

// hookSink is a webhook receiver. The first failFirst calls fail, in turn
// with a 500, a dropped connection and a 503; later ones are recorded.
type hookSink struct {
	failFirst atomic.Int64
	calls     atomic.Int64
	mu        sync.Mutex
	events    map[string]int
	bodies    [][]byte
}

func newHookSink(t *testing.T, failFirst int, wrap func(http.Handler) http.Handler) (*hookSink, *httptest.Server) {
	h := &hookSink{events: map[string]int{}}
	h.failFirst.Store(int64(failFirst))
	var handler http.Handler = h
	if wrap != nil {
		handler = wrap(h)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.calls.Add(1)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if n <= h.failFirst.Load() {
		switch n % 3 {
		case 1:
			http.Error(w, "receiver broken", http.StatusInternalServerError)
		case 2:
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
				return
			}
			http.Error(w, "receiver broken", http.StatusBadGateway)
		default:
			http.Error(w, "receiver busy", http.StatusServiceUnavailable)
		}
		return
	}
	var ev struct {
		Source     string       `json:"source"`
		DetailType string       `json:"detail-type"`
		Detail     upload.Event `json:"detail"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.Source != upload.EventSource || ev.DetailType != upload.EventDetailType {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.events[ev.Detail.UploadKey]++
	h.bodies = append(h.bodies, body)
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookSink) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events[key]
}

// waitEvent waits (bounded) until the sink has an event for key.
func (h *hookSink) waitEvent(t *testing.T, key string, within time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(within); h.count(key) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return h.count(key)
}

type killFile struct {
	name string
	data []byte
	opts flowclient.Options
}

func (f killFile) key() string {
	g, _ := flowclient.NewGeometry(f.opts, int64(len(f.data)), f.name)
	return upload.UploadKey(httpapi.PublicNamespace, g.Identifier, g.Size, g.ChunkSize, g.TotalChunks)
}

// TestKillUnderLoad sends six files at once, with shuffled, duplicate and
// cut-off chunks, while the embedded server is killed with SIGKILL four
// times at random moments and started again on the same data directory
// and address. The clients behave as flow.js does with maxChunkRetries and
// a user pressing resume: after an error they upload again, testing chunks
// first. Every file must end complete with its exact bytes, moved into
// files/ once (one file per upload, its result recorded once), announced
// to the webhook at least once, with nothing left staged.
func TestKillUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	hook, hookSrv := newHookSink(t, 0, nil)
	dataDir := t.TempDir()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"FLOWGATE_WEBHOOK_URL=" + hookSrv.URL, "FLOWGATE_LOG_LEVEL=info"}
	var (
		procMu sync.Mutex
		procs  []*proc.Proc
	)
	start := func() *proc.Proc {
		p := server(t, ctx, dataDir, addr, env...)
		procMu.Lock()
		procs = append(procs, p)
		procMu.Unlock()
		return p
	}
	cur := start()
	t.Cleanup(func() {
		if t.Failed() {
			procMu.Lock()
			defer procMu.Unlock()
			for i, p := range procs {
				t.Logf("log of server %d (last 8 KiB):\n%s", i+1, lastBytes(p.Log(), 8<<10))
			}
		}
	})

	// Four clients upload one file after another, of mixed sizes and both
	// methods and chunk modes, until the killer is done.
	const cs = 64 << 10
	sizes := []int{0, 1, 5*cs + 1, 300 << 10, 1<<20 + 7, 2<<20 + 12345}
	newFile := func(c, r int) killFile {
		i := c*7 + r
		o := flowclient.Options{
			ChunkSize: cs, ForceChunkSize: i%2 == 0, Method: []flowclient.Method{flowclient.Multipart, flowclient.Octet}[(i/2)%2],
			TestChunks: true, Simultaneous: 3, Shuffle: true, Duplicates: 0.2, AbortFraction: 0.05,
			MaxRetries: 2, RetryInterval: 20 * time.Millisecond, Seed: seed + uint64(i),
			Identifier: fmt.Sprintf("kill-%d-%d", c, r),
		}
		return killFile{name: fmt.Sprintf("kill-%d-%d.bin", c, r), data: randomBytes(seed+uint64(i), sizes[(c+r)%len(sizes)]), opts: o}
	}
	client := &flowclient.Client{BaseURL: "http://" + addr}
	var (
		doneMu   sync.Mutex
		files    []killFile
		status   []flowclient.Status
		clients  sync.WaitGroup
		stopping atomic.Bool
		// uploads cut off by a kill, resumed by the client
		interrupted atomic.Int32
	)
	for c := range 4 {
		clients.Go(func() {
			for r := 0; !stopping.Load() && ctx.Err() == nil; r++ {
				f := newFile(c, r)
				for try := 1; ; try++ {
					_, err := client.Upload(ctx, f.opts, bytes.NewReader(f.data), int64(len(f.data)), f.name)
					if err == nil {
						break
					}
					interrupted.Add(1)
					if ctx.Err() != nil {
						t.Errorf("%s: gave up after %d attempts: %v", f.name, try, err)
						return
					}
					time.Sleep(50 * time.Millisecond) // the user presses resume
				}
				st, err := client.WaitComplete(ctx, f.opts, int64(len(f.data)), f.name, 20*time.Millisecond)
				if err != nil {
					t.Errorf("%s: %v", f.name, err)
					return
				}
				doneMu.Lock()
				files, status = append(files, f), append(status, st)
				doneMu.Unlock()
			}
		})
	}

	// The killer: four SIGKILLs at random moments under load.
	const kills = 4
	for range kills {
		time.Sleep(time.Duration(150+rng.IntN(450)) * time.Millisecond)
		if err := cur.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // down for a moment
		cur = start()
	}
	stopping.Store(true)
	clients.Wait()
	t.Logf("%d files uploaded across %d kills; %d uploads cut off and resumed", len(files), kills, interrupted.Load())
	if interrupted.Load() == 0 {
		t.Error("no upload was cut off by a kill: nothing was tested")
	}
	if t.Failed() {
		return
	}

	var logs strings.Builder
	procMu.Lock()
	for _, p := range procs {
		logs.WriteString(p.Log())
	}
	procMu.Unlock()
	var finished []string
	filepath.WalkDir(filepath.Join(dataDir, "files"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dataDir, p)
			finished = append(finished, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(finished) != len(files) {
		t.Errorf("files/ holds %d files, want %d: %v", len(finished), len(files), finished)
	}
	assembledLines := 0
	for i, f := range files {
		st, key := status[i], f.key()
		got, err := os.ReadFile(filepath.Join(dataDir, filepath.FromSlash(st.Location)))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(f.data) {
			t.Errorf("%s: finished file %q: %d bytes (err %v), want %d with its sha256", f.name, st.Location, len(got), err, len(f.data))
		}
		if !strings.HasPrefix(st.Location, "files/"+key+"-") {
			t.Errorf("%s: location %q is not under files/%s-<generation>/", f.name, st.Location, key)
		}
		// One result recorded (each Complete logs "assembled" once; a
		// kill right after it may swallow the line).
		n := strings.Count(logs.String(), `"msg":"assembled","upload":"`+key+`"`)
		if n > 1 {
			t.Errorf("%s: assembled %d times", f.name, n)
		}
		assembledLines += n
		if n := hook.waitEvent(t, key, 10*time.Second); n < 1 {
			t.Errorf("%s: no event reached the webhook", f.name)
		}
	}
	if assembledLines == 0 {
		t.Errorf("no \"assembled\" line in any server log: the log format changed, and the count above checks nothing")
	}
	checkStagingEmpty(t, dataDir)
}

// checkStagingEmpty waits (bounded) for staging/ to be empty: handlers of
// requests cut off mid-body may still be unwinding.
func checkStagingEmpty(t *testing.T, dataDir string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		ents, err := os.ReadDir(filepath.Join(dataDir, "staging"))
		if err != nil {
			t.Errorf("staging: %v", err)
			return
		}
		if len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("staging/ still holds %v", names)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
