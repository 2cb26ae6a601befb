package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// TestUploadUnderFaults sends six files of awkward sizes at once, in both
// body methods and both chunk modes, with chunks in random order, duplicated
// (some concurrently), and some first attempts cut off mid-body. Every file
// must complete with exactly its content, and no chunk may be left behind.
func TestUploadUnderFaults(t *testing.T) {
	t.Parallel()
	const cs = 64 << 10
	sizes := []int{0, 1, cs, cs + 1, 2*cs - 1, 3<<20 + 777}
	for _, method := range []flowclient.Method{flowclient.Multipart, flowclient.Octet} {
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/forceChunkSize=%v", method, force), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
				defer cancel()
				dataDir := t.TempDir()
				srv := startServer(t, dataDir)
				c := srv.client()

				var files []upload
				for i, size := range sizes {
					seed := uint64(1000*i + len(method))
					if force {
						seed += 7
					}
					files = append(files, upload{
						name: fmt.Sprintf("file-%d (%d bytes).bin", i, size),
						data: randomFile(seed, size),
						opts: flowclient.Options{
							ChunkSize: cs, ForceChunkSize: force, Method: method,
							TestChunks:   i%2 == 1,
							Simultaneous: 3, Shuffle: true, Duplicates: 0.3, AbortFraction: 0.25,
							MaxRetries: 3, RetryInterval: 20 * time.Millisecond, Seed: seed,
							// flow.js `query`: extra fields must not disturb the flow fields.
							ExtraFields: map[string]string{"folder": "e2e", "note": "a b&c"},
						},
					})
				}

				stats := make([]flowclient.Stats, len(files))
				errs := make([]error, len(files))
				var wg sync.WaitGroup
				for i, f := range files {
					wg.Add(1)
					go func() {
						defer wg.Done()
						stats[i], errs[i] = f.send(ctx, c)
					}()
				}
				wg.Wait()

				var total flowclient.Stats
				for i, f := range files {
					if errs[i] != nil {
						t.Fatalf("%s: upload: %v", f.name, errs[i])
					}
					st := stats[i]
					total.Add(st)
					g := f.geometry(t)
					if !slices.Equal(st.Posted, allChunks(g.TotalChunks)) {
						t.Errorf("%s: chunks acknowledged %v, want 1..%d", f.name, st.Posted, g.TotalChunks)
					}
					if st.AbortAccepted != 0 {
						t.Errorf("%s: the server answered %d truncated bodies with success", f.name, st.AbortAccepted)
					}
					for code, n := range st.AbortStatus {
						if code < 400 || code >= 600 {
							t.Errorf("%s: a truncated body got status %d (%d times)", f.name, code, n)
						}
					}
					// A well-formed request gets 200, or 204 for a missing
					// chunk's test GET; 503 is allowed (transient) but logged.
					for code, n := range st.Status {
						if code != 200 && code != 204 && code != 503 {
							t.Errorf("%s: %d responses with status %d", f.name, n, code)
						}
					}

					status, err := f.wait(ctx, c)
					if err != nil {
						t.Fatalf("%s: %v", f.name, err)
					}
					if status.Total != g.TotalChunks || status.Received != g.TotalChunks {
						t.Errorf("%s: status says %d/%d chunks, want %d/%d", f.name, status.Received, status.Total, g.TotalChunks, g.TotalChunks)
					}
					checkFinished(t, dataDir, status, f.data)
				}
				t.Logf("%d POSTs (%d cut off, answered %v), %d GETs, statuses %v, p50 %v p99 %v",
					total.POSTs, total.Aborted, total.AbortStatus, total.GETs, total.Status, total.Percentile(50), total.Percentile(99))
				if total.Aborted == 0 {
					t.Error("no request was cut off: the test did not test that")
				}

				// Each upload is assembled once, into its own file.
				if got := finishedFiles(t, dataDir); len(got) != len(files) {
					t.Errorf("files/ holds %d files, want %d: %v", len(got), len(files), got)
				}
				checkStagingEmpty(t, dataDir)

				// A finished upload counts as present for every test GET, so
				// sending the largest file again posts nothing.
				big := files[len(files)-1]
				big.opts.TestChunks, big.opts.Duplicates, big.opts.AbortFraction = true, 0, 0
				again, err := big.send(ctx, c)
				if err != nil {
					t.Fatalf("sending a finished file again: %v", err)
				}
				if again.POSTs != 0 || len(again.Present) != big.geometry(t).TotalChunks {
					t.Errorf("sending a finished file again: %d POSTs, %d chunks present", again.POSTs, len(again.Present))
				}
			})
		}
	}
}
