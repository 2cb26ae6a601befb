package ddbstream

import "time"

// Record is a stream record as the DynamoDB Streams API returns it
// (GetRecords). Lambda's event record (aws-lambda-go's
// events.DynamoDBEventRecord) is the same plus eventSourceARN, with
// userIdentity's fields in lower camel case.
type Record struct {
	EventID      string       `json:"eventID"`
	EventName    string       `json:"eventName"`
	EventVersion string       `json:"eventVersion"`
	EventSource  string       `json:"eventSource"`
	AWSRegion    string       `json:"awsRegion"`
	Dynamodb     StreamRecord `json:"dynamodb"`
	UserIdentity *Identity    `json:"userIdentity,omitempty"`

	seq     uint64
	created time.Time
}

// StreamRecord is a record's "dynamodb" part.
type StreamRecord struct {
	ApproximateCreationDateTime int64  `json:"ApproximateCreationDateTime"` // unix seconds
	Keys                        Item   `json:"Keys"`
	NewImage                    Item   `json:"NewImage,omitempty"`
	OldImage                    Item   `json:"OldImage,omitempty"`
	SequenceNumber              string `json:"SequenceNumber"`
	SizeBytes                   int64  `json:"SizeBytes"`
	StreamViewType              string `json:"StreamViewType"`
}

// Identity is who made a change: set only for TTL deletes.
type Identity struct {
	PrincipalID string `json:"PrincipalId"`
	Type        string `json:"Type"`
}
