// Package upload is flowgate's core, free of HTTP and of any storage: the
// contracts every store and ledger implements, the Service that takes chunks,
// and the Pipeline that assembles a ready upload.
//
// This file states every storage contract as a small interface, in the manner of
// tusd's datastore.go. The HTTP layer turns flow.js requests into calls on a
// Service; the Service stores bytes through a ChunkStore and counts them in a
// Ledger; when the Ledger says an upload is ready, a Pipeline claims it, has an
// Assembler build the final file, records the Result and hands an Event to a
// Publisher.
//
// Two families implement these interfaces: the embedded one (a directory and a
// bbolt database, for `make run`) and the AWS one (S3 and DynamoDB). Optional
// capabilities, such as listing uploads for a sweeper, are discovered by
// interface assertion, so a store only implements what it can do well.
package upload

import (
	"context"
	"errors"
	"io"
	"time"
)

// State is where an upload is in its life:
//
//	receiving -> ready -> assembling -> complete
//	                                 \-> failed
//
// An upload is ready only once every chunk is durably stored and counted, and
// it leaves ready exactly once, through a claim. A failed upload, or one that
// stopped receiving chunks for too long, is not live: the next chunk sent for
// it starts a new generation of it (see Slot).
type State string

const (
	StateUnknown    State = "unknown" // no record: never seen, or expired
	StateReceiving  State = "receiving"
	StateReady      State = "ready"
	StateAssembling State = "assembling"
	StateComplete   State = "complete"
	StateFailed     State = "failed"
)

// PastReceiving reports whether the upload takes no more chunks: every chunk
// of it counts as present for the client's test GET.
func (s State) PastReceiving() bool {
	return s == StateReady || s == StateAssembling || s == StateComplete || s == StateFailed
}

// Info is one upload as the client declared it, after validation.
//
// Key is the only name storage ever sees: a hash of (namespace, identifier,
// total size, chunk size, total chunks). Client strings never become paths or
// object keys; FileName is used, sanitized, only to name the finished file.
type Info struct {
	Key          string `json:"key"`
	Namespace    string `json:"namespace"`
	Identifier   string `json:"identifier"`
	FileName     string `json:"fileName"`
	RelativePath string `json:"relativePath"`
	TotalSize    int64  `json:"totalSize"`
	ChunkSize    int64  `json:"chunkSize"`
	TotalChunks  int    `json:"totalChunks"`
	// ContentType is the file's type as the client gave it, made well-formed
	// (see ContentType): the finished file is served with it. The record
	// keeps the one of the chunk that created it.
	ContentType string `json:"contentType,omitempty"`
}

// ChunkBounds returns where chunk n (1-based) starts in the file and how long it
// is. It follows flow.js: every chunk is ChunkSize long except the last, which
// runs to the end of the file. With forceChunkSize false the last chunk carries
// the remainder and may be up to 2*ChunkSize-1 bytes; with true it is at most
// ChunkSize. Both come out of the same rule once TotalChunks is known.
func (i Info) ChunkBounds(n int) (offset, size int64) {
	offset = int64(n-1) * i.ChunkSize
	end := offset + i.ChunkSize
	if n == i.TotalChunks || end > i.TotalSize {
		end = i.TotalSize
	}
	return offset, end - offset
}

// Result is where a finished file landed.
type Result struct {
	// Location is what the status endpoint shows: a path relative to the data
	// directory locally, s3://bucket/key on AWS.
	Location string `json:"location"`
	Bucket   string `json:"bucket,omitempty"`
	Object   string `json:"object,omitempty"`
	Size     int64  `json:"size"`
	ETag     string `json:"etag,omitempty"`
	// CRC64NVME is the finished file's CRC-64/NVME (8 bytes big-endian,
	// base64, as S3 shows it in x-amz-checksum-crc64nvme), combined from
	// its chunks' checksums and, on S3, verified by S3 against the object.
	CRC64NVME string `json:"crc64nvme,omitempty"`
	// ContentType and ContentDisposition are what the file is served with.
	ContentType        string `json:"contentType,omitempty"`
	ContentDisposition string `json:"contentDisposition,omitempty"`
}

// Record is what a Ledger knows of one upload.
type Record struct {
	Info
	// Generation is random, set when the record is created. It names the
	// place of the upload's chunks in the store and, together with Key, the
	// finished file: the same upload started again after its record expired
	// or failed is a new generation, and nothing done for one generation
	// touches the chunks or the file of another.
	Generation string    `json:"generation"`
	State      State     `json:"state"`
	Received   int       `json:"received"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	// Owner and LeaseUntil belong to the assembler that claimed the upload;
	// once complete, Owner is the one whose result was recorded.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitempty"`
	// Attempts counts the claims of the upload: how many times an assembly
	// of it was started. LastError is why the latest one failed for now.
	Attempts  int     `json:"attempts,omitempty"`
	LastError string  `json:"lastError,omitempty"`
	Result    *Result `json:"result,omitempty"`
	Error     string  `json:"error,omitempty"`
	// Published is set once the completion event went out, so that a crash
	// between recording the result and publishing it leads to a retry.
	Published bool `json:"published,omitempty"`
}

