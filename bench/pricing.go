package main

import (
	"sort"
	"time"
)

// cost is what a scenario's requests would cost on AWS, per GiB of files.
type cost struct {
	S3Tier1, S3Tier2, S3Free  float64 // requests per GiB, by billing class
	DDBWrites, DDBReads       float64 // requests per GiB
	WRU, RRU                  float64 // request units per GiB
	APIRequests               float64 // API Gateway requests per GiB (the upload function's invocations)
	LambdaInvocations         float64 // both functions' invocations per GiB
	LambdaGBs                 float64 // both functions' GB-seconds per GiB, at their MemorySize
	S3Dollars, DDBDollars     float64 // $ per GiB
	APIDollars, LambdaDollars float64 // $ per GiB
	Total                     float64 // $ per GiB
}

// CostPerGiB turns the counted requests into dollars per GiB:
//
//	$/GiB = ( tier1 × 0.005/1,000 + tier2 × 0.0004/1,000     S3 Standard requests
//	        + WRU × 0.625/10^6 + RRU × 0.125/10^6            DynamoDB on-demand
//	        + API requests × 3.50/10^6                       API Gateway (REST API)
//	        + invocations × 0.20/10^6 + GB-s × 0.0000133334  Lambda (arm64)
//	        ) / (file bytes / 2^30)
//
// with the us-east-1 list prices written down in awscount.go. The upload
// function's invocations are the HTTP requests its handler served, and
// their GB-seconds the measured durations (each rounded up to the
// millisecond) at the template's MemorySize; the assembler's, each stream
// batch. Storage and transfer are not included.
func (r *Result) CostPerGiB() cost {
	var c cost
	if r.Counts == nil || r.Bytes() == 0 {
		return c
	}
	gibs := float64(r.Bytes()) / float64(gib)
	for op, n := range r.Counts.S3 {
		switch s3Tier(op) {
		case 1:
			c.S3Tier1 += float64(n)
		case 2:
			c.S3Tier2 += float64(n)
		default:
			c.S3Free += float64(n)
		}
	}
	for op, n := range r.Counts.DynamoDB {
		if ddbWrite(op) {
			c.DDBWrites += float64(n)
		} else {
			c.DDBReads += float64(n)
		}
	}
	c.WRU, c.RRU = r.Counts.WRU, r.Counts.RRU
	c.APIRequests = float64(r.Counts.Invocations["upload"])
	c.LambdaInvocations = float64(r.Counts.Invocations["upload"] + r.Counts.Invocations["assemble"])
	c.LambdaGBs = r.Counts.BilledMs["upload"]/1000*uploadMemoryMB/1024 + r.Counts.BilledMs["assemble"]/1000*assembleMemoryMB/1024
	c.S3Dollars = c.S3Tier1*priceS3Tier1PerK/1000 + c.S3Tier2*priceS3Tier2PerK/1000
	c.DDBDollars = c.WRU*priceWRUPerM/1e6 + c.RRU*priceRRUPerM/1e6
	c.APIDollars = c.APIRequests * priceAPIGWPerM / 1e6
	c.LambdaDollars = c.LambdaInvocations*priceLambdaPerM/1e6 + c.LambdaGBs*priceLambdaPerGBs
	for _, p := range []*float64{&c.S3Tier1, &c.S3Tier2, &c.S3Free, &c.DDBWrites, &c.DDBReads, &c.WRU, &c.RRU,
		&c.APIRequests, &c.LambdaInvocations, &c.LambdaGBs, &c.S3Dollars, &c.DDBDollars, &c.APIDollars, &c.LambdaDollars} {
		*p /= gibs
	}
	c.Total = c.S3Dollars + c.DDBDollars + c.APIDollars + c.LambdaDollars
	return c
}

// WRUPerChunk is DynamoDB write request units per chunk of the files,
// everything included (counting, claiming, completing, publishing).
func (r *Result) WRUPerChunk() float64 {
	if r.Counts == nil || r.Chunks() == 0 {
		return 0
	}
	return r.Counts.WRU / float64(r.Chunks())
}

// opsPerChunk lists the operations of a service with their counts per
// chunk and median round trip, most frequent first.
func opsPerChunk(c *awsCounts, service string, ops map[string]int, chunks int) []opCount {
	var out []opCount
	for op, n := range ops {
		var ds []time.Duration
		for _, us := range c.Micros[service+" "+op] {
			ds = append(ds, time.Duration(us)*time.Microsecond)
		}
		out = append(out, opCount{op, float64(n) / float64(chunks), percentile(ds, 50)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PerChunk != out[j].PerChunk {
			return out[i].PerChunk > out[j].PerChunk
		}
		return out[i].Op < out[j].Op
	})
	return out
}

type opCount struct {
	Op       string
	PerChunk float64
	P50      time.Duration
}
