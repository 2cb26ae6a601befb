package serverless

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/shared/upload"
)

// Issue 11's scenarios, each on two or three independent instances. Every
// one of them lost or stuck an upload whose chunks had all been answered
// 200 (or skipped a check) before the fixes; each ends here with the file
// assembled, byte for byte, or refused as it should be.

// 1. Instance A refuses a bad first chunk of a new upload and cleans up
// after it, while instance B stores and counts chunk 2. The clean-up takes
// only what A's own request stored (its own generation), never B's.
func TestRefusedFirstChunkRemovesNothingOfAnotherRequest(t *testing.T) {
	s := newStack(t, 2, nil)
	f := newFile("refused-first", 3000, 1000)
	fired := s.hook(0, "ListObjectsV2", func() { s.mustPut(1, f, 2) })
	short := upload.Body{Reader: bytes.NewReader(f.chunk(1)[:500])}
	var ie *upload.InputError
	if _, err := s.inst[0].Service.Put(context.Background(), f.info, 1, short); !errors.As(err, &ie) {
		t.Fatalf("a chunk body shorter than declared: %v, want it refused", err)
	}
	if !fired() {
		t.Fatal("instance B did not act while A cleaned up")
	}
	// The client retries chunk 1 and sends chunk 3; chunk 2 got its 200.
	s.mustPut(1, f, 1)
	s.mustPut(0, f, 3)
	s.deliver(0)
	s.complete(f)
}

// 2. DynamoDB's TTL removes an abandoned upload's record; just as the
// assembler deletes its chunks, the client comes back and sends the file
// again, on other instances. The removal deletes the old generation's
// chunks only.
func TestRemovalOfAnExpiredUploadSparesItsNextGeneration(t *testing.T) {
	s := newStack(t, 3, nil)
	f := newFile("resumed", 2000, 1000)
	s.mustPut(0, f, 1)
	s.expire(24*time.Hour + ttlDelay + time.Minute)
	if _, err := s.record(f); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("TTL did not remove the expired record: %v", err)
	}
	fired := s.hook(2, "ListObjectsV2", func() { s.resume(f) })
	if s.deliver(2) == 0 || !fired() {
		t.Fatal("the removal was not delivered, or the client did not come back meanwhile")
	}
	s.deliver(2) // the new generation, ready
	s.complete(f)
}

// 3. A test GET on a record past its expiry that TTL has not deleted yet
// must not say "present": the record is about to vanish, and the client
// would never send that chunk again.
func TestExpiredRecordIsNotPresent(t *testing.T) {
	s := newStack(t, 2, nil)
	f := newFile("expired", 3000, 1000)
	s.mustPut(0, f, 1, 2)
	clock.Advance(24*time.Hour + time.Minute)
	if _, err := s.record(f); err != nil {
		t.Fatalf("the expired record should still be there (TTL is late): %v", err)
	}
	if s.present(1, f, 1) {
		t.Fatal("a chunk of an expired record reads as present")
	}
	s.expire(ttlDelay)
	s.resume(f)
	s.deliver(0)
	s.complete(f)
}

// 3b. ... and a "present" answer holds: the record it came from stays live
// for most of its idle expiry after it, whatever the clock of its last
// chunk said.
func TestPresentAnswerOutlivesTheClientsPause(t *testing.T) {
	s := newStack(t, 2, nil)
	f := newFile("paused", 3000, 1000)
	s.mustPut(0, f, 1, 2)
	clock.Advance(23 * time.Hour) // an hour before expiry
	if !s.present(1, f, 1) || !s.present(0, f, 2) {
		t.Fatal("counted chunks read as missing")
	}
	s.expire(20 * time.Hour) // the user resumes the next day
	if !s.present(0, f, 1) {
		t.Fatal("the record vanished after the client was told its chunks were there")
	}
	s.mustPut(1, f, 3)
	s.deliver(0)
	s.complete(f)
}

// 4. The stream gives up on a ready record (or never brings it), and then
// DynamoDB's TTL removes it: the removal must not delete a fully received
// upload's chunks; the upload is put back and assembled.
func TestRemovalOfAnOwedUploadPutsItBack(t *testing.T) {
	s := newStack(t, 2, nil)
	f := newFile("owed", 3000, 1000)
	s.mustPut(0, f, 1, 2, 3)
	for _, r := range s.newRecords() { // the stream gave up on them
		s.seen[r.Change.SequenceNumber] = true
	}
	s.expire(7*24*time.Hour + ttlDelay + time.Minute)
	if _, err := s.record(f); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("TTL did not remove the ready record: %v", err)
	}
	s.deliver(1) // the removal: put back as ready
	if rec, err := s.record(f); err != nil || rec.State.PastReceiving() == false {
		t.Fatalf("after the removal of an owed upload: %+v, %v; want it put back", rec, err)
	}
	s.deliver(1) // the record put back, ready
	s.complete(f)
}