// Errors the contracts share. Implementations wrap them; callers test with errors.Is.
var (
	// ErrConflict: the identifier is in use, in the same namespace, by an
	// upload still receiving with another geometry (size, chunk size or count).
	ErrConflict = errors.New("an upload with this identifier and a different size or chunking is in progress")
	// ErrNotFound: the ledger has no record of the upload.
	ErrNotFound = errors.New("upload not found")
	// ErrNotClaimable: the upload is not ready, or another assembler holds a live lease.
	ErrNotClaimable = errors.New("upload is not ready to be claimed")
	// ErrLeaseLost: the caller's claim was taken over or the upload has moved on.
	ErrLeaseLost = errors.New("assembly lease lost")
)

// StaleSlotError is Count's answer when the chunk was stored under a
// generation that is no longer (or not yet) the record's: Current is where
// it must be counted. Current may be New, when the record the chunk was
// meant for is gone and none has replaced it yet.
type StaleSlotError struct{ Current Slot }

func (e *StaleSlotError) Error() string {
	return "the upload's generation changed while the chunk was stored"
}

// PermanentError marks an assembly failure that retrying cannot mend (the
// stored bytes do not add up to the declared size, say). The pipeline records
// such an upload as failed instead of retrying it.
type PermanentError struct{ Reason string }

func (e *PermanentError) Error() string { return e.Reason }

// ChunkStore keeps the bytes of chunks until they are assembled.
//
// Chunks are kept per generation of an upload (gen, a Record's Generation or
// a Slot's): the same chunk of two generations are two places, so that
// removing one generation's chunks never touches another's, whoever does it
// and whenever.
type ChunkStore interface {
	// PutChunk stores chunk n of generation gen of the upload, reading r to
	// its end. r yields exactly the chunk's size or fails; when r fails,
	// PutChunk fails and the chunk must not be taken as stored. On a nil
	// return the bytes are durable. A failed or repeated PutChunk may leave
	// bytes that the ledger never counted; a later PutChunk of the same chunk
	// replaces them, and Discard removes them. The store keeps the chunk's
	// CRC-64/NVME with it (computed as the bytes pass, never by reading them
	// again), durable with the chunk, for the file's checksum at assembly.
	// r may fail on its last read (a chunk that does not match its client's
	// digest): the chunk must then not be taken as stored either.
	PutChunk(ctx context.Context, info Info, gen string, n int, r io.Reader) error

	// MoveChunk moves the stored chunk n from generation from to generation
	// to (when the upload's generation changed between storing and counting
	// the chunk). On a nil return the chunk is durable under to; a chunk
	// missing under from is an error.
	MoveChunk(ctx context.Context, info Info, n int, from, to string) error

	// Discard removes whatever is staged for generation gen of the upload,
	// and nothing of any other generation. It is idempotent.
	Discard(ctx context.Context, key, gen string) error
}

// StagedLister is an optional ChunkStore capability: listing staged uploads
// with the time they were last written, so a sweeper can find what no ledger
// record points to any more.
type StagedLister interface {
	Staged(ctx context.Context) ([]Staged, error)
}

// Staged is one generation's staged data as a StagedLister sees it.
type Staged struct {
	Key        string
	Generation string
	Modified   time.Time
}

// Assembler turns the stored chunks of a counted upload into the finished file.
type Assembler interface {
	// Assemble builds the finished file of rec (claimed by the caller),
	// verifies its size and removes the chunks. The Result carries the
	// file's CRC-64/NVME, combined from the chunks' without reading the file,
	// and how it is to be served (ContentType, ContentDisposition). It must be idempotent: called
	// again after a crash at any point, it ends with the same Result. A
	// *PermanentError means retrying cannot help.
	Assemble(ctx context.Context, rec Record) (Result, error)
}

// Slot is what a Ledger's Lookup tells of chunk n of an upload: whether the
// client needs to send it, and under which generation to store it.
type Slot struct {
	// State is the upload's, StateUnknown when it has no live record.
	State State
	// Counted: chunk n is stored and counted, and the record it is counted
	// in stays live for a good while yet (see Ledger.Lookup).
	Counted bool
	// Generation is where chunk n's bytes go: the live record's generation,
	// or, when New, a fresh one that Count creates the record with.
	Generation string
	// New: there is no live record. Either none at all, or one that is no
	// longer live (failed, or receiving but past its expiry or its age
	// limit): Replaces is then that record's generation, which Count replaces
	// by Generation.
	New      bool
	Replaces string
}

