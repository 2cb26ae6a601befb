// Command consumer is the example downstream consumer: an EventBridge rule
// sends it every "Upload Completed" event, and it verifies and logs what was
// uploaded. It is off by default (template.yaml's ExampleConsumer
// parameter); copy it as the start of real processing (thumbnails, a virus
// scan, ingestion): the event names the bucket and key of the finished file.
// Events arrive at least once, so real processing should de-duplicate on
// detail.uploadKey.
//
// Verifying needs nothing but the AWS SDK: the finished object carries its
// full-object CRC-64/NVME, which the event repeats. Reading the object with
// ChecksumMode ENABLED makes the SDK check every byte against it (the read
// fails at its end otherwise); the consumer also compares the object's
// checksum and size with the event's, and computes the CRC itself with the
// standard library, as processing that must not trust the SDK would.
package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/upload"
)

func main() {
	h, err := newHandler(os.Getenv)
	if err != nil {
		slog.Error("consumer function cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.handle)
}

type consumer struct {
	log *slog.Logger
	// bucket and prefix are where finished files are (FLOWGATE_BUCKET,
	// FLOWGATE_FINISHED_PREFIX). With a bucket set, every event's object is
	// read and verified, and an event naming any other place is refused;
	// without one, events are only logged.
	bucket, prefix string
	s3             *s3.Client
}

func newHandler(getenv func(string) string) (*consumer, error) {
	e := config.NewEnv(getenv)
	level := e.Level("FLOWGATE_LOG_LEVEL", slog.LevelInfo)
	c := &consumer{
		bucket: e.String("FLOWGATE_BUCKET", ""),
		prefix: e.String("FLOWGATE_FINISHED_PREFIX", "files/"),
	}
	if err := e.Err(); err != nil {
		return nil, err
	}
	c.log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if c.bucket != "" {
		cfg, err := awsconfig.LoadDefaultConfig(context.Background())
		if err != nil {
			return nil, fmt.Errorf("consumer: AWS configuration: %w", err)
		}
		c.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
			// S3-compatible servers (MinIO) address buckets by path.
			o.UsePathStyle = o.BaseEndpoint != nil && *o.BaseEndpoint != ""
		})
	}
	return c, nil
}

// handle verifies and logs one completion event. An event it cannot read or
// verify is an error, so EventBridge retries it (and, past its retries, it
// shows in the function's error metric).
func (c *consumer) handle(ctx context.Context, ev events.CloudWatchEvent) error {
	if ev.Source != upload.EventSource || ev.DetailType != upload.EventDetailType {
		return fmt.Errorf("consumer: unexpected event %q from %q", ev.DetailType, ev.Source)
	}
	var d upload.Event
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return fmt.Errorf("consumer: event detail: %w", err)
	}
	if d.UploadKey == "" || d.Bucket == "" || d.Object == "" {
		return fmt.Errorf("consumer: event %s names no finished object", ev.ID)
	}
	verified := false
	if c.s3 != nil {
		if err := c.verify(ctx, d); err != nil {
			return fmt.Errorf("consumer: event %s: %w", ev.ID, err)
		}
		verified = true
	}
	c.log.InfoContext(ctx, "upload completed",
		"eventId", ev.ID, "uploadKey", d.UploadKey, "namespace", d.Namespace,
		"fileName", d.FileName, "relativePath", d.RelativePath,
		"bucket", d.Bucket, "key", d.Object, "size", d.Size, "chunks", d.Chunks,
		"contentType", d.ContentType, "crc64nvme", d.CRC64NVME, "verified", verified,
		"seconds", d.CompletedAt.Sub(d.StartedAt).Seconds())
	return nil
}

// crc64NVME is the CRC-64/NVME polynomial (bit-reversed, as hash/crc64
// takes it): the checksum S3 keeps of the whole object.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// verify reads the event's object and checks it is the file the event
// describes.
func (c *consumer) verify(ctx context.Context, d upload.Event) error {
	if d.Bucket != c.bucket || !strings.HasPrefix(d.Object, c.prefix) {
		return fmt.Errorf("object s3://%s/%s is not a finished file of s3://%s/%s", d.Bucket, d.Object, c.bucket, c.prefix)
	}
	if d.CRC64NVME == "" {
		return fmt.Errorf("the event carries no checksum")
	}
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.Bucket), Key: aws.String(d.Object), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return fmt.Errorf("read the object: %w", err)
	}
	defer out.Body.Close()
	if got := aws.ToString(out.ChecksumCRC64NVME); got != d.CRC64NVME {
		return fmt.Errorf("the object's CRC-64/NVME is %q, the event's %q", got, d.CRC64NVME)
	}
	h := crc64.New(crc64NVME)
	n, err := io.Copy(h, out.Body) // the SDK fails here if a byte is not the object's
	if err != nil {
		return fmt.Errorf("read the object: %w", err)
	}
	sum := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, h.Sum64()))
	if n != d.Size || sum != d.CRC64NVME {
		return fmt.Errorf("read %d bytes of CRC-64/NVME %s; the event says %d bytes of %s", n, sum, d.Size, d.CRC64NVME)
	}
	return nil
}
