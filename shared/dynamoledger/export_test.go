package dynamoledger

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Test hooks. The shard size is unexported because production always uses
// the default; the tests set tiny shards to reach the protocol's shard steps
// with a few chunks.

// DefaultShardSize is the shard size of a Ledger no test has changed.
const DefaultShardSize = defaultShardSize

// SetShardSize makes l group chunks into shards of n (0: the default). Every
// ledger on one table must use the same size.
func SetShardSize(l *Ledger, n int) { l.shardSize = n }

// RecordKey is the key of upload key's record item, for tests that read the
// item as it is stored.
func RecordKey(key string) map[string]types.AttributeValue { return metaKey(key) }

// RemoveExpired deletes the upload's record as DynamoDB's TTL deletes an
// expired one, if it was not updated since before (nor within the time a
// record is kept at least, see idleCut), and reports whether it did. Its
// shard items stay until their own TTL. It also drops l's cached
// generation, as a new instance would not have it.
func RemoveExpired(ctx context.Context, l *Ledger, key string, before time.Time) (bool, error) {
	const cond = "#updated < :before"
	_, err := l.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(l.Table), Key: metaKey(key),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: names(cond),
		ExpressionAttributeValues: values{":before": millis(l.idleCut(before))},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.gens.forget(key)
	return true, nil
}

// idleCut moves before back to at least min(IdleTTL, DoneTTL) ago: like
// TTL, RemoveExpired never removes a record updated more recently, which is
// what lets Count trust a young generation cache entry (see the package
// doc).
func (l *Ledger) idleCut(before time.Time) time.Time {
	if latest := l.now().Add(-l.keepFor()); latest.Before(before) {
		return latest
	}
	return before
}