// Ledger counts chunks and moves uploads through their states. Every method is
// safe under retries, duplicates and concurrent callers, in one process or many.
type Ledger interface {
	// Lookup tells the upload's state, whether chunk n of it is counted, and
	// where to store it. It returns ErrConflict when the identifier belongs
	// to another receiving upload in the namespace.
	//
	// A record that is no longer live gives a New slot: the client must send
	// every chunk again, and no chunk reads as counted. A counted chunk of a
	// receiving upload is reported only once the record is sure to stay live
	// for most of its idle expiry from now (Lookup refreshes it if needed),
	// so a client that hears "counted" never finds the upload gone before it
	// could send the rest.
	Lookup(ctx context.Context, info Info, n int) (Slot, error)

	// Count records chunk n, stored under slot.Generation, as counted. It
	// must be called only after the chunk is durable. For a New slot it
	// creates the record with slot.Generation (replacing slot.Replaces, if
	// that is still the record). It reports ready=true to exactly one
	// caller: the one whose count made the upload ready. Counting a counted
	// chunk, or any chunk of an upload past receiving, changes nothing. It
	// returns ErrConflict as Lookup does.
	//
	// If the live record's generation is no longer slot.Generation (another
	// request created the record first, or the record expired meanwhile),
	// nothing is counted and the error is a *StaleSlotError naming the slot
	// to count in instead: the caller moves the chunk there and counts again.
	Count(ctx context.Context, info Info, n int, slot Slot) (ready bool, err error)

	// Get returns the record, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)

	// Claim moves a ready upload to assembling for owner until now+lease. An
	// upload already assembling can be claimed again by the same owner, or by
	// anyone once its lease ran out. Otherwise it returns ErrNotClaimable
	// together with the current record (for example, complete).
	Claim(ctx context.Context, key, owner string, lease time.Duration) (Record, error)

	// Complete records the result of owner's assembly. Called again by the
	// same owner after it succeeded (a retry after a timeout), it is a no-op.
	// It returns ErrLeaseLost if owner no longer holds the upload, including
	// when another owner, who took over after the lease ran out, recorded
	// its result first: the loser must not publish.
	Complete(ctx context.Context, key, owner string, res Result) error

	// Fail records that owner's assembly failed for good.
	Fail(ctx context.Context, key, owner, reason string) error

	// Postpone records that owner's assembly failed for now, with why, and
	// keeps the claim only until until: then anyone may claim the upload
	// again (owner at once). It returns ErrLeaseLost as Complete does.
	Postpone(ctx context.Context, key, owner, reason string, until time.Time) error

	// MarkPublished records that the completion event went out.
	MarkPublished(ctx context.Context, key string) error
}

// Scanner is an optional Ledger capability for the embedded deployment, which
// has no DynamoDB stream or TTL to lean on: listing the work left after a
// restart, and expiring idle uploads.
type Scanner interface {
	// Pending lists uploads that need the pipeline: ready, assembling, or
	// complete but not yet published.
	Pending(ctx context.Context) ([]Record, error)
	// Idle lists uploads not updated since before.
	Idle(ctx context.Context, before time.Time) ([]Record, error)
	// Forget deletes the record if it still was not updated since before, and
	// reports whether it did.
	Forget(ctx context.Context, key string, before time.Time) (bool, error)
}

// Event is announced once a file is complete (at least once: consumers
// should de-duplicate on UploadKey). On AWS it is the detail of an EventBridge
// event with source "flowgate" and detail-type "Upload Completed"; locally it
// is logged and optionally POSTed to a webhook.
type Event struct {
	UploadKey    string `json:"uploadKey"`
	Namespace    string `json:"namespace"`
	Identifier   string `json:"identifier"`
	FileName     string `json:"fileName"`
	RelativePath string `json:"relativePath"`
	Location     string `json:"location"`
	Bucket       string `json:"bucket,omitempty"`
	Object       string `json:"key,omitempty"`
	Size         int64  `json:"size"`
	Chunks       int    `json:"chunks"`
	ETag         string `json:"etag,omitempty"`
	// CRC64NVME is the file's checksum (see Result): a consumer compares it
	// with the object's own, or with the bytes it reads.
	CRC64NVME          string    `json:"crc64nvme,omitempty"`
	ContentType        string    `json:"contentType,omitempty"`
	ContentDisposition string    `json:"contentDisposition,omitempty"`
	StartedAt          time.Time `json:"startedAt"`
	CompletedAt        time.Time `json:"completedAt"`
}

// EventSource and EventDetailType name the completion event on EventBridge.
const (
	EventSource     = "flowgate"
	EventDetailType = "Upload Completed"
)

// Publisher announces finished files.
type Publisher interface {
	Publish(ctx context.Context, ev Event) error
}

