package dynamoledger

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The table's item keys, and how an upload's chunks are grouped into shard
// items.

// Item key values.
const (
	metaSK   = "META"
	identSK  = "ID"
	uploadPK = "U#"
	identPK  = "I#"
	shardSK  = "S#"
)

// Kind is which of the ledger's items a key names.
type Kind string

// The kinds of item in the table (see the package doc).
const (
	KindRecord   Kind = "record"   // an upload's record, META
	KindShard    Kind = "shard"    // a shard of an upload's counted chunks
	KindIdentity Kind = "identity" // the claim of an identifier in a namespace
)

// KindOf tells which of the ledger's items an item, or its key, is by its
// sort key: "" if none of them. Code outside the package that needs to tell
// the items apart (fault injection, stand-ins of the stream) asks it rather
// than knowing the key values.
func KindOf(item map[string]types.AttributeValue) Kind {
	sk, _ := item["sk"].(*types.AttributeValueMemberS)
	switch {
	case sk == nil:
		return ""
	case sk.Value == metaSK:
		return KindRecord
	case sk.Value == identSK:
		return KindIdentity
	case strings.HasPrefix(sk.Value, shardSK):
		return KindShard
	}
	return ""
}

// defaultShardSize is how many chunks one shard item holds. 128 chunk
// numbers of up to 6 digits take 4 bytes each, so a shard item stays well
// under 1 KB and every write to it costs one write unit (DynamoDB bills a
// write per started KB of the larger of the item before and after).
const defaultShardSize = 128

// chunksPerShard is the ledger's shard size: defaultShardSize unless a test
// set another.
func (l *Ledger) chunksPerShard() int {
	if l.shardSize > 0 {
		return l.shardSize
	}
	return defaultShardSize
}

// shardOf is the shard chunk n belongs to.
func (l *Ledger) shardOf(n int) int { return (n - 1) / l.chunksPerShard() }

// shardCount is how many shards an upload of total chunks has.
func (l *Ledger) shardCount(total int) int {
	size := l.chunksPerShard()
	return (total + size - 1) / size
}

// shardLen is how many chunks shard k of an upload of total chunks holds.
func (l *Ledger) shardLen(k, total int) int {
	size := l.chunksPerShard()
	return min(size, total-k*size)
}

func metaKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(uploadPK + key), "sk": str(metaSK)}
}

func shardKey(key string, k int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(uploadPK + key), "sk": str(fmt.Sprintf("%s%06d", shardSK, k))}
}

func identKey(identity string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(identPK + identity), "sk": str(identSK)}
}
