package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// With a bucket set, the consumer reads the event's object from MinIO and
// takes the event only if the object's bytes, size and checksum are the
// event's; an object elsewhere, or a checksum that differs, is an error.
func TestVerifiesTheObject(t *testing.T) {
	ctx := context.Background()
	client := awstest.S3(t)
	bucket := awstest.Bucket(t, client)
	data := bytes.Repeat([]byte("flowgate "), 100_000)
	key := "files/0123-abcd/report.txt"
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
	}); err != nil {
		t.Fatal(err)
	}
	c, err := newHandler(func(k string) string {
		return map[string]string{"FLOWGATE_BUCKET": bucket, "FLOWGATE_LOG_LEVEL": "error"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	event := func(edit func(*upload.Event)) error {
		ev := sample(t)
		var d upload.Event
		json.Unmarshal(ev.Detail, &d)
		d.Bucket, d.Object, d.Size, d.CRC64NVME = bucket, key, int64(len(data)), checksum.Encode(checksum.CRC64NVME(data))
		edit(&d)
		ev.Detail, _ = json.Marshal(d)
		return c.handle(ctx, ev)
	}
	if err := event(func(*upload.Event) {}); err != nil {
		t.Fatalf("the right object was refused: %v", err)
	}
	for name, edit := range map[string]func(*upload.Event){
		"another checksum": func(d *upload.Event) { d.CRC64NVME = checksum.Encode(1) },
		"no checksum":      func(d *upload.Event) { d.CRC64NVME = "" },
		"another size":     func(d *upload.Event) { d.Size++ },
		"another bucket":   func(d *upload.Event) { d.Bucket = "elsewhere" },
		"outside files/":   func(d *upload.Event) { d.Object = "staging/x" },
	} {
		if err := event(edit); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}
