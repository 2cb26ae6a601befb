package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// TestResumeAfterRestart stops the server in the middle of an upload, with
// requests in flight, starts it again on the same data directory, and resumes
// as flow.js does, with test GETs. Every chunk the server acknowledged before
// it stopped must be reported present and not be sent again; the file must
// complete with its exact content.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		method flowclient.Method
		force  bool
	}{
		{"SIGTERM", syscall.SIGTERM, flowclient.Multipart, false},
		{"SIGKILL", syscall.SIGKILL, flowclient.Octet, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			dataDir := t.TempDir()
			srv := startServer(t, dataDir)

			const stopAfter = 20 // acknowledged chunks before the stop
			f := upload{
				name: "resume.bin",
				data: randomFile(uint64(tc.sig), 4<<20+1234),
				opts: flowclient.Options{
					ChunkSize: 64 << 10, ForceChunkSize: tc.force, Method: tc.method,
					TestChunks: true, Simultaneous: 4, Shuffle: true, Seed: uint64(tc.sig),
					MaxRetries: 2, RetryInterval: 20 * time.Millisecond,
				},
			}
			total := f.geometry(t).TotalChunks

			// First session: the server is signalled from inside the
			// acknowledgement of the stopAfter-th chunk, while other chunks
			// are in flight.
			var acks atomic.Int32
			var once sync.Once
			first := f
			first.opts.OnAck = func(int, bool) {
				if acks.Add(1) == stopAfter {
					once.Do(func() { srv.signal(tc.sig) })
				}
			}
			st1, err := first.send(ctx, srv.client())
			if err == nil {
				t.Fatalf("the upload completed although the server was stopped after %d of %d chunks", stopAfter, total)
			}
			exit := srv.wait(15 * time.Second)
			checkExit(t, tc.sig, exit)
			acked := st1.Posted
			if len(acked) < stopAfter || len(acked) >= total {
				t.Fatalf("%d chunks acknowledged before the stop, want at least %d and fewer than %d", len(acked), stopAfter, total)
			}
			t.Logf("session 1: %d of %d chunks acknowledged, then: %v", len(acked), total, err)

			// Second session on the same data directory.
			srv2 := startServer(t, dataDir)
			c := srv2.client()
			status, err := c.Status(ctx, f.opts, f.size(), f.name)
			if err != nil {
				t.Fatal(err)
			}
			// A chunk whose POST got a 200 was counted, durably; chunks in
			// flight at the stop may or may not have been.
			if status.State != "receiving" || status.Received < len(acked) || status.Total != total {
				t.Errorf("after restart: %+v, want receiving with at least %d of %d chunks", status, len(acked), total)
			}

			st2, err := f.send(ctx, c)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			for _, n := range acked {
				if !slices.Contains(st2.Present, n) {
					t.Errorf("chunk %d was acknowledged before the stop but the test GET says send it", n)
				}
				if slices.Contains(st2.Posted, n) {
					t.Errorf("chunk %d was acknowledged before the stop and sent again", n)
				}
			}
			if st2.GETs != total || st2.POSTs != total-len(st2.Present) {
				t.Errorf("resume: %d GETs, %d POSTs, %d present; want %d GETs and a POST for each missing chunk", st2.GETs, st2.POSTs, len(st2.Present), total)
			}
			t.Logf("session 2: %d chunks present, %d sent", len(st2.Present), st2.POSTs)

			done, err := f.wait(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			checkFinished(t, dataDir, done, f.data)
			if got := finishedFiles(t, dataDir); len(got) != 1 {
				t.Errorf("files/ holds %v, want one file", got)
			}
			checkStagingEmpty(t, dataDir)
		})
	}
}

// checkExit: SIGTERM is a graceful shutdown and exits 0; SIGKILL kills.
func checkExit(t *testing.T, sig syscall.Signal, err error) {
	t.Helper()
	if sig != syscall.SIGTERM {
		return
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) || err != nil {
		t.Errorf("after SIGTERM the server exited with %v, want status 0", err)
	}
}

// TestAssembleAfterKill kills the server right after the last chunk of
// uploads was acknowledged, when they are ready or being assembled. After a
// restart each must be completed without any chunk sent again, with its exact
// content, assembled once.
func TestAssembleAfterKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	c := srv.client()

	var files []upload
	for i := range 3 {
		files = append(files, upload{
			name: fmt.Sprintf("last-%d.bin", i),
			data: randomFile(uint64(7000+i), 1<<20+100*i),
			opts: flowclient.Options{ChunkSize: 128 << 10, Method: []flowclient.Method{flowclient.Multipart, flowclient.Octet}[i%2], Seed: uint64(i)},
		})
	}
	// Everything but the last chunk of each file.
	for _, f := range files {
		g := f.geometry(t)
		f.opts.Chunks = allChunks(g.TotalChunks - 1)
		if _, err := f.send(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	// The last chunks together; the first acknowledgement kills the server.
	var once sync.Once
	lastAcked := make([]bool, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		g := f.geometry(t)
		f.opts.Chunks = []int{g.TotalChunks}
		f.opts.OnAck = func(int, bool) { once.Do(func() { srv.signal(syscall.SIGKILL) }) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := f.send(ctx, c)
			lastAcked[i] = slices.Contains(st.Posted, g.TotalChunks)
		}()
	}
	wg.Wait()
	srv.wait(10 * time.Second)
	if !slices.Contains(lastAcked, true) {
		t.Fatal("no last chunk was acknowledged")
	}

	srv2 := startServer(t, dataDir)
	c = srv2.client()
	for i, f := range files {
		if !lastAcked[i] {
			// Its last chunk may or may not have been taken; resume as flow.js would.
			f.opts.TestChunks = true
			if _, err := f.send(ctx, c); err != nil {
				t.Fatalf("%s: resume: %v", f.name, err)
			}
			continue
		}
		// Acknowledged: every chunk was counted, so the upload is past
		// receiving and must finish with nothing more from the client.
		st, err := c.Status(ctx, f.opts, f.size(), f.name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: last chunk acknowledged before the kill; first state after restart: %s", f.name, st.State)
		if st.State == "receiving" || st.State == "unknown" || st.State == "failed" {
			t.Errorf("%s: state %q after restart although every chunk was acknowledged", f.name, st.State)
		}
	}
	for _, f := range files {
		st, err := f.wait(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		checkFinished(t, dataDir, st, f.data)
	}
	if got := finishedFiles(t, dataDir); len(got) != len(files) {
		t.Errorf("files/ holds %d files, want %d: %v", len(got), len(files), got)
	}
	checkStagingEmpty(t, dataDir)
}
