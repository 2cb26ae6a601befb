package hostile

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/localaws/awstest"
	"github.com/flowgate/flowgate/shared/streamassemble"
)

// awsTarget is the upload function's handler behind the API Gateway
// emulation (what `make dev` serves), on MinIO and dynalite, with the
// assembler function's stream handler fed by the poller.
type awsTarget struct {
	t      *testing.T
	url    string
	parent string
	bucket string
	table  string
	s3     *s3.Client
	db     *dynamodb.Client
	poller *streamassemble.Poller
	prefix string
}

func (a *awsTarget) base() string { return a.url }
func (a *awsTarget) aws() bool    { return true }

// snapshot covers the whole bucket (objects and multipart uploads in
// progress), the whole ledger table, and the watched directory.
func (a *awsTarget) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	// The listings at once: the battery takes two snapshots per case.
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	out := map[string]string{}
	put := func(k, v string) {
		mu.Lock()
		out[k] = v
		mu.Unlock()
	}
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for k, v := range treeSnapshot(t, a.parent, "fs:") {
		out[k] = v
	}
	wg.Go(func() {
		p := s3.NewListObjectsV2Paginator(a.s3, &s3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				fail(fmt.Errorf("list bucket: %w", err))
				return
			}
			for _, o := range page.Contents {
				put("s3:"+aws.ToString(o.Key), fmt.Sprintf("%d %s", aws.ToInt64(o.Size), aws.ToString(o.ETag)))
			}
		}
	})
	wg.Go(func() {
		ups, err := a.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(a.bucket)})
		if err != nil {
			fail(fmt.Errorf("list multipart uploads: %w", err))
			return
		}
		for _, u := range ups.Uploads {
			put("mpu:"+aws.ToString(u.Key)+" "+aws.ToString(u.UploadId), "in progress")
		}
	})
	wg.Go(func() {
		var start map[string]types.AttributeValue
		for {
			page, err := a.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(a.table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
			if err != nil {
				fail(fmt.Errorf("scan table: %w", err))
				return
			}
			for _, item := range page.Items {
				put("ddb:"+render(item["pk"])+" "+render(item["sk"]), renderItem(item))
			}
			if start = page.LastEvaluatedKey; len(start) == 0 {
				return
			}
		}
	})
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return out
}

func (a *awsTarget) staging(name string) bool {
	return strings.HasPrefix(name, "s3:"+a.prefix) || strings.HasPrefix(name, "ddb:")
}

func (a *awsTarget) finished(t *testing.T, location string) []byte {
	t.Helper()
	key, ok := strings.CutPrefix(location, "s3://"+a.bucket+"/")
	if !ok || !cleanUnder(key, "files") {
		t.Fatalf("location %q is not a clean key under s3://%s/files/", location, a.bucket)
	}
	out, err := a.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *awsTarget) pump(ctx context.Context) {
	if _, err := a.poller.Once(ctx); err != nil {
		a.t.Logf("poll: %v", err)
	}
}

func (a *awsTarget) staged(t *testing.T) []string {
	return awstest.Keys(t, a.s3, a.bucket, a.prefix)
}

// TestHostileAWS runs the battery against the AWS path.
func TestHostileAWS(t *testing.T) {
	t.Parallel()
	a := &awsTarget{t: t, parent: t.TempDir(), s3: awstest.S3(t), db: awstest.DynamoDB(t), prefix: "staging/"}
	a.bucket, a.table = awstest.Bucket(t, a.s3), awstest.Table(t, a.db)
	vars := map[string]string{
		"FLOWGATE_BUCKET": a.bucket, "FLOWGATE_TABLE": a.table,
		"FLOWGATE_STAGING_PREFIX": a.prefix,
		"FLOWGATE_MAX_FILE_SIZE":  "64MiB", "FLOWGATE_MAX_CHUNK_SIZE": "4MiB", "FLOWGATE_MAX_CHUNKS": "1000",
	}
	cfg, err := awsdeploy.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := awsdeploy.NewWithAWS(cfg, awstest.Config(t), log)
	srv := httptest.NewServer(apigw.APIGateway(httpadapter.New(d.Handler()).ProxyWithContext))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	a.poller = &streamassemble.Poller{
		Handler: d.StreamHandler(),
		Ledger:  d.Ledger,
	}
	runBattery(t, a, env{abs: a.parent + "/pwned"})
}

// render writes an attribute value the same way every time.
func render(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return "S:" + v.Value
	case *types.AttributeValueMemberN:
		return "N:" + v.Value
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprintf("BOOL:%v", v.Value)
	case *types.AttributeValueMemberB:
		return fmt.Sprintf("B:%x", v.Value)
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberSS:
		s := append([]string(nil), v.Value...)
		sort.Strings(s)
		return "SS:" + strings.Join(s, ",")
	case *types.AttributeValueMemberL:
		var parts []string
		for _, e := range v.Value {
			parts = append(parts, render(e))
		}
		return "L:[" + strings.Join(parts, ",") + "]"
	case *types.AttributeValueMemberM:
		return "M:{" + renderItem(v.Value) + "}"
	case nil:
		return "<nil>"
	}
	return fmt.Sprintf("%T", v)
}

func renderItem(item map[string]types.AttributeValue) string {
	names := make([]string, 0, len(item))
	for k := range item {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k + "=" + render(item[k]) + ";")
	}
	return b.String()
}
