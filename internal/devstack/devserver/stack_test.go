package devserver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

func TestMain(m *testing.M) {
	code := localaws.RunTests(m)
	lambdarie.RemoveBootstraps()
	os.Exit(code)
}

// The stack end to end, where the functions' wiring to each other is what
// is tested: the assembler is down, so the stream gives its record up (after
// the template's retries, quickly here) to the failure queue; the re-drive
// function, its bootstrap under the emulator with the queue and the stream
// reached through its environment as on AWS, replays the record once the
// assembler is back, and the file is complete.
func TestGivenUpRecordIsReplayedByTheRedriveFunction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var down atomic.Bool
	down.Store(true)
	name := awstest.Name("devserver")
	stack, err := Start(ctx, Options{
		Settings: Settings{Instances: 2, Assemblers: 1, TTLDelay: time.Hour, RedriveInterval: time.Hour, StreamRetention: time.Hour},
		Environ:  []string{"FLOWGATE_BUCKET=" + name, "FLOWGATE_TABLE=" + name},
		Servers:  localaws.Current(),
		Mapping: func(o *esm.Options) {
			o.RetryBackoff, o.MaxRetryBackoff = time.Millisecond, 5*time.Millisecond
		},
		Assemble: func(f esm.Function) esm.Function {
			return func(ctx context.Context, event []byte) ([]byte, error) {
				if down.Load() {
					return nil, errors.New("the assembler is down")
				}
				return f(ctx, event)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	srv := httptest.NewServer(stack.Mux(""))
	defer srv.Close()

	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	c := &flowclient.Client{BaseURL: srv.URL}
	opts := flowclient.Options{ChunkSize: 100_000, ForceChunkSize: true, Simultaneous: 3}
	if _, err := c.Upload(ctx, opts, bytes.NewReader(data), int64(len(data)), "given-up.bin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ready record given up to the queue", func() bool {
		return stack.Stats().Mapping.DestinationMessages == 1
	})
	if st, err := c.Status(ctx, opts, int64(len(data)), "given-up.bin"); err != nil || st.State != "ready" {
		t.Fatalf("status with the assembler down = %+v, %v; want ready", st, err)
	}
	down.Store(false)
	rep, err := stack.RunRedrive(ctx)
	if err != nil || rep.Replayed != 1 {
		t.Fatalf("re-drive = %+v, %v; want one message replayed", rep, err)
	}
	st, err := c.Status(ctx, opts, int64(len(data)), "given-up.bin")
	if err != nil || st.State != "complete" || st.Size != int64(len(data)) {
		t.Fatalf("status after the re-drive = %+v, %v; want complete", st, err)
	}
	if st := stack.Stats(); st.Redrives.Runs != 1 || st.Redrives.Replayed != 1 || st.Redrive.Invokes[0] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// waitFor polls cond (for what the stack does in the background) for up to
// a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}
