package main

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// awsCounter counts the S3 and DynamoDB requests a process makes, through
// SDK middleware added to every client built from the aws.Config (see
// register), so the code under test runs unchanged.
//
//   - Requests are counted per HTTP attempt (retries included: each is
//     billed), by service and operation.
//   - DynamoDB capacity: every DynamoDB request is sent with
//     ReturnConsumedCapacity=TOTAL and the capacity the server reports is
//     added up. dynalite computes it by DynamoDB's rules: a write costs one
//     write request unit per started KB of the larger of the old and new
//     item, a strongly consistent read one read unit per started 4 KB. A
//     write refused by its condition returns no capacity but is billed on
//     DynamoDB all the same; it is counted as 1 WRU, which holds for items
//     up to 1 KB (every flowgate item is, but the record of an upload of
//     many thousands of chunks, whose set of full shards grows).
type awsCounter struct {
	mu sync.Mutex
	c  awsCounts
}

// awsCounts is a snapshot, and what the S3 server role reports as JSON.
type awsCounts struct {
	S3       map[string]int `json:"s3"`       // attempts per S3 operation
	DynamoDB map[string]int `json:"dynamodb"` // attempts per DynamoDB operation
	// WRU and RRU are the DynamoDB write and read request units consumed.
	WRU float64 `json:"wru"`
	RRU float64 `json:"rru"`
	// ConditionFailed counts writes refused by their condition (in WRU).
	ConditionFailed int `json:"conditionFailed"`
	// Micros has the round-trip time of every attempt, in microseconds,
	// by "S3 <operation>" or "DynamoDB <operation>".
	Micros map[string][]int64 `json:"micros"`
	// Invocations and BilledMs are, per function ("upload": each HTTP
	// request, as API Gateway hands each to an invocation; "assemble":
	// each stream batch), how many invocations it had and the sum of their
	// durations rounded up to the millisecond, as Lambda bills them.
	Invocations map[string]int     `json:"invocations"`
	BilledMs    map[string]float64 `json:"billedMs"`
}

// invocation records one invocation of fn that took d.
func (a *awsCounter) invocation(fn string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.c.Invocations[fn]++
	a.c.BilledMs[fn] += math.Ceil(float64(d) / float64(time.Millisecond))
}

// timed counts every request h serves as an invocation of fn.
func (a *awsCounter) timed(fn string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		h.ServeHTTP(w, r)
		a.invocation(fn, time.Since(began))
	})
}

func newAWSCounter() *awsCounter {
	a := &awsCounter{}
	a.reset()
	return a
}

// register is an aws.Config APIOptions entry.
func (a *awsCounter) register(st *middleware.Stack) error {
	err := st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("benchCountAttempts",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			began := time.Now()
			out, md, err := next.HandleDeserialize(ctx, in)
			a.attempt(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), time.Since(began))
			return out, md, err
		}), middleware.After)
	if err != nil {
		return err
	}
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("benchDynamoDBCapacity",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			askCapacity(in.Parameters)
			out, md, err := next.HandleInitialize(ctx, in)
			a.capacity(in.Parameters, out.Result, err)
			return out, md, err
		}), middleware.After)
}

func (a *awsCounter) attempt(service, op string, took time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch service {
	case "S3":
		a.c.S3[op]++
	case "DynamoDB":
		a.c.DynamoDB[op]++
	default:
		return
	}
	k := service + " " + op
	a.c.Micros[k] = append(a.c.Micros[k], took.Microseconds())
}

// askCapacity asks DynamoDB to report the capacity a request consumed. It
// changes nothing else about the request.
func askCapacity(params any) {
	total := ddbtypes.ReturnConsumedCapacityTotal
	switch in := params.(type) {
	case *dynamodb.PutItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.UpdateItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.DeleteItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.GetItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.BatchGetItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.BatchWriteItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.QueryInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.ScanInput:
		in.ReturnConsumedCapacity = total
	}
}

