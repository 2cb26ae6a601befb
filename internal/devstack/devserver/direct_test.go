package devserver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/upload"
)

// make dev on the direct data path, its functions wired to each other as
// on AWS: the client PUTs chunks through the door into MinIO, MinIO's
// notifications (its webhook, at least once) reach the counting function's
// bootstrap under the emulator, the stream the assembler's. A notification
// lost (dropped on purpose) is counted by the re-drive function's check of
// stored chunks once the upload's URLs have run out; one the counting
// function kept failing goes to its failure queue, which the re-drive
// function replays.
func TestDirectDataPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	servers, recv, err := NotificationServers(ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	defer servers.Stop()

	// Chunk 2 of the upload whose key prefix is set here: its notification
	// is lost, or its counting fails.
	var lostKey, failingKey atomic.Value
	lostKey.Store("no upload has this key")
	failingKey.Store("no upload has this key")
	chunk2 := func(v *atomic.Value, s string) bool {
		// The key is URL-encoded in an event, as S3 writes it.
		return strings.Contains(s, v.Load().(string)) && strings.Contains(s, "00000002")
	}
	name := awstest.Name("direct")
	stack, err := Start(ctx, Options{
		Settings: Settings{Instances: 2, Assemblers: 1, TTLDelay: time.Hour, RedriveInterval: time.Hour, StreamRetention: time.Hour,
			NotifyRetryDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}},
		Environ: []string{"FLOWGATE_BUCKET=" + name, "FLOWGATE_TABLE=" + name, "FLOWGATE_DATA_PATH=direct",
			// Short URLs, so the re-drive's check of an upload comes soon.
			"FLOWGATE_DIRECT_URL_LIFE=2s"},
		Servers:       servers,
		Notifications: recv,
		Mapping: func(o *esm.Options) {
			o.RetryBackoff, o.MaxRetryBackoff = time.Millisecond, 5*time.Millisecond
		},
		Count: func(f esm.Function) esm.Function {
			return func(ctx context.Context, event []byte) ([]byte, error) {
				if chunk2(&failingKey, string(event)) {
					return nil, errors.New("the counting function is failing")
				}
				return f(ctx, event)
			}
		},
		DropNotification: func(key string) bool { return chunk2(&lostKey, key) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	if stack.DoorURL() == "" {
		t.Fatal("no door to MinIO")
	}
	srv := httptest.NewServer(stack.Mux(""))
	defer srv.Close()

	c := &flowclient.Client{BaseURL: srv.URL}
	opts := flowclient.Options{ChunkSize: 6 << 20, ForceChunkSize: true, Simultaneous: 3, Direct: true, DirectBatch: 2,
		TestChunks: true, MaxRetries: 3, RetryInterval: 50 * time.Millisecond, FileType: "video/mp4"}
	// prefix is the upload key of a file, in its objects' keys.
	prefix := func(label string, size int) string {
		chunks := flowclient.TotalChunks(int64(size), opts.ChunkSize, true)
		return upload.UploadKey("public", label+"-"+name, int64(size), opts.ChunkSize, chunks)
	}
	send := func(label string, size int) ([]byte, flowclient.Options) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		o := opts
		o.Identifier = label + "-" + name
		if _, err := c.Upload(ctx, o, bytes.NewReader(data), int64(len(data)), label+".mp4"); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		return data, o
	}
	complete := func(label string, data []byte, o flowclient.Options) {
		t.Helper()
		st, err := c.WaitComplete(ctx, o, int64(len(data)), label+".mp4", 20*time.Millisecond)
		if err != nil || st.State != "complete" || st.Size != int64(len(data)) {
			t.Fatalf("%s: status %+v, %v; want complete", label, st, err)
		}
	}

	// Every notification delivered: counted and assembled.
	data, o := send("whole", 15<<20)
	complete("whole", data, o)

	// The notification of one chunk lost for good.
	lostKey.Store(prefix("lost", 13<<20))
	lostData, lostOpts := send("lost", 13<<20)
	waitFor(t, "the other chunks counted", func() bool {
		st, err := c.Status(ctx, lostOpts, int64(len(lostData)), "lost.mp4")
		return err == nil && st.State == "receiving" && st.Received == st.Total-1
	})
	waitFor(t, "the re-drive's check of the upload", func() bool {
		rep, err := stack.RunRedrive(ctx)
		return err == nil && rep.Recounted == 1
	})
	complete("lost", lostData, lostOpts)

	// The counting function failing: the event goes to its failure queue
	// after two retries, and the re-drive replays it.
	failingKey.Store(prefix("failing", 13<<20))
	failData, failOpts := send("failing", 13<<20)
	waitFor(t, "the event given up to the failure queue", func() bool { return stack.Stats().Notifications.Failed == 1 })
	failingKey.Store("no upload has this key")
	rep, err := stack.RunRedrive(ctx)
	if err != nil || rep.CountingReport.Replayed != 1 {
		t.Fatalf("re-drive: %+v, %v; want the failed event replayed", rep, err)
	}
	complete("failing", failData, failOpts)

	ns := stack.Stats().Notifications
	if ns.Dropped != 1 || ns.Failed != 1 || ns.Retried != 2 || ns.Succeeded < 6 {
		t.Errorf("notification stats: %+v", ns)
	}
	if st := stack.Stats(); st.Upload.Errors != 0 || st.Count == nil || st.Count.Errors != 0 || st.Redrives.Checked == 0 {
		t.Errorf("stats: %+v (count %+v)", st, st.Count)
	}
}
