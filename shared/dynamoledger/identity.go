package dynamoledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/flowgate/flowgate/shared/upload"
)

// claimIdentity points the identity item at this upload, unless another
// upload still receiving holds it (ErrConflict). It is a compare-and-swap,
// so two uploads that start together under one identifier cannot both win.
// known, if set, is the holder as Lookup just read it, saving the first read
// (if it has changed since, the swap fails and the holder is read again).
func (l *Ledger) claimIdentity(ctx context.Context, info upload.Info, known *string) error {
	identity := upload.IdentityKey(info.Namespace, info.Identifier)
	for range 4 {
		var holder string
		var err error
		if known != nil {
			holder, known = *known, nil
		} else if holder, err = l.identityHolder(ctx, identity); err != nil {
			return err
		}
		if holder == info.Key {
			return nil
		}
		if holder != "" {
			busy, err := l.receiving(ctx, holder)
			if err != nil {
				return err
			}
			if busy {
				return fmt.Errorf("dynamoledger: %w", upload.ErrConflict)
			}
		}
		item := identKey(identity)
		item["uploadKey"], item["expiresAt"] = str(info.Key), epoch(l.now().Add(l.chunkTTL()))
		cond, vals := "attribute_not_exists(#pk)", values(nil)
		if holder != "" {
			cond, vals = "#uploadKey = :holder", values{":holder": str(holder)}
		}
		_, err = l.Client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(l.Table), Item: item,
			ConditionExpression: aws.String(cond), ExpressionAttributeNames: names(cond),
			ExpressionAttributeValues: vals,
		})
		if err == nil {
			return nil
		}
		if !isConditionFailed(err) {
			return fmt.Errorf("dynamoledger: claim identifier: %w", err)
		}
	}
	return errors.New("dynamoledger: identifier contended; retry")
}

// checkHolder is claimIdentity's read-only half, for Lookup: holder, the
// upload the identity item points at, must be this one, none, or one no
// longer receiving.
func (l *Ledger) checkHolder(ctx context.Context, info upload.Info, holder string) error {
	if holder == "" || holder == info.Key {
		return nil
	}
	busy, err := l.receiving(ctx, holder)
	if err == nil && busy {
		err = fmt.Errorf("dynamoledger: %w", upload.ErrConflict)
	}
	return err
}

func (l *Ledger) identityHolder(ctx context.Context, identity string) (string, error) {
	out, err := l.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: identKey(identity), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("dynamoledger: read identity: %w", err)
	}
	return getS(out.Item, "uploadKey"), nil
}

// receiving reports whether the upload is still taking chunks. A record past
// its expiry time counts as gone even before DynamoDB's TTL removes it
// (which may take days).
func (l *Ledger) receiving(ctx context.Context, key string) (bool, error) {
	meta, err := l.getMeta(ctx, key)
	if err != nil || meta == nil {
		return false, err
	}
	return upload.State(getS(meta, "status")) == upload.StateReceiving &&
		getN(meta, "expiresAt") > l.now().Unix(), nil
}