func (a *awsCounter) capacity(params, result any, err error) {
	units := func(c *ddbtypes.ConsumedCapacity) float64 {
		if c == nil || c.CapacityUnits == nil {
			return 0
		}
		return *c.CapacityUnits
	}
	sum := func(cs []ddbtypes.ConsumedCapacity) (u float64) {
		for i := range cs {
			u += units(&cs[i])
		}
		return u
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		var ccf *ddbtypes.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			switch params.(type) {
			case *dynamodb.PutItemInput, *dynamodb.UpdateItemInput, *dynamodb.DeleteItemInput:
				a.c.WRU++
				a.c.ConditionFailed++
			}
		}
		return
	}
	switch out := result.(type) {
	case *dynamodb.PutItemOutput:
		a.c.WRU += units(out.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		a.c.WRU += units(out.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		a.c.WRU += units(out.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		a.c.WRU += sum(out.ConsumedCapacity)
	case *dynamodb.GetItemOutput:
		a.c.RRU += units(out.ConsumedCapacity)
	case *dynamodb.BatchGetItemOutput:
		a.c.RRU += sum(out.ConsumedCapacity)
	case *dynamodb.QueryOutput:
		a.c.RRU += units(out.ConsumedCapacity)
	case *dynamodb.ScanOutput:
		a.c.RRU += units(out.ConsumedCapacity)
	}
}

// snapshot copies the counts.
func (a *awsCounter) snapshot() awsCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.c
	c.S3, c.DynamoDB = maps.Clone(c.S3), maps.Clone(c.DynamoDB)
	c.Micros = make(map[string][]int64, len(a.c.Micros))
	for k, v := range a.c.Micros {
		c.Micros[k] = slices.Clone(v)
	}
	return c
}

// reset zeroes the counts.
func (a *awsCounter) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.c = awsCounts{S3: map[string]int{}, DynamoDB: map[string]int{}, Micros: map[string][]int64{},
		Invocations: map[string]int{}, BilledMs: map[string]float64{}}
}

// AWS list prices, us-east-1, written down by hand (see pricing.go for
// where they are used and the report for the formula).
const (
	priceS3Tier1PerK = 0.005  // $ per 1,000 PUT, COPY, POST, LIST requests
	priceS3Tier2PerK = 0.0004 // $ per 1,000 GET (and HEAD, and all other) requests
	priceWRUPerM     = 0.625  // $ per million on-demand write request units
	priceRRUPerM     = 0.125  // $ per million on-demand read request units
	// API Gateway REST API, first 333 million requests a month.
	priceAPIGWPerM = 3.50 // $ per million requests
	// Lambda on arm64 (the template's architecture).
	priceLambdaPerM   = 0.20         // $ per million invocations
	priceLambdaPerGBs = 0.0000133334 // $ per GB-second
	priceRegion       = "us-east-1"
	// pricesAsOf is when these prices were copied from AWS's pricing pages.
	pricesAsOf = "the list prices of 2024–2025, written down on 2026-12-05"
)

// The functions' MemorySize in template.yaml (bench_test.go checks that they
// match), for their GB-seconds.
const (
	uploadMemoryMB   = 1024
	assembleMemoryMB = 1024
)

// s3Tier says how S3 bills an operation: 1 for the PUT/COPY/POST/LIST
// class, 2 for the GET class (GET, HEAD and everything else), 0 for free
// (DELETE and abort, "CANCEL"). DeleteObjects is a POST; it is counted in
// class 1 to be safe.
func s3Tier(op string) int {
	switch op {
	case "PutObject", "CopyObject", "UploadPart", "UploadPartCopy", "CreateMultipartUpload",
		"CompleteMultipartUpload", "ListObjectsV2", "ListObjects", "ListParts",
		"ListMultipartUploads", "ListBuckets", "DeleteObjects", "CreateBucket",
		"PutBucketLifecycleConfiguration":
		return 1
	case "DeleteObject", "AbortMultipartUpload", "DeleteBucket":
		return 0
	}
	return 2
}

// ddbWrite reports whether a DynamoDB operation is a write.
func ddbWrite(op string) bool {
	switch op {
	case "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem":
		return true
	}
	return false
}
