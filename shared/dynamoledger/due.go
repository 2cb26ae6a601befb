package dynamoledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// No upload may depend on one delivery of the stream: the event source
// mapping retries a failing record and then gives up on it. So every upload
// the pipeline owes work to (ready, assembling, complete but unpublished)
// carries dueAt: the time after which, if the work is still owed, nobody is
// doing it. It is set when the upload becomes ready (RedriveAfter later) and
// at every claim (the lease's end, or an earlier retry time), and removed
// once nothing is owed (published, or failed). A sparse index on it, DueIndex,
// holds only such uploads, so the re-drive (package redrive) finds them
// with one query, whatever the size of the table.
const (
	// DueIndex is the name of the table's global secondary index of owed
	// uploads: hash key duePart (always duePartition), range key dueAt
	// (unix ms), keys only.
	DueIndex     = "due"
	duePartition = "due"

	setDue    = "#duePart = :duePart, #dueAt = :dueAt"
	removeDue = "#duePart, #dueAt"
)

// Overdue returns the keys of uploads whose work is owed and due before
// now, oldest first, at most limit of them.
func (l *Ledger) Overdue(ctx context.Context, now time.Time, limit int) ([]string, error) {
	keys, err := l.dueIn(ctx, duePartition, now, limit)
	if err != nil {
		return nil, fmt.Errorf("dynamoledger: query owed uploads: %w", err)
	}
	return keys, nil
}

// dueIn queries the due index's partition part for the keys of the uploads
// due before now, oldest first, at most limit of them.
func (l *Ledger) dueIn(ctx context.Context, part string, now time.Time, limit int) ([]string, error) {
	const cond = "#duePart = :part AND #dueAt <= :now"
	in := &dynamodb.QueryInput{
		TableName: aws.String(l.Table), IndexName: aws.String(DueIndex),
		KeyConditionExpression:    aws.String(cond),
		ExpressionAttributeNames:  names(cond),
		ExpressionAttributeValues: values{":part": str(part), ":now": millis(now)},
		Limit:                     aws.Int32(int32(min(limit, 1000))),
	}
	var keys []string
	for len(keys) < limit {
		out, err := l.Client.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, it := range out.Items {
			if key, ok := strings.CutPrefix(getS(it, "pk"), uploadPK); ok && len(keys) < limit {
				keys = append(keys, key)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return keys, nil
}

// Restore puts back, as ready, a record that DynamoDB's TTL removed while
// work on it was still owed (ready, or assembling): its chunks are all
// there, so it is assembled, not lost. The new item is due at once and, as
// an insert of a ready record, passes the stream's filter again. It reports
// false, changing nothing, when another record has taken the key meanwhile
// (a new generation: the removed one's chunks are then garbage).
func (l *Ledger) Restore(ctx context.Context, old map[string]types.AttributeValue) (bool, error) {
	now := l.now()
	item := make(map[string]types.AttributeValue, len(old))
	for k, v := range old {
		item[k] = v
	}
	for _, k := range []string{"owner", "leaseUntil"} {
		delete(item, k)
	}
	item["status"] = str(string(upload.StateReady))
	item["updated"], item["expiresAt"] = millis(now), epoch(now.Add(l.doneTTL()))
	item["duePart"], item["dueAt"] = str(duePartition), millis(now)
	const cond = "attribute_not_exists(#pk)"
	err := l.put(ctx, item, cond, nil)
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dynamoledger: restore record: %w", err)
	}
	return true, nil
}
