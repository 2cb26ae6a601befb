package dynamoledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// The identity item names the upload that last claimed an identifier in a
// namespace: at most one upload still receiving may hold it (another
// geometry under the same identifier gets ErrConflict). Every claim writes a
// new random token, and every claim is a compare-and-swap on the token it
// read, so that of two claims made from the same reading only one succeeds,
// even when both are for the same upload (a new generation of it).
//
// Between a claim and the creation of the record it is for there is a
// moment when the holder has no record; a holder without a record is
// therefore taken as busy for claimGrace after its claim, or a second upload
// could take the identifier in that moment and both would be receiving.

// claimGrace is how long a claim holds without a record behind it: far
// longer than the step from claiming to creating the record takes.
const claimGrace = 2 * time.Minute

// identity is the identity item as read: its holder and its claim.
type identity struct {
	holder    string
	claim     string
	claimedAt time.Time
}

func readIdentity(item map[string]types.AttributeValue) *identity {
	return &identity{
		holder: getS(item, "uploadKey"), claim: getS(item, "claim"),
		claimedAt: time.UnixMilli(getN(item, "claimedAt")),
	}
}

func (l *Ledger) readIdentity(ctx context.Context, key string) (*identity, error) {
	out, err := l.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: identKey(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamoledger: read identity: %w", err)
	}
	return readIdentity(out.Item), nil
}

// claimIdentity points the identity item at this upload, unless another
// upload still receiving holds it (ErrConflict). It reads the item and swaps
// it on what it read; a swap that loses to another claim reads it again.
func (l *Ledger) claimIdentity(ctx context.Context, info upload.Info) error {
	key := upload.IdentityKey(info.Namespace, info.Identifier)
	for range 8 {
		cur, err := l.readIdentity(ctx, key)
		if err != nil {
			return err
		}
		now := l.now()
		if cur.holder == info.Key && now.Before(cur.claimedAt.Add(claimGrace/2)) {
			// Claimed for this upload moments ago (by a concurrent request
			// of it): no other upload can take the identifier before the
			// grace runs out, long after this request created the record.
			return nil
		}
		if err := l.checkHolder(ctx, info, *cur); err != nil {
			return err
		}
		item := identKey(key)
		item["uploadKey"], item["claim"] = str(info.Key), str(newGeneration())
		item["claimedAt"], item["expiresAt"] = millis(now), epoch(now.Add(l.chunkTTL()))
		cond, vals := "attribute_not_exists(#pk)", values(nil)
		switch {
		case cur.holder != "" && cur.claim != "":
			cond, vals = "#uploadKey = :holder AND #claim = :claim", values{":holder": str(cur.holder), ":claim": str(cur.claim)}
		case cur.holder != "": // written before claims had tokens
			cond, vals = "#uploadKey = :holder AND attribute_not_exists(#claim)", values{":holder": str(cur.holder)}
		}
		err = l.put(ctx, item, cond, vals)
		if err == nil {
			return nil
		}
		if !isConditionFailed(err) {
			return fmt.Errorf("dynamoledger: claim identifier: %w", err)
		}
	}
	return errors.New("dynamoledger: identifier contended; retry")
}

// checkHolder is claimIdentity's read-only half, for Lookup too: the upload
// the identity item points at must be this one, none, or one that is not
// receiving (see the file's doc for a holder without a record).
func (l *Ledger) checkHolder(ctx context.Context, info upload.Info, id identity) error {
	if id.holder == "" || id.holder == info.Key {
		return nil
	}
	meta, err := l.getMeta(ctx, id.holder)
	if err != nil {
		return err
	}
	busy := l.now().Before(id.claimedAt.Add(claimGrace))
	if meta != nil {
		busy = upload.State(getS(meta, "status")) == upload.StateReceiving && !l.dead(meta)
	}
	if busy {
		return fmt.Errorf("dynamoledger: %w", upload.ErrConflict)
	}
	return nil
}
