// Package esm emulates Lambda's event source mapping for a DynamoDB stream:
// it reads the stream's shards through the DynamoDB Streams API (the SDK's
// dynamodbstreams client, against package ddbstream's endpoint) and invokes
// a function with batches of records exactly as Lambda does, failures,
// retries and duplicates included, so that the dev stack feeds the
// assembler as AWS feeds it. The function is a Go func taking the raw JSON
// event and returning the raw response or an error: an in-process handler,
// or a Lambda bootstrap under the Runtime Interface Emulator.
//
// The settings come from template.yaml (LoadTemplate reads a function's
// DynamoDB event: BatchSize, MaximumBatchingWindowInSeconds,
// StartingPosition, ParallelizationFactor, MaximumRetryAttempts,
// MaximumRecordAgeInSeconds, BisectBatchOnFunctionError,
// FunctionResponseTypes, FilterCriteria, the destination and the function's
// Timeout); Options override any of them. What is emulated, and how, after
// AWS's documentation of DynamoDB event source mappings, their error
// handling and partial batch responses:
//
//   - Filters (FilterCriteria, MatchPattern): a record is matched, as the
//     JSON the function would get, against each pattern; one that matches
//     none is dropped before batching, counts as processed and is never
//     retried. No filters: every record goes.
//   - Reading: each shard is polled (PollInterval, 250 ms as Lambda's four
//     polls a second) from StartingPosition (TRIM_HORIZON or LATEST). An
//     expired iterator is renewed after the last record read; records
//     trimmed unread (past the stream's 24 h retention) are skipped, as on
//     AWS, with a warning. New shards are discovered every 10 s.
//   - Batching: a batch is at most BatchSize records and at most the 6 MB
//     payload; records one GetRecords returned arrive together; without a
//     window a batch goes as soon as there are records, with
//     MaximumBatchingWindow a batch that is not full waits until the window
//     (by the mapping's clock) has passed since its oldest record arrived.
//   - ParallelizationFactor: a shard's records are spread over that many
//     lanes by a hash of the partition key; each lane invokes one batch at a
//     time, in order, and moves on only when the batch was taken or given
//     up, so one item's records are always delivered in order while up to
//     ParallelizationFactor batches of a shard run at once.
//   - Function errors: the batch failed. With BisectBatchOnFunctionError a
//     batch of two or more records is split into halves, delivered one after
//     the other; the split does not count as a retry (each half inherits the
//     retries already spent). Otherwise the batch is retried after a backoff
//     (RetryBackoff doubling up to MaxRetryBackoff: 1 s to 1 min by
//     default, milliseconds in tests), each retry counting toward
//     MaximumRetryAttempts (-1: no limit).
//   - Partial batch responses (FunctionResponseTypes ReportBatchItemFailures
//     only; otherwise the response is ignored): no or an empty
//     batchItemFailures is a success; failures checkpoint before the lowest
//     failed sequence number: the records before it are taken, the rest is
//     retried from it, counted as a retry. An empty, null or unknown
//     itemIdentifier fails the whole batch, as a function error does
//     (bisecting it if so configured).
//   - Errors wrapping ErrNotInvoked (the function was never reached:
//     throttled, not started) are retried without counting, until the
//     records are too old.
//   - Record age: before every invocation, records older than
//     MaximumRecordAge (by their ApproximateCreationDateTime and the
//     mapping's clock) are given up, condition RecordAgeExceeded.
//   - Giving up (retries exhausted or records too old): the on-failure
//     destination gets AWS's message, a FailureMessage (requestContext with
//     condition and approximateInvokeCount, responseContext of the last
//     invocation, version, timestamp, DDBStreamBatchInfo with shardId,
//     start and end sequence numbers, arrival times, batchSize and
//     streamArn) before the mapping moves past the records; a destination
//     that refuses is retried. Without a destination the records are
//     dropped. The records stay in the stream until its retention ends, for
//     whoever reads the message to fetch them.
//   - Function timeout: an invocation runs with a context that ends after
//     the function's Timeout; one that runs past it is a function error.
//   - At least once: with DuplicateProbability, a batch the function took
//     is sometimes delivered again: one of its lane's last three batches,
//     so a duplicate may come after newer records of the same items, as
//     when Lambda loses a checkpoint and replays.
//
// Not emulated: tumbling windows (LoadTemplate refuses them), shard splits
// (the stream's shards are fixed), checkpoints that outlive the process (a
// mapping starts at StartingPosition), and the 6 MB limit on the response.
// Stats count what a mapping did, so that tests wait for a state rather
// than for time.
package esm
