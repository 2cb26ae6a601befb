// Package awstest has the helpers the AWS-path integration tests share:
// SDK clients pointed at the servers localaws.RunTests started (through the
// same environment variables the code reads on AWS), a fresh bucket or table
// per test, and a clock tests can move.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/s3store"
)

// Config loads the SDK configuration exactly as a Lambda function would.
func Config(t testing.TB) aws.Config {
	t.Helper()
	if localaws.Current() == nil {
		t.Fatal("awstest: no local servers; the package's TestMain must call localaws.RunTests")
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("awstest: load AWS config: %v", err)
	}
	return cfg
}

// S3 returns a client for the local MinIO.
func S3(t testing.TB) *s3.Client { return s3store.NewClient(Config(t)) }

// DynamoDB returns a client for the local dynalite.
func DynamoDB(t testing.TB) *dynamodb.Client { return dynamodb.NewFromConfig(Config(t)) }

// Name returns a unique lowercase name with prefix, valid for buckets and tables.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Bucket creates a fresh bucket.
func Bucket(t testing.TB, c *s3.Client) string {
	t.Helper()
	name := Name("fg")
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("awstest: create bucket: %v", err)
	}
	return name
}

// Table creates a fresh ledger table.
func Table(t testing.TB, c *dynamodb.Client) string {
	t.Helper()
	name := Name("flowgate")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dynamoledger.CreateTable(ctx, c, name); err != nil {
		t.Fatalf("awstest: %v", err)
	}
	return name
}

// Keys lists the object keys under prefix.
func Keys(t testing.TB, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("awstest: list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// Uploads lists the multipart uploads in progress under prefix.
func Uploads(t testing.TB, c *s3.Client, bucket, prefix string) []types.MultipartUpload {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{
		Bucket: aws.String(bucket), Prefix: aws.String(prefix),
	})
	if err != nil {
		t.Fatalf("awstest: list multipart uploads: %v", err)
	}
	return out.Uploads
}

// Clock is a clock tests can move forward (to run out a lease or a TTL).
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the wall clock plus every Advance so far.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Slug makes a test name usable in identifiers.
func Slug(s string) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(s)
}

// HTTP returns a plain HTTP client that trusts the local MinIO's
// certificate.
func HTTP(t testing.TB) *http.Client {
	t.Helper()
	c, err := localaws.Current().HTTPClient()
	if err != nil {
		t.Fatalf("awstest: %v", err)
	}
	return c
}
