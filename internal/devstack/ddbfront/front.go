// Package ddbfront is the dev stack's DynamoDB endpoint: an HTTP server that
// speaks the DynamoDB JSON API by forwarding to dynalite, and adds what
// dynalite lacks and the platform has, streams and TTL, behaving as AWS
// does, unkind parts included. Every client (the AWS SDK through
// AWS_ENDPOINT_URL_DYNAMODB, in this process or another) talks to the front
// instead of dynalite; the same endpoint serves the DynamoDB Streams API
// (package ddbstream), so AWS_ENDPOINT_URL_DYNAMODB_STREAMS may point at it
// too.
//
// Streams. A table created (or updated) with a StreamSpecification gets a
// stream: the specification is taken off the request before dynalite sees
// it, remembered, and put back into CreateTable, DescribeTable and
// UpdateTable answers with LatestStreamArn and LatestStreamLabel, as AWS
// answers. Every change an item of such a table really undergoes becomes a
// stream record (INSERT, MODIFY, REMOVE); a failed conditional write, or a
// write that leaves the item as it was, makes none. To know the change, the
// front serializes the writes of each item (a lock per table and key),
// and under that lock reads the item (consistently) before and after
// forwarding the write, and appends the record before it answers. So the
// records of one item are in exactly the order its writes took effect. It
// covers PutItem, UpdateItem, DeleteItem and BatchWriteItem; dynalite has no
// transactions or PartiQL, and the front refuses them rather than let a
// write pass unrecorded. A write sent to dynalite directly, around the
// front, is not seen.
//
// TTL. UpdateTimeToLive and DescribeTimeToLive are answered by the front.
// A sweeper (Run, or SweepTTL to run one sweep now) deletes an item whose TTL
// attribute (a number, epoch seconds) lies more than Options.TTLDelay in the
// past, never before: until then reads return the expired item, as on AWS,
// where the delete comes "within a few days". Like AWS it leaves items whose
// TTL is more than five years past, or not a number. The delete runs under
// the item's lock, on the item as read there, and is conditional on its TTL
// attribute being what was read: an item rewritten meanwhile with a later
// expiry is not deleted. Its REMOVE record carries userIdentity
// {"type": "Service", "principalId": "dynamodb.amazonaws.com"}.
//
// The clock (Options.Now) is injectable: it dates records and decides
// expiry, so tests move time rather than wait.
package ddbfront

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/ddbstream"
)

// TargetPrefix is the X-Amz-Target prefix of the DynamoDB API.
const TargetPrefix = "DynamoDB_20120810."

// maxBody is DynamoDB's largest request (a BatchWriteItem of 25 items of
// 400 KB is well below it).
const maxBody = 16 << 20

// Options configures a Front.
type Options struct {
	// Dynalite is dynalite's URL, e.g. http://127.0.0.1:4567. Required.
	Dynalite string
	// Streams receives the records; nil makes new ones with Region, Now
	// and defaults.
	Streams *ddbstream.Streams
	// TTLDelay is how long past its expiry an item stays before the
	// sweeper deletes it; 0 deletes at the first sweep after it expired.
	TTLDelay time.Duration
	// TTLInterval is how often Run sweeps; 0 means every second.
	TTLInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Region and Account name ARNs (when Streams is nil).
	Region, Account string
	// HTTPClient talks to dynalite; nil means a plain client.
	HTTPClient *http.Client
	// Log gets what goes wrong in the background; nil discards it.
	Log *slog.Logger
}

// Front is the DynamoDB endpoint. Serve it with an http.Server; run the TTL
// sweeper with Run.
type Front struct {
	opt     Options
	streams *ddbstream.Streams
	locks   keyLocks

	mu     sync.Mutex
	tables map[string]*tableInfo // what the front knows of each table, by name

	// testTTLHook, if set, runs as a TTL delete reaches a stage: "scanned"
	// (found expired, not yet locked) and "read" (read under the lock,
	// about to delete). Tests change the item there.
	testTTLHook func(stage string)
}

func (f *Front) ttlHook(stage string) {
	if f.testTTLHook != nil {
		f.testTTLHook(stage)
	}
}

// New returns a Front for opt.
func New(opt Options) (*Front, error) {
	if opt.Dynalite == "" {
		return nil, fmt.Errorf("ddbfront: no dynalite URL")
	}
	opt.Dynalite = strings.TrimRight(opt.Dynalite, "/")
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.TTLInterval <= 0 {
		opt.TTLInterval = time.Second
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	f := &Front{opt: opt, streams: opt.Streams, tables: map[string]*tableInfo{}}
	if f.streams == nil {
		f.streams = ddbstream.New(ddbstream.Options{Region: opt.Region, Account: opt.Account, Now: opt.Now})
	}
	return f, nil
}

// Streams returns the streams the front records into.
func (f *Front) Streams() *ddbstream.Streams { return f.streams }

// ServeHTTP answers a DynamoDB or DynamoDB Streams API request.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if strings.HasPrefix(target, ddbstream.TargetPrefix) {
		f.streams.ServeHTTP(w, r)
		return
	}
	op, ok := strings.CutPrefix(target, TargetPrefix)
	if r.Method != http.MethodPost || !ok {
		f.forward(w, r, nil) // dynalite's own answer: health check, or an error
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, apiErr("SerializationException", "read body: %v", err))
		return
	}
	if len(body) > maxBody {
		writeError(w, apiErr("ValidationException", "request body over %d bytes", maxBody))
		return
	}
	switch op {
	case "PutItem", "UpdateItem", "DeleteItem":
		f.itemWrite(w, r, op, body)
	case "BatchWriteItem":
		f.batchWrite(w, r, body)
	case "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction":
		writeError(w, apiErr("UnknownOperationException", "%s is not emulated by the dev stack (dynalite has no transactions or PartiQL)", op))
	case "CreateTable":
		f.createTable(w, r, body)
	case "DescribeTable":
		f.describeTable(w, r, body)
	case "UpdateTable":
		f.updateTable(w, r, body)
	case "DeleteTable":
		f.deleteTable(w, r, body)
	case "UpdateTimeToLive":
		f.updateTimeToLive(w, r, body)
	case "DescribeTimeToLive":
		f.describeTimeToLive(w, r, body)
	default:
		f.forward(w, r, body)
	}
}

// response is dynalite's answer to a forwarded request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send forwards a request (body in place of r's) to dynalite and reads the
// answer. The signature stays as the client made it: dynalite checks only
// that there is one.
func (f *Front) send(ctx context.Context, r *http.Request, body []byte) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, f.opt.Dynalite+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Accept-Encoding", "Connection":
		default:
			req.Header[k] = v
		}
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := f.opt.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// forward passes a request through unchanged (body nil: read it from r).
func (f *Front) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if body == nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxBody)); err != nil {
			writeError(w, apiErr("SerializationException", "read body: %v", err))
			return
		}
	}
	resp, err := f.send(r.Context(), r, body)
	if err != nil {
		writeError(w, fmt.Errorf("dynalite: %w", err))
		return
	}
	resp.write(w)
}

func (resp *response) write(w http.ResponseWriter) {
	for _, k := range []string{"Content-Type", "X-Amz-Crc32", "X-Amzn-Requestid"} {
		if v := resp.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body)
}

// rewrite replaces the body of a response, and its checksum (the SDK
// verifies x-amz-crc32).
func (resp *response) rewrite(body []byte) {
	resp.body = body
	resp.header.Set("X-Amz-Crc32", fmt.Sprint(crc32.ChecksumIEEE(body)))
}
