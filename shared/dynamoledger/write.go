package dynamoledger

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The one shape of the ledger's writes: every one is a single-item write on
// a condition, with its attribute names taken from its expressions (see
// names). The errors are the SDK's as they come, so that callers tell a
// refused condition (isConditionFailed) from a failure, and word the latter.

// update applies the update expression upd to the item at key if cond holds.
func (l *Ledger) update(ctx context.Context, key map[string]types.AttributeValue, upd, cond string, vals values) error {
	_, err := l.updateReturning(ctx, key, upd, cond, vals, "")
	return err
}

// updateReturning is update, returning the item's attributes that ret
// names (types.ReturnValueUpdatedNew, types.ReturnValueAllNew).
func (l *Ledger) updateReturning(ctx context.Context, key map[string]types.AttributeValue, upd, cond string, vals values, ret types.ReturnValue) (map[string]types.AttributeValue, error) {
	out, err := l.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(l.Table), Key: key,
		UpdateExpression:          aws.String(upd),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names(upd, cond),
		ExpressionAttributeValues: vals,
		ReturnValues:              ret,
	})
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// put writes item, whole, if cond holds; vals may be nil.
func (l *Ledger) put(ctx context.Context, item map[string]types.AttributeValue, cond string, vals values) error {
	_, err := l.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.Table), Item: item,
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names(cond),
		ExpressionAttributeValues: vals,
	})
	return err
}