// 5. Instance A looked an upload up while its expired record was gone, and
// another upload under the same identifier (another geometry) started on B
// before A counted: A must get 409, not create a second upload receiving
// under the identifier.
func TestIdentifierTakenMeanwhileIsAConflict(t *testing.T) {
	s := newStack(t, 2, nil)
	first := newFile("same-id", 3000, 1000)
	other := newFile("same-id", 4000, 1000) // same identifier, another size
	s.mustPut(0, first, 1)
	s.expire(24*time.Hour + ttlDelay + time.Minute) // its record is gone; the identity item stays
	fired := s.hook(0, "PutObject", func() { s.mustPut(1, other, 1) })
	err := s.put(0, first, 2)
	if !fired() {
		t.Fatal("B did not start the other upload while A stored its chunk")
	}
	var ie *upload.InputError
	if !errors.As(err, &ie) || ie.Kind != upload.Conflict {
		t.Fatalf("A's chunk, with the identifier taken by a receiving upload meanwhile: %v, want 409", err)
	}
	if _, err := s.record(first); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("A created a record under a taken identifier: %v", err)
	}
	if rec, err := s.record(other); err != nil || rec.State != upload.StateReceiving {
		t.Fatalf("the other upload: %+v, %v", rec, err)
	}
}

// 6. A failed upload says why, and sending the same file again starts a new
// generation at once (the test GET does not claim its chunks are there).
func TestFailedUploadCanBeSentAgain(t *testing.T) {
	s := newStack(t, 2, nil)
	f := newFile("failed", 3000, 1000)
	s.mustPut(0, f, 1, 2, 3)
	rec, err := s.record(f)
	if err != nil {
		t.Fatal(err)
	}
	// A chunk object is lost behind the ledger's back.
	if _, err := s.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.bucket),
		Key: aws.String(s.inst[0].Store.ChunkKey(f.info.Key, rec.Generation, 2))}); err != nil {
		t.Fatal(err)
	}
	s.deliver(1)
	st := s.status(0, f)
	if st.State != upload.StateFailed || !strings.Contains(st.Error, "chunk 2") {
		t.Fatalf("status of the upload whose chunk went missing: %+v, want failed saying why", st)
	}
	if s.present(1, f, 1) {
		t.Fatal("a chunk of a failed upload reads as present: the file cannot be sent again")
	}
	s.resume(f)
	if st := s.status(1, f); st.State != upload.StateReady || st.Error != "" {
		t.Fatalf("status after sending the file again: %+v, want ready", st)
	}
	s.deliver(0)
	s.complete(f)
	if again, _ := s.record(f); again.Generation == rec.Generation {
		t.Fatal("the file sent again kept the failed generation")
	}
}

// 7. S3's lifecycle rule deletes chunk objects by age whatever the ledger
// says, while each chunk keeps an upload alive: an upload that takes longer
// than the rule allows starts again as a new generation (whose chunks are
// young) instead of ending with chunks deleted under it.
func TestUploadAgeIsBoundedByTheLifecycleRule(t *testing.T) {
	const retention = 4 * 24 * time.Hour // the lifecycle rule; an upload may take 3 days
	s := newStack(t, 2, map[string]string{"FLOWGATE_STAGING_RETENTION": "4d"})
	f := newFile("slow", 6000, 1000)
	written := map[string]time.Time{} // chunk object -> when it was written
	put := func(i, n int) {
		t.Helper()
		s.mustPut(i, f, n)
		rec, _ := s.record(f)
		written[s.inst[0].Store.ChunkKey(f.info.Key, rec.Generation, n)] = clock.Now()
	}
	// lifecycle deletes what the rule would have deleted by now.
	lifecycle := func() {
		t.Helper()
		for key, at := range written {
			if clock.Now().Sub(at) >= retention {
				s.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
				delete(written, key)
			}
		}
	}
	// A chunk a day, never idle long enough to expire: 110 hours in all.
	for n := 1; n <= f.info.TotalChunks; n++ {
		if n > 1 {
			s.expire(22 * time.Hour)
		}
		lifecycle()
		put(n%2, n)
	}
	// The client resumes (tests every chunk, sends what is missing), then
	// the assembler runs.
	lifecycle()
	s.resume(f)
	lifecycle()
	s.deliver(0)
	s.complete(f)
	if rec, _ := s.record(f); clock.Now().Sub(rec.CreatedAt) > retention {
		t.Fatalf("the assembled generation is %s old, more than the lifecycle rule allows", clock.Now().Sub(rec.CreatedAt))
	}
}
