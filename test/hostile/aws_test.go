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
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/internal/devstack/devserver"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/dynamoledger"
)

// awsTarget is the upload function behind the API Gateway emulation, on
// MinIO and dynalite: either its handler in this process, handed each event
// as a Go value (raw bytes and all), with the assembler's stream handler run
// by pump; or make dev's stack, the function's bootstrap under the Lambda
// emulator on several instances, handed each event as JSON, with the
// assembler fed by the emulated stream.
type awsTarget struct {
	t        *testing.T
	url      string
	parent   string
	bucket   string
	table    string
	s3       *s3.Client
	db       *dynamodb.Client
	prefix   string
	jsonPath bool
	// drive, if set, runs the assembler on whatever is owed (in process);
	// make dev's stream does it by itself.
	drive func(ctx context.Context)
}

func (a *awsTarget) base() string { return a.url }
func (a *awsTarget) aws() bool    { return true }
func (a *awsTarget) json() bool   { return a.jsonPath }

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
	if a.drive != nil {
		a.drive(ctx)
	}
}

func (a *awsTarget) staged(t *testing.T) []string {
	return awstest.Keys(t, a.s3, a.bucket, a.prefix)
}

// awsVars are the AWS path's settings under test.
func awsVars(bucket, table, prefix string) map[string]string {
	return map[string]string{
		"FLOWGATE_BUCKET": bucket, "FLOWGATE_TABLE": table,
		"FLOWGATE_STAGING_PREFIX": prefix,
		"FLOWGATE_MAX_FILE_SIZE":  "64MiB", "FLOWGATE_MAX_CHUNK_SIZE": "4MiB", "FLOWGATE_MAX_CHUNKS": "1000",
	}
}

// TestHostileAWS runs the battery against the upload function's handler in
// this process, where the bytes of a query parameter reach it as sent.
func TestHostileAWS(t *testing.T) {
	t.Parallel()
	a := &awsTarget{t: t, parent: t.TempDir(), s3: awstest.S3(t), db: awstest.DynamoDB(t), prefix: "staging/"}
	a.bucket, a.table = awstest.Bucket(t, a.s3), awstest.Table(t, a.db)
	vars := awsVars(a.bucket, a.table, a.prefix)
	cfg, err := awsdeploy.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := awsdeploy.NewWithAWS(cfg, awstest.Config(t), log)
	srv := httptest.NewServer(apigw.APIGateway(httpadapter.New(d.Handler()).ProxyWithContext))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	// The stream, in short: each upload owed work reaches the assembler
	// function's handler as its record's stream record.
	h := d.StreamHandler()
	a.drive = func(ctx context.Context) {
		owed, err := d.Ledger.Overdue(ctx, time.Now().Add(time.Hour), 100)
		if err != nil {
			t.Logf("owed uploads: %v", err)
		}
		for _, key := range owed {
			h.Handle(ctx, events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{readyRecord(key)}})
		}
	}
	runBattery(t, a, env{abs: a.parent + "/pwned"})
}

// TestHostileDev runs the battery against make dev's stack: two instances
// of the upload function's bootstrap under the Lambda emulator, each event
// handed over as JSON, the assembler fed by the emulated stream with
// duplicate deliveries.
func TestHostileDev(t *testing.T) {
	t.Parallel()
	a := &awsTarget{t: t, parent: t.TempDir(), s3: awstest.S3(t), db: awstest.DynamoDB(t), prefix: "staging/", jsonPath: true}
	a.bucket, a.table = awstest.Name("hostile"), awstest.Name("hostile")
	var environ []string
	for k, v := range awsVars(a.bucket, a.table, a.prefix) {
		environ = append(environ, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stack, err := devserver.Start(ctx, devserver.Options{
		Settings: devserver.Settings{Instances: 2, Assemblers: 2, TTLDelay: time.Hour, RedriveInterval: time.Hour, Duplicates: 0.2},
		Environ:  environ, Servers: localaws.Current(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Stop)
	srv := httptest.NewServer(stack.API)
	t.Cleanup(srv.Close)
	a.url = srv.URL
	runBattery(t, a, env{abs: a.parent + "/pwned"})
	if st := stack.Stats(); st.Upload.Invokes[0] == 0 || st.Upload.Invokes[1] == 0 || st.Mapping.Succeeded == 0 {
		t.Errorf("the stack's work was not spread as it should be: %+v", st)
	}
}

// readyRecord is the stream record of an upload's record becoming ready,
// reduced to what the assembler's handler reads.
func readyRecord(key string) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{
		EventID: "ready-" + key, EventName: "MODIFY",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber: "100000000000000000001",
			NewImage:       dynamoledger.ReadyImage(key),
		},
	}
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
