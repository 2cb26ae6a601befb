package serverless

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/platform"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/redrive"
	"github.com/flowgate/flowgate/shared/upload"
)

// redrive runs the re-drive function's logic once, as instance i.
func (s *stack) redrive(i int) redrive.Report {
	s.t.Helper()
	r := s.inst[i].Redriver("redrive:test")
	r.Pipeline.Now, r.Now = clock.Now, clock.Now
	rep, err := r.Run(context.Background())
	if err != nil {
		s.t.Fatalf("re-drive: %v", err)
	}
	return rep
}

// The stream's event source mapping, run as the template configures it,
// gives up on the ready record of an upload while the assembler is down;
// the re-drive replays the given-up records from the failure queue, and
// the upload is assembled.
func TestGivenUpRecordsAreReplayed(t *testing.T) {
	ctx := context.Background()
	queue := awstest.Name("failures")
	url, _, err := plat.SQS.CreateQueue(queue)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, 2, map[string]string{"FLOWGATE_FAILURE_QUEUE": url})
	var invoked atomic.Int32
	ms, err := plat.StartMappings(ctx, platform.MappingOptions{
		Template: "../../template.yaml", Function: "AssembleFunction",
		Tables: map[string]string{"LedgerTable": s.table}, Queues: map[string]string{"AssemblyFailureQueue": queue},
		Invoke: func(context.Context, []byte) ([]byte, error) {
			invoked.Add(1)
			return nil, errors.New("the assembler is down")
		},
		Override: func(o *esm.Options) {
			o.PollInterval, o.RetryBackoff, o.MaxRetryBackoff = 5*time.Millisecond, time.Millisecond, 5*time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newFile("given-up", 3000, 1000)
	s.mustPut(0, f, 1, 2, 3)
	waitFor(t, "the mapping to give the ready record up", func() bool { return queued(t, url) == 1 })
	for _, m := range ms {
		m.Stop()
	}
	if n := invoked.Load(); n != 11 {
		t.Errorf("the assembler was invoked %d times for the record; the template says 1 + 10 retries", n)
	}

	rep := s.redrive(1)
	if rep.Replayed != 1 || rep.Owed != 0 {
		t.Fatalf("re-drive: %+v; want the one message replayed, and nothing due yet", rep)
	}
	s.complete(f)
	if n := queued(t, url); n != 0 {
		t.Fatalf("%d messages left on the failure queue", n)
	}
	if rep := s.redrive(0); rep.Replayed != 0 || rep.Driven != 0 {
		t.Fatalf("a second re-drive did something: %+v", rep)
	}
}

// An upload that became ready and that the stream never brought to an
// assembler, and one whose assembler died holding it, are assembled by the
// re-drive once due, and not before.
func TestOwedUploadsAreRedriven(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, 2, nil)
	ready := newFile("never-delivered", 2000, 1000)
	held := newFile("assembler-died", 2000, 1000)
	s.mustPut(0, ready, 1, 2)
	s.mustPut(1, held, 1, 2)
	if _, err := s.inst[0].Ledger.Claim(ctx, held.info.Key, "stream:crashed", 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	if rep := s.redrive(1); rep.Owed != 0 {
		t.Fatalf("re-drive right away: %+v; nothing is due yet (the stream may still deliver)", rep)
	}
	clock.Advance(16 * time.Minute)
	if rep := s.redrive(1); rep.Owed != 2 || rep.Driven != 2 {
		t.Fatalf("re-drive once due: %+v; want both driven", rep)
	}
	s.complete(ready)
	s.complete(held)
	if rep := s.redrive(0); rep.Owed != 0 {
		t.Fatalf("still owed after completing: %+v", rep)
	}
}

// An upload whose assembly keeps failing ends failed, with the last error,
// after the pipeline's bound on attempts; and can then be sent again.
func TestAssemblyFailingForEverEndsFailed(t *testing.T) {
	s := newStack(t, 2, nil)
	f := newFile("doomed", 2000, 1000)
	s.mustPut(0, f, 1, 2)
	// Instance 1's bucket is out of reach: every assembly there fails for now.
	broken := s.inst[1].Store.Bucket
	s.inst[1].Store.Bucket = "no-such-bucket-" + strings.ToLower(awstest.Name("x"))
	runs := 0
	for ; runs < 3*upload.DefaultMaxAttempts; runs++ {
		clock.Advance(61 * time.Minute) // the longest wait between attempts
		s.redrive(1)
		if rec, _ := s.record(f); rec.State == upload.StateFailed {
			break
		}
	}
	st := s.status(0, f)
	if st.State != upload.StateFailed || !strings.Contains(st.Error, "assembly failed 16 times") || !strings.Contains(st.Error, "NoSuchBucket") {
		t.Fatalf("after %d re-drives of an upload that cannot be assembled: %+v; want failed, saying why", runs, st)
	}
	if runs+1 != upload.DefaultMaxAttempts {
		t.Errorf("failed after %d attempts, want %d", runs+1, upload.DefaultMaxAttempts)
	}
	s.inst[1].Store.Bucket = broken
	s.resume(f)
	s.deliver(1)
	s.complete(f)
}

// waitFor polls cond (for what the background mapping does) for up to a
// minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// queued is how many messages the queue holds, visible or not.
func queued(t *testing.T, url string) int {
	t.Helper()
	out, err := plat.SQSClient().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		var v int
		for _, c := range out.Attributes[string(k)] {
			v = v*10 + int(c-'0')
		}
		n += v
	}
	return n
}
