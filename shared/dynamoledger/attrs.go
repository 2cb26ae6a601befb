package dynamoledger

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Small helpers of every file: the clock and the TTL defaults, new
// generations, and DynamoDB attribute values and expression names.

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Ledger) idleTTL() time.Duration  { return orDefault(l.IdleTTL, DefaultIdleTTL) }
func (l *Ledger) doneTTL() time.Duration  { return orDefault(l.DoneTTL, DefaultDoneTTL) }
func (l *Ledger) chunkTTL() time.Duration { return orDefault(l.ChunkTTL, DefaultChunkTTL) }
func (l *Ledger) redriveAfter() time.Duration {
	return orDefault(l.RedriveAfter, DefaultRedriveAfter)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func newGeneration() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Attribute value helpers.

type values = map[string]types.AttributeValue

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func boolean(b bool) types.AttributeValue     { return &types.AttributeValueMemberBOOL{Value: b} }
func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }
func numSet(n int64) types.AttributeValue {
	return &types.AttributeValueMemberNS{Value: []string{strconv.FormatInt(n, 10)}}
}
func epoch(t time.Time) types.AttributeValue { return num(t.Unix()) }

func getS(m map[string]types.AttributeValue, k string) string {
	if v, ok := m[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(m map[string]types.AttributeValue, k string) int64 {
	if v, ok := m[k].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// getNS returns a number set's members; a set that has none is absent.
func getNS(m map[string]types.AttributeValue, k string) []int64 {
	v, ok := m[k].(*types.AttributeValueMemberNS)
	if !ok {
		return nil
	}
	ns := make([]int64, len(v.Value))
	for i, s := range v.Value {
		ns[i], _ = strconv.ParseInt(s, 10, 64)
	}
	return ns
}

func getBool(m map[string]types.AttributeValue, k string) bool {
	v, ok := m[k].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

// names maps every #name in the expressions to the attribute of that name.
// Writing every attribute as #name sidesteps DynamoDB's long list of reserved
// words (status, key, size, name, owner ...), and deriving the map from the
// expressions keeps it exact: DynamoDB rejects unused names.
func names(exprs ...string) map[string]string {
	m := map[string]string{}
	for _, e := range exprs {
		for _, match := range nameRE.FindAllStringSubmatch(e, -1) {
			m["#"+match[1]] = match[1]
		}
	}
	return m
}

var nameRE = regexp.MustCompile(`#([A-Za-z][A-Za-z0-9]*)`)

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
