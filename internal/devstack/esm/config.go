package esm

import (
	"fmt"
	"time"
)

// Config is an event source mapping's settings, named as in
// AWS::Lambda::EventSourceMapping (and a SAM DynamoDB event). Defaults() is
// what Lambda takes for a setting left out.
type Config struct {
	// FunctionName names the function in the on-failure message's
	// functionArn (the template's logical ID will do).
	FunctionName string
	// BatchSize is the most records per invocation (1 to 10,000).
	BatchSize int
	// MaximumBatchingWindow is how long records are gathered before an
	// invocation that is not full (0 to 5 minutes).
	MaximumBatchingWindow time.Duration
	// StartingPosition is TRIM_HORIZON or LATEST.
	StartingPosition string
	// ParallelizationFactor is how many batches of one shard run at once
	// (1 to 10), records of one partition key always in order.
	ParallelizationFactor int
	// MaximumRetryAttempts is how often a failed batch is retried before
	// it is given up; -1 means until its records expire.
	MaximumRetryAttempts int
	// MaximumRecordAge: older records are given up without an
	// invocation; negative means no limit but the stream's retention.
	MaximumRecordAge time.Duration
	// BisectBatchOnFunctionError splits a failed batch in two before
	// retrying.
	BisectBatchOnFunctionError bool
	// ReportBatchItemFailures: FunctionResponseTypes has
	// ReportBatchItemFailures, so the function's batchItemFailures count.
	ReportBatchItemFailures bool
	// Filters: a record matching none is dropped (never retried); none
	// means every record goes to the function.
	Filters []Pattern
	// FunctionTimeout bounds an invocation (the function's Timeout); 0
	// means none.
	FunctionTimeout time.Duration
	// HasOnFailure: the template names an on-failure destination.
	HasOnFailure bool
}

// Defaults is Lambda's configuration for a DynamoDB event source mapping
// with nothing set but the starting position.
func Defaults() Config {
	return Config{
		BatchSize:             100,
		StartingPosition:      "TRIM_HORIZON",
		ParallelizationFactor: 1,
		MaximumRetryAttempts:  -1,
		MaximumRecordAge:      -1,
		FunctionTimeout:       3 * time.Second,
	}
}

// Validate checks the settings against Lambda's bounds.
func (c Config) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("esm: BatchSize %d: 1 to 10000", c.BatchSize)
	case c.MaximumBatchingWindow < 0 || c.MaximumBatchingWindow > 5*time.Minute:
		return fmt.Errorf("esm: MaximumBatchingWindow %v: 0 to 300 s", c.MaximumBatchingWindow)
	case c.StartingPosition != "TRIM_HORIZON" && c.StartingPosition != "LATEST":
		return fmt.Errorf("esm: StartingPosition %q: TRIM_HORIZON or LATEST", c.StartingPosition)
	case c.ParallelizationFactor < 1 || c.ParallelizationFactor > 10:
		return fmt.Errorf("esm: ParallelizationFactor %d: 1 to 10", c.ParallelizationFactor)
	case c.MaximumRetryAttempts < -1 || c.MaximumRetryAttempts > 10000:
		return fmt.Errorf("esm: MaximumRetryAttempts %d: -1 to 10000", c.MaximumRetryAttempts)
	case c.MaximumRecordAge > 7*24*time.Hour:
		return fmt.Errorf("esm: MaximumRecordAge %v: at most 7 days", c.MaximumRecordAge)
	}
	return nil
}
