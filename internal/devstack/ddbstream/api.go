package ddbstream

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// TargetPrefix is the X-Amz-Target prefix of the DynamoDB Streams API.
const TargetPrefix = "DynamoDBStreams_20120810."

// Limits of the API, as AWS's.
const (
	maxRecordsPerCall = 1000
	maxBytesPerCall   = 1 << 20
	iteratorLifetime  = 15 * time.Minute
)

// APIError is an error the API answers with: HTTP 400 and
// {"__type": "...#Code", "message": ...}.
type APIError struct {
	Code, Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func apiErr(code, format string, a ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, a...)}
}

// ServeHTTP answers DynamoDB Streams API requests (AWS JSON 1.0, the
// operation in X-Amz-Target). The signature is not checked.
func (s *Streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if r.Method != http.MethodPost || !ok {
		WriteError(w, apiErr("UnknownOperationException", "not a DynamoDB Streams request"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		WriteError(w, apiErr("SerializationException", "read body: %v", err))
		return
	}
	var out any
	switch op {
	case "ListStreams":
		var in listStreamsInput
		if err = decode(body, &in); err == nil {
			out, err = s.listStreams(in)
		}
	case "DescribeStream":
		var in describeStreamInput
		if err = decode(body, &in); err == nil {
			out, err = s.describeStream(in)
		}
	case "GetShardIterator":
		var in getShardIteratorInput
		if err = decode(body, &in); err == nil {
			out, err = s.getShardIterator(in)
		}
	case "GetRecords":
		var in getRecordsInput
		if err = decode(body, &in); err == nil {
			out, err = s.getRecords(in)
		}
	default:
		err = apiErr("UnknownOperationException", "operation %q is not emulated", op)
	}
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func decode(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apiErr("SerializationException", "%v", err)
	}
	return nil
}

// WriteError writes err in the AWS JSON 1.0 error format, under the DynamoDB
// namespace; an error that is not an *APIError is an InternalServerError.
func WriteError(w http.ResponseWriter, err error) {
	var ae *APIError
	status := http.StatusBadRequest
	if !errors.As(err, &ae) {
		ae = &APIError{Code: "InternalServerError", Message: err.Error()}
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + ae.Code, "message": ae.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"__type":"InternalServerError"}`)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	w.Write(b)
}

type listStreamsInput struct {
	TableName               string
	Limit                   int
	ExclusiveStartStreamArn string
}

type streamSummary struct {
	StreamArn, TableName, StreamLabel string
}

func (s *Streams) listStreams(in listStreamsInput) (any, error) {
	limit := in.Limit
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := struct {
		Streams                []streamSummary
		LastEvaluatedStreamArn string `json:",omitempty"`
	}{Streams: []streamSummary{}}
	started := in.ExclusiveStartStreamArn == ""
	for _, st := range s.order {
		if !started {
			started = st.ARN == in.ExclusiveStartStreamArn
			continue
		}
		if in.TableName != "" && st.Table != in.TableName {
			continue
		}
		if len(out.Streams) == limit {
			out.LastEvaluatedStreamArn = out.Streams[limit-1].StreamArn
			break
		}
		out.Streams = append(out.Streams, streamSummary{st.ARN, st.Table, st.Label})
	}
	return out, nil
}

type describeStreamInput struct {
	StreamArn             string
	Limit                 int
	ExclusiveStartShardId string
}

type shardDesc struct {
	ShardId             string
	SequenceNumberRange struct {
		StartingSequenceNumber string
		EndingSequenceNumber   string `json:",omitempty"`
	}
}

func (s *Streams) describeStream(in describeStreamInput) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[in.StreamArn]
	if st == nil {
		return nil, apiErr("ResourceNotFoundException", "Requested resource not found: Stream: %s not found", in.StreamArn)
	}
	limit := in.Limit
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	status := "ENABLED"
	if !st.enabled {
		status = "DISABLED"
	}
	type keyElem struct{ AttributeName, KeyType string }
	desc := struct {
		StreamArn, StreamLabel, StreamStatus, StreamViewType, TableName string
		CreationRequestDateTime                                         float64
		KeySchema                                                       []keyElem
		Shards                                                          []shardDesc
		LastEvaluatedShardId                                            string `json:",omitempty"`
	}{StreamArn: st.ARN, StreamLabel: st.Label, StreamStatus: status, StreamViewType: st.View, TableName: st.Table,
		CreationRequestDateTime: float64(st.Created.UnixMilli()) / 1000, Shards: []shardDesc{}}
	for _, k := range st.KeySchema {
		desc.KeySchema = append(desc.KeySchema, keyElem{k.AttributeName, k.KeyType})
	}
	started := in.ExclusiveStartShardId == ""
	for _, sh := range st.shards {
		if !started {
			started = sh.id == in.ExclusiveStartShardId
			continue
		}
		if len(desc.Shards) == limit {
			desc.LastEvaluatedShardId = desc.Shards[limit-1].ShardId
			break
		}
		var d shardDesc
		d.ShardId = sh.id
		d.SequenceNumberRange.StartingSequenceNumber = formatSeq(sh.start)
		if sh.end != 0 {
			d.SequenceNumberRange.EndingSequenceNumber = formatSeq(sh.end)
		}
		desc.Shards = append(desc.Shards, d)
	}
	return map[string]any{"StreamDescription": desc}, nil
}

// iterator is what a shard iterator encodes: where the next GetRecords
// starts (the first record with a sequence number >= From) and when the
// iterator was issued.
type iterator struct {
	Stream string `json:"a"`
	Shard  string `json:"s"`
	From   uint64 `json:"f"`
	Issued int64  `json:"t"` // unix milliseconds, by the streams' clock
}

func (it iterator) encode() string {
	b, _ := json.Marshal(it)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeIterator(s string) (iterator, error) {
	var it iterator
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &it)
	}
	if err != nil || it.Stream == "" || it.Shard == "" {
		return it, apiErr("ValidationException", "Invalid ShardIterator")
	}
	return it, nil
}

func (st *Stream) shardLocked(id string) *shard {
	for _, sh := range st.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

type getShardIteratorInput struct {
	StreamArn, ShardId, ShardIteratorType, SequenceNumber string
}

func (s *Streams) getShardIterator(in getShardIteratorInput) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[in.StreamArn]
	if st == nil {
		return nil, apiErr("ResourceNotFoundException", "Requested resource not found: Stream: %s not found", in.StreamArn)
	}
	sh := st.shardLocked(in.ShardId)
	if sh == nil {
		return nil, apiErr("ResourceNotFoundException", "Requested resource not found: Shard: %s in Stream: %s not found", in.ShardId, in.StreamArn)
	}
	s.trimLocked(sh)
	it := iterator{Stream: st.ARN, Shard: sh.id, Issued: s.opt.Now().UnixMilli()}
	switch in.ShardIteratorType {
	case "TRIM_HORIZON":
		it.From = sh.trimmed + 1
	case "LATEST":
		it.From = s.seq + 1
		if sh.end != 0 {
			it.From = sh.end + 1
		}
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		n, ok := parseSeq(in.SequenceNumber)
		if !ok || n < sh.start || n > s.seq || (sh.end != 0 && n > sh.end) {
			return nil, apiErr("ValidationException", "Invalid SequenceNumber %q for shard %s", in.SequenceNumber, sh.id)
		}
		it.From = n
		if in.ShardIteratorType == "AFTER_SEQUENCE_NUMBER" {
			it.From = n + 1
		}
		if it.From <= sh.trimmed {
			return nil, apiErr("TrimmedDataAccessException", "the records from sequence number %s are past the retention", in.SequenceNumber)
		}
	default:
		return nil, apiErr("ValidationException", "ShardIteratorType %q", in.ShardIteratorType)
	}
	return map[string]string{"ShardIterator": it.encode()}, nil
}

type getRecordsInput struct {
	ShardIterator string
	Limit         int
}

func (s *Streams) getRecords(in getRecordsInput) (any, error) {
	it, err := decodeIterator(in.ShardIterator)
	if err != nil {
		return nil, err
	}
	limit := in.Limit
	if limit <= 0 || limit > maxRecordsPerCall {
		limit = maxRecordsPerCall
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[it.Stream]
	var sh *shard
	if st != nil {
		sh = st.shardLocked(it.Shard)
	}
	if sh == nil {
		return nil, apiErr("ResourceNotFoundException", "Requested resource not found: the iterator's shard %s is gone", it.Shard)
	}
	now := s.opt.Now()
	if now.Sub(time.UnixMilli(it.Issued)) > iteratorLifetime {
		return nil, apiErr("ExpiredIteratorException", "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of 900000 milliseconds.",
			time.UnixMilli(it.Issued).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	s.trimLocked(sh)
	if it.From <= sh.trimmed {
		return nil, apiErr("TrimmedDataAccessException", "the iterator points at records past the retention")
	}
	i := sort.Search(len(sh.records), func(i int) bool { return sh.records[i].seq >= it.From })
	out := struct {
		Records           []*Record
		NextShardIterator string `json:",omitempty"`
	}{Records: []*Record{}}
	var size int64
	for ; i < len(sh.records) && len(out.Records) < limit; i++ {
		r := sh.records[i]
		if len(out.Records) > 0 && size+r.Dynamodb.SizeBytes > maxBytesPerCall {
			break
		}
		size += r.Dynamodb.SizeBytes
		out.Records = append(out.Records, r)
		it.From = r.seq + 1
	}
	// A closed shard read to its end has no next iterator: the reader is
	// done with it.
	if sh.end == 0 || it.From <= sh.end {
		it.Issued = now.UnixMilli()
		out.NextShardIterator = it.encode()
	}
	return out, nil
}
