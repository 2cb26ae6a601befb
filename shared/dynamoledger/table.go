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

// The table the ledger needs, and its creation for tests and `make dev`.

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

var _ upload.Ledger = (*Ledger)(nil)
