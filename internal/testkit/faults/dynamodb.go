package faults

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/dynamoledger"
)

// DynamoDB wraps a dynamoledger.API. Steps name the ledger's protocol step
// the call belongs to (see dynamoledger's package doc):
//
//	ddb.BatchGetItem:lookup   ddb.GetItem:META  ddb.GetItem:ID
//	ddb.PutItem:ID  ddb.PutItem:META  ddb.PutItem:shard-replace
//	ddb.UpdateItem:touch  ddb.UpdateItem:shard  ddb.UpdateItem:full  ddb.UpdateItem:ready
//	ddb.UpdateItem:claim  ddb.UpdateItem:complete  ddb.UpdateItem:fail
//	ddb.UpdateItem:published  ddb.Scan  ddb.DeleteItem
type DynamoDB struct {
	dynamoledger.API
	In *Injector
}

type ddbopt = func(*dynamodb.Options)

// itemKind names the ledger's item a call is about, by its key or item, as
// the steps above do.
func itemKind(m map[string]types.AttributeValue) string {
	switch dynamoledger.KindOf(m) {
	case dynamoledger.KindRecord:
		return "META"
	case dynamoledger.KindIdentity:
		return "ID"
	case dynamoledger.KindShard:
		return "shard"
	}
	return "?"
}

// updateStep recognizes the ledger's updates by their expressions. The
// touch sets only what the others set too, so it comes last.
func updateStep(expr string) string {
	for _, s := range []struct{ frag, step string }{
		{"ADD #chunks", "shard"},
		{"#status = :ready", "ready"}, // also registers the shard when it is the only one
		{"ADD #full", "full"},
		{"#status = :assembling", "claim"},
		{"#status = :complete", "complete"},
		{"#status = :failed", "fail"},
		{"#published = :true", "published"},
		{"#updated = :now", "touch"},
	} {
		if strings.Contains(expr, s.frag) {
			return s.step
		}
	}
	return "?"
}

func (c DynamoDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...ddbopt) (*dynamodb.GetItemOutput, error) {
	return call(c.In, ctx, "ddb.GetItem:"+itemKind(in.Key), func() (*dynamodb.GetItemOutput, error) { return c.API.GetItem(ctx, in, o...) })
}

func (c DynamoDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...ddbopt) (*dynamodb.BatchGetItemOutput, error) {
	return call(c.In, ctx, "ddb.BatchGetItem:lookup", func() (*dynamodb.BatchGetItemOutput, error) { return c.API.BatchGetItem(ctx, in, o...) })
}

func (c DynamoDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...ddbopt) (*dynamodb.PutItemOutput, error) {
	kind := itemKind(in.Item)
	if kind == "shard" {
		kind = "shard-replace" // the ledger puts a shard only to replace an older generation's
	}
	return call(c.In, ctx, "ddb.PutItem:"+kind, func() (*dynamodb.PutItemOutput, error) { return c.API.PutItem(ctx, in, o...) })
}

func (c DynamoDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...ddbopt) (*dynamodb.UpdateItemOutput, error) {
	expr := ""
	if in.UpdateExpression != nil {
		expr = *in.UpdateExpression
	}
	return call(c.In, ctx, "ddb.UpdateItem:"+updateStep(expr), func() (*dynamodb.UpdateItemOutput, error) { return c.API.UpdateItem(ctx, in, o...) })
}

func (c DynamoDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...ddbopt) (*dynamodb.DeleteItemOutput, error) {
	return call(c.In, ctx, "ddb.DeleteItem", func() (*dynamodb.DeleteItemOutput, error) { return c.API.DeleteItem(ctx, in, o...) })
}

func (c DynamoDB) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...ddbopt) (*dynamodb.ScanOutput, error) {
	return call(c.In, ctx, "ddb.Scan", func() (*dynamodb.ScanOutput, error) { return c.API.Scan(ctx, in, o...) })
}
