package dynamoledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/flowgate/flowgate/shared/upload"
)

// TTLAttribute is the table's time-to-live attribute (unix seconds).
const TTLAttribute = "expiresAt"

// TableSchema is the table the ledger needs, with the stream of
// NEW_AND_OLD_IMAGES the assembler reads. template.yaml declares the same
// for AWS, where it also turns on TTL (TTLAttribute; CreateTable does that
// here). dynalite ignores the stream; the dev stack's DynamoDB front
// (internal/devstack/ddbfront) emulates it.
func TableSchema(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("duePart"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("dueAt"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		// The re-drive's index of owed uploads (see due.go).
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(DueIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("duePart"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("dueAt"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
		BillingMode: types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{
			StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
	}
}

// TableAdmin is what CreateTable needs of the client.
type TableAdmin interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates the ledger's table if it does not exist and waits
// until it is active; for tests and `make dev` (on AWS the SAM template owns
// the table). It turns TTL on where the server supports it (dynalite does not).
func CreateTable(ctx context.Context, c TableAdmin, name string) error {
	_, err := c.CreateTable(ctx, TableSchema(name))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("dynamoledger: create table %s: %w", name, err)
	}
	for range 300 {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynamoledger: describe table %s: %w", name, err)
		}
		if out.Table.TableStatus == types.TableStatusActive {
			_, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName: aws.String(name),
				TimeToLiveSpecification: &types.TimeToLiveSpecification{
					AttributeName: aws.String(TTLAttribute), Enabled: aws.Bool(true),
				},
			})
			var ae smithy.APIError
			if err != nil && errors.As(err, &ae) && ae.ErrorCode() != "UnknownOperationException" &&
				ae.ErrorCode() != "ValidationException" { // already on, or not implemented
				return fmt.Errorf("dynamoledger: enable TTL on %s: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("dynamoledger: table %s did not become active", name)
}

// The Scanner capability, for a deployment without streams or TTL (`make
// dev` against dynalite). Each call scans the table: fine locally, not meant
// for AWS, where the stream and TTL do these jobs.

// Pending lists uploads the pipeline still owes work: ready, assembling,
// or complete but unpublished.
func (l *Ledger) Pending(ctx context.Context) ([]upload.Record, error) {
	const filter = "#sk = :meta AND (#status IN (:ready, :assembling) OR (#status = :complete AND (attribute_not_exists(#published) OR #published = :false)))"
	return l.scan(ctx, filter, values{
		":meta": str(metaSK), ":ready": str(string(upload.StateReady)),
		":assembling": str(string(upload.StateAssembling)), ":complete": str(string(upload.StateComplete)),
		":false": boolean(false),
	})
}

// Idle lists uploads not updated since before, nor within the time a
// record is kept at least (see idleCut).
func (l *Ledger) Idle(ctx context.Context, before time.Time) ([]upload.Record, error) {
	const filter = "#sk = :meta AND #updated < :before"
	return l.scan(ctx, filter, values{":meta": str(metaSK), ":before": millis(l.idleCut(before))})
}

// Forget deletes the record if it was still not updated since before, nor
// within the time a record is kept at least (see idleCut). Its shard items
// stay until their TTL; a new record gets a new generation and ignores them.
func (l *Ledger) Forget(ctx context.Context, key string, before time.Time) (bool, error) {
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
		return false, fmt.Errorf("dynamoledger: forget: %w", err)
	}
	l.gens.forget(key)
	return true, nil
}

// idleCut moves before back to at least min(IdleTTL, DoneTTL) ago: like
// TTL, Forget never removes a record updated more recently, which is what
// lets Count trust a young generation cache entry (see the package doc).
func (l *Ledger) idleCut(before time.Time) time.Time {
	if latest := l.now().Add(-l.keepFor()); latest.Before(before) {
		return latest
	}
	return before
}

func (l *Ledger) scan(ctx context.Context, filter string, vals values) ([]upload.Record, error) {
	in := &dynamodb.ScanInput{
		TableName: aws.String(l.Table), FilterExpression: aws.String(filter),
		ExpressionAttributeNames: names(filter), ExpressionAttributeValues: vals,
		ConsistentRead: aws.Bool(true),
	}
	var recs []upload.Record
	for range 100_000 {
		out, err := l.Client.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("dynamoledger: scan: %w", err)
		}
		for _, it := range out.Items {
			recs = append(recs, toRecord(it))
		}
		if len(out.LastEvaluatedKey) == 0 {
			return recs, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return nil, errors.New("dynamoledger: scan did not end")
}

var (
	_ upload.Ledger  = (*Ledger)(nil)
	_ upload.Scanner = (*Ledger)(nil)
)
