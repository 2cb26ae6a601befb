package dynamoledger

import (
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// The table's stream (NEW_AND_OLD_IMAGES) is how the assembler learns of
// uploads; this file is the one place that knows what its records look like.
// The event source mapping's filter (template.yaml) lets through an upload
// record that is ready, and an upload record removed:
//
//	{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"sk": {"S": ["META"]}, "status": {"S": ["ready"]}}}}
//	{"eventName": ["REMOVE"], "dynamodb": {"OldImage": {"sk": {"S": ["META"]}}}}

// Change is one stream record of an upload's record, as the assembler needs
// it.
type Change struct {
	Key        string
	Generation string
	State      upload.State
	// Removed: the record was deleted (by DynamoDB's TTL); Image is then
	// the whole record as it was, else the record as it is now.
	Removed bool
	Image   map[string]types.AttributeValue
}

// ReadChange reads a stream record of the ledger table. ok is false for
// records of other items (shards, identities) and records without an image.
func ReadChange(r events.DynamoDBEventRecord) (c Change, ok bool) {
	img := r.Change.NewImage
	if r.EventName == "REMOVE" {
		img, c.Removed = r.Change.OldImage, true
	}
	if len(img) == 0 {
		return Change{}, false
	}
	c.Image = FromStreamImage(img)
	if KindOf(c.Image) != KindRecord {
		return Change{}, false
	}
	c.Key, c.Generation = getS(c.Image, "key"), getS(c.Image, "gen")
	c.State = upload.State(getS(c.Image, "status"))
	return c, true
}

// ReadyImage is the new image of the stream record of upload key's record
// turning ready, with what the stream's filter and ReadChange read of it:
// its sort key, key and status. It is for stand-ins of the stream (bench,
// tests), which have the key but not the rest of the record.
func ReadyImage(key string) map[string]events.DynamoDBAttributeValue {
	return map[string]events.DynamoDBAttributeValue{
		"sk":     events.NewStringAttribute(metaSK),
		"key":    events.NewStringAttribute(key),
		"status": events.NewStringAttribute(string(upload.StateReady)),
	}
}

// FromStreamImage converts a stream image to the SDK's attribute values.
func FromStreamImage(img map[string]events.DynamoDBAttributeValue) map[string]types.AttributeValue {
	out := make(map[string]types.AttributeValue, len(img))
	for k, v := range img {
		if a := fromStream(v); a != nil {
			out[k] = a
		}
	}
	return out
}

func fromStream(v events.DynamoDBAttributeValue) types.AttributeValue {
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}
	case events.DataTypeNull:
		return &types.AttributeValueMemberNULL{Value: true}
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}
	case events.DataTypeList:
		l := make([]types.AttributeValue, 0, len(v.List()))
		for _, e := range v.List() {
			if a := fromStream(e); a != nil {
				l = append(l, a)
			}
		}
		return &types.AttributeValueMemberL{Value: l}
	case events.DataTypeMap:
		return &types.AttributeValueMemberM{Value: FromStreamImage(v.Map())}
	}
	return nil
}