// InputError is a problem with what the client sent: Kind says which, in the
// service's words (the HTTP layer chooses the status for each), Msg explains
// it to the client in a sentence.
type InputError struct {
	Kind Kind
	Msg  string
}

func (e *InputError) Error() string { return e.Msg }

// The direct data path.
//
// In a deployment whose data path is "direct", clients do not send chunk
// bytes through the API: they ask it for a URL per chunk, signed by the
// server for exactly one chunk object of the upload's current generation,
// and write the chunk to the store with it. The store reports each object
// created (S3's event notifications), and the server counts it then, in the
// same ledger. Since the generation must be known before the first byte is
// sent, the record is created when the first URL is asked for (Beginner),
// and since a report may come late or never, the server can look at what
// the store holds (DirectStore) when a client tests a chunk, and a re-drive
// counts what was stored but never reported.

// StoredChunk is a chunk object as the store holds it.
type StoredChunk struct {
	N    int
	Size int64
	// CRC64NVME is the checksum the store keeps with the chunk (8 bytes
	// big-endian, base64), "" when it keeps none.
	CRC64NVME string
}

// DirectStore is an optional ChunkStore capability for the direct data
// path: letting a client store a chunk, and seeing what clients stored.
// Like every ChunkStore method, these touch only the generation they are
// given.
type DirectStore interface {
	// SignChunk returns a URL with which a client can store chunk n of
	// generation gen of the upload, and nothing else, for life: exactly
	// that chunk's size, with the CRC-64/NVME crc64 (8 bytes big-endian,
	// base64), once. The client appends fields to the URL's query itself
	// (the upload library's own fields), which the URL must accept.
	SignChunk(ctx context.Context, info Info, gen string, n int, fields []Field, crc64 string, life time.Duration) (ChunkURL, error)
	// StatChunk tells what is stored as chunk n of generation gen of the
	// upload, or ErrNotFound.
	StatChunk(ctx context.Context, key, gen string, n int) (StoredChunk, error)
	// ListChunks lists what is stored for generation gen of the upload, in
	// chunk order (without checksums).
	ListChunks(ctx context.Context, key, gen string) ([]StoredChunk, error)
	// RemoveChunk deletes chunk n of generation gen of the upload, and
	// nothing else. It is idempotent.
	RemoveChunk(ctx context.Context, key, gen string, n int) error
}

// Field is one query parameter of a URL.
type Field struct{ Name, Value string }

// ChunkURL is where and how a client stores one chunk itself.
type ChunkURL struct {
	// URL is where to send the chunk, without the fields the client
	// appends.
	URL string
	// Method is the HTTP method (PUT).
	Method string
	// Headers must be sent with the request, with these values.
	Headers map[string]string
	// Expires is when the URL stops working.
	Expires time.Time
}

// Begun is what Beginner.Begin tells of an upload.
type Begun struct {
	// State is receiving, or the state of an upload past receiving (whose
	// chunks all count as present).
	State State
	// Generation is the live record's: where every chunk is to be stored.
	Generation string
	// Created: Begin created the record (the upload is new, or its
	// record had died: Replaced); otherwise the client is carrying on, or
	// resuming, an upload some of whose chunks may be stored already.
	Created bool
	// Replaced is the dead generation whose record the new one replaced,
	// if Begin created the record in place of one.
	Replaced string
	// Counted lists, of the chunks Begin was asked about, those counted.
	Counted []int
}

// Beginner is an optional Ledger capability for the direct data path.
type Beginner interface {
	// Begin makes sure the upload has a live receiving record, creating it
	// as Count creates one for a first chunk (the identifier claimed, a
	// dead record replaced: ErrConflict as Count), and that the record
	// stays live for most of its idle expiry from now, so that chunks
	// stored within a URL's lifetime find it live when they are counted.
	// It also makes the upload due for a check of its stored chunks
	// (CheckDue) at checkAt, unless another Begin pushes that later. An
	// upload past receiving is reported as it is, unchanged.
	Begin(ctx context.Context, info Info, chunks []int, checkAt time.Time) (Begun, error)
	// Peek returns the record as it is stored, without reading its chunk
	// counts (Received is 0), or ErrNotFound.
	Peek(ctx context.Context, key string) (Record, error)
	// CheckDue lists, oldest first, at most limit receiving uploads whose
	// check of stored chunks is due at now.
	CheckDue(ctx context.Context, now time.Time, limit int) ([]string, error)
	// Counted returns the record, the chunks counted in it, and whether it
	// is live (see Ledger.Lookup), or ErrNotFound.
	Counted(ctx context.Context, key string) (rec Record, counted []int, live bool, err error)
	// Checked records a check of generation gen's stored chunks: the next
	// one is due at next, or none is if next is zero. It changes nothing
	// once the record has moved on (another generation, or past receiving).
	Checked(ctx context.Context, key, gen string, next time.Time) error
}
