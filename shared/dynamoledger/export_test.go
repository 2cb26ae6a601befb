package dynamoledger

// Test hooks. The shard size is unexported because production always uses
// the default; the tests set tiny shards to reach the protocol's shard steps
// with a few chunks.

// DefaultShardSize is the shard size of a Ledger no test has changed.
const DefaultShardSize = defaultShardSize

// SetShardSize makes l group chunks into shards of n (0: the default). Every
// ledger on one table must use the same size.
func SetShardSize(l *Ledger, n int) { l.shardSize = n }
