// Package awsdeploy builds flowgate's AWS deployment from FLOWGATE_*
// environment variables: the S3 chunk store and assembler, the DynamoDB
// ledger, the EventBridge publisher, and the upload service and HTTP handler
// on top. The Lambda functions and `make dev` (the same code against MinIO
// and dynalite) both start here, so they differ only in their environment.
//
// Settings, besides the common ones of package config:
//
//	FLOWGATE_BUCKET             bucket for chunks and finished files (required)
//	FLOWGATE_TABLE              DynamoDB ledger table (required)
//	FLOWGATE_STAGING_PREFIX     chunk objects' prefix (staging/)
//	FLOWGATE_FINISHED_PREFIX    finished files' prefix (files/)
//	FLOWGATE_EVENT_BUS          EventBridge bus for completion events; empty logs them instead
//	FLOWGATE_EXPIRY             a receiving upload expires this long after its last chunk (24h)
//	FLOWGATE_STAGING_RETENTION  the age at which the bucket's lifecycle rule deletes chunk objects
//	                            (30d in template.yaml; empty: no rule, no age limit): an upload
//	                            must finish receiving a day before it (see MaxUploadAge)
//	FLOWGATE_RECORD_TTL         finished records are kept this long (168h)
//	FLOWGATE_ASSEMBLY_LEASE     an assembler's claim lasts this long (15m, the Lambda maximum)
//	FLOWGATE_ASSEMBLY_CONCURRENCY  parts in flight per assembly (4)
//	FLOWGATE_FAILURE_QUEUE      the stream's on-failure queue (URL), which the re-drive replays
//	FLOWGATE_AUTH               who the caller is: none (public namespace), cognito or jwt
//	                            (the identity API Gateway's authorizer verified; see GatewayNamespace)
//	FLOWGATE_FINISHED_LAYOUT    finished file's key below the prefix ({uploadKey}-{generation}/{name};
//	                            placeholders {namespace} {uploadKey} {generation} {name})
//	FLOWGATE_STORAGE_CLASS      storage class of finished files (empty: the bucket's default, STANDARD)
//	FLOWGATE_KMS_KEY            KMS key (ARN, id or alias) that encrypts every object written (SSE-KMS);
//	                            empty leaves the bucket's default encryption
//	FLOWGATE_OBJECT_TAGS        tags of finished files, key=value,key2=value2
//	FLOWGATE_DATA_PATH          proxy (chunks are POSTed to the API) or direct (clients PUT them
//	                            into the bucket with URLs the API signs; see direct.go)
//	FLOWGATE_DIRECT_URL_LIFE    direct: how long a chunk URL works (15m, at most 1h)
//	FLOWGATE_DIRECT_ENDPOINT    direct: the S3 endpoint clients reach, if not the SDK's (make dev)
//	FLOWGATE_COUNT_FAILURE_QUEUE  direct: the counting function's on-failure queue (URL), which
//	                            the re-drive replays
//
// The AWS SDK reads its own settings (region, credentials, and endpoint
// overrides such as AWS_ENDPOINT_URL_S3) from the environment as usual.
package awsdeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/metrics"
	"github.com/flowgate/flowgate/shared/publish"
	"github.com/flowgate/flowgate/shared/redrive"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/streamassemble"
	"github.com/flowgate/flowgate/shared/upload"
)

// LambdaMaxChunk is the default chunk limit behind API Gateway and Lambda:
// a request body is at most 6,291,456 bytes once base64-encoded, which
// leaves about 4.7 MB for the chunk, its multipart envelope and the event.
const LambdaMaxChunk = 4_500_000

// Config is the AWS deployment's configuration.
type Config struct {
	config.Common
	Bucket, Table                 string
	StagingPrefix, FinishedPrefix string
	EventBus                      string
	FailureQueue                  string
	Auth                          string
	IdleTTL, RecordTTL, Lease     time.Duration
	StagingRetention              time.Duration
	Concurrency                   int
	// How finished objects are written (see s3store.Store).
	Layout, StorageClass, KMSKey, Tags string
	// The data path and its settings (direct.go).
	DataPath          string
	DirectURLLife     time.Duration
	DirectEndpoint    string
	CountFailureQueue string
}

// MaxUploadAge is how long an upload may take from its first chunk to its
// last when the staging prefix has a lifecycle rule of retention: a day
// less, because S3 counts a rule's days from an object's creation rounded up
// to the next midnight (UTC), so it never deletes sooner, and an upload that
// became ready needs time to be assembled (the re-drive gives up on it hours
// later, never a day). 0 means no limit.
func MaxUploadAge(retention time.Duration) time.Duration {
	if retention <= 0 {
		return 0
	}
	return retention - 24*time.Hour
}

// Load reads the configuration through getenv (os.Getenv, or a map in tests)
// and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	e := config.NewEnv(getenv)
	dataPath := e.String("FLOWGATE_DATA_PATH", DataPathProxy)
	maxChunk := int64(LambdaMaxChunk)
	if dataPath == DataPathDirect {
		maxChunk = DirectMaxChunk
	}
	c := Config{
		// Lambda caps a request near 6 MB, base64 included: that sets the
		// default chunk limit of the proxy data path.
		Common:           e.Common(maxChunk),
		Bucket:           e.String("FLOWGATE_BUCKET", ""),
		Table:            e.String("FLOWGATE_TABLE", ""),
		StagingPrefix:    e.String("FLOWGATE_STAGING_PREFIX", s3store.DefaultStagingPrefix),
		FinishedPrefix:   e.String("FLOWGATE_FINISHED_PREFIX", s3store.DefaultFinishedPrefix),
		EventBus:         e.String("FLOWGATE_EVENT_BUS", ""),
		FailureQueue:     e.String("FLOWGATE_FAILURE_QUEUE", ""),
		Auth:             e.String("FLOWGATE_AUTH", AuthNone),
		IdleTTL:          e.Duration("FLOWGATE_EXPIRY", dynamoledger.DefaultIdleTTL),
		RecordTTL:        e.Duration("FLOWGATE_RECORD_TTL", dynamoledger.DefaultDoneTTL),
		Lease:            e.Duration("FLOWGATE_ASSEMBLY_LEASE", 15*time.Minute),
		StagingRetention: e.Duration("FLOWGATE_STAGING_RETENTION", 0),
		Concurrency:      e.Int("FLOWGATE_ASSEMBLY_CONCURRENCY", s3store.DefaultConcurrency),
		Layout:           e.String("FLOWGATE_FINISHED_LAYOUT", s3store.DefaultLayout),
		StorageClass:     e.String("FLOWGATE_STORAGE_CLASS", ""),
		KMSKey:           e.String("FLOWGATE_KMS_KEY", ""),

		DataPath:          dataPath,
		DirectURLLife:     e.Duration("FLOWGATE_DIRECT_URL_LIFE", httpapi.DefaultURLLife),
		DirectEndpoint:    e.String("FLOWGATE_DIRECT_ENDPOINT", ""),
		CountFailureQueue: e.String("FLOWGATE_COUNT_FAILURE_QUEUE", ""),
	}
	checkDirect(e, &c)
	if err := s3store.CheckLayout(c.Layout); err != nil {
		e.Fail("FLOWGATE_FINISHED_LAYOUT: %v", err)
	}
	if c.StorageClass != "" && !slices.Contains(s3types.StorageClass("").Values(), s3types.StorageClass(c.StorageClass)) {
		e.Fail("FLOWGATE_STORAGE_CLASS: %q is not one of S3's storage classes", c.StorageClass)
	}
	tags, err := s3store.ParseTags(e.String("FLOWGATE_OBJECT_TAGS", ""))
	if err != nil {
		e.Fail("FLOWGATE_OBJECT_TAGS: %v", err)
	}
	c.Tags = tags
	if c.IdleTTL <= 0 || c.RecordTTL <= 0 || c.Lease <= 0 {
		e.Fail("FLOWGATE_EXPIRY, FLOWGATE_RECORD_TTL and FLOWGATE_ASSEMBLY_LEASE must be positive")
	}
	if c.StagingRetention > 0 && c.StagingRetention < c.IdleTTL+2*24*time.Hour {
		// An upload must be able to take its idle expiry and a day more.
		e.Fail("FLOWGATE_STAGING_RETENTION (%s) must be at least FLOWGATE_EXPIRY (%s) plus two days", c.StagingRetention, c.IdleTTL)
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		e.Fail("FLOWGATE_ASSEMBLY_CONCURRENCY must be from 1 to 64")
	}
	if !slices.Contains(AuthModes, c.Auth) {
		e.Fail("FLOWGATE_AUTH: %q is not one of %s", c.Auth, strings.Join(AuthModes, ", "))
	}
	if c.Auth != AuthNone && c.NamespaceHeader != "" {
		e.Fail("FLOWGATE_AUTH and FLOWGATE_NAMESPACE_HEADER exclude each other: behind API Gateway a client can set any header")
	}
	if c.Bucket == "" {
		e.Fail("FLOWGATE_BUCKET is required")
	}
	if c.Table == "" {
		e.Fail("FLOWGATE_TABLE is required")
	}
	for name, p := range map[string]string{"FLOWGATE_STAGING_PREFIX": c.StagingPrefix, "FLOWGATE_FINISHED_PREFIX": c.FinishedPrefix} {
		if !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") {
			e.Fail("%s: %q must end with / and not start with one", name, p)
		}
	}
	if strings.HasPrefix(c.FinishedPrefix, c.StagingPrefix) || strings.HasPrefix(c.StagingPrefix, c.FinishedPrefix) {
		e.Fail("FLOWGATE_STAGING_PREFIX and FLOWGATE_FINISHED_PREFIX must not overlap: the staging lifecycle rule would expire finished files")
	}
	return c, e.Err()
}

// Deployment is every part, built and wired.
type Deployment struct {
	Config    Config
	Log       *slog.Logger
	Store     *s3store.Store
	Ledger    *dynamoledger.Ledger
	Publisher upload.Publisher
	Service   *upload.Service
	Metrics   *metrics.Metrics
	// The SDK clients underneath, for setup and checks, and their
	// configuration.
	S3       *s3.Client
	DynamoDB *dynamodb.Client
	AWS      aws.Config
}

// Start is a function's main: its handler built from the environment by
// newHandler, then served to Lambda; a handler that cannot be built is
// logged and the process exits 1, which Lambda reports as an init error.
func Start[H any](name string, newHandler func(context.Context, func(string) string) (H, error)) {
	h, err := newHandler(context.Background(), os.Getenv)
	if err != nil {
		slog.Error(name+" function cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// FromEnv is how every function starts: its settings read with getenv
// (Load), a JSON logger to stderr at their level (CloudWatch reads it), and
// the deployment built with the SDK's default configuration (New).
func FromEnv(ctx context.Context, getenv func(string) string) (*Deployment, error) {
	cfg, err := Load(getenv)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return New(ctx, cfg, log)
}

// New builds the deployment with the SDK's default configuration chain.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Deployment, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("awsdeploy: AWS configuration: %w", err)
	}
	return NewWithAWS(cfg, awsCfg, log), nil
}

// NewWithAWS builds the deployment from a loaded SDK configuration.
func NewWithAWS(cfg Config, awsCfg aws.Config, log *slog.Logger) *Deployment {
	s3c, db := s3store.NewClient(awsCfg), dynamodb.NewFromConfig(awsCfg)
	store := &s3store.Store{
		Client: s3c, Bucket: cfg.Bucket,
		StagingPrefix: cfg.StagingPrefix, FinishedPrefix: cfg.FinishedPrefix,
		Concurrency: cfg.Concurrency,
		Layout:      cfg.Layout, Disposition: cfg.Disposition, Tags: cfg.Tags,
		StorageClass: s3types.StorageClass(cfg.StorageClass), KMSKey: cfg.KMSKey,
	}
	if cfg.DataPath == DataPathDirect {
		store.Presign = presigner(cfg, awsCfg)
	}
	ledger := &dynamoledger.Ledger{
		Client: db, Table: cfg.Table,
		IdleTTL: cfg.IdleTTL, DoneTTL: cfg.RecordTTL,
		MaxAge: MaxUploadAge(cfg.StagingRetention),
	}
	if cfg.StagingRetention > 0 {
		// Shard and identity items must outlive any upload.
		ledger.ChunkTTL = cfg.StagingRetention
	}
	var pub upload.Publisher = publish.Log{Logger: log}
	if cfg.EventBus != "" {
		pub = publish.EventBridge{Client: eventbridge.NewFromConfig(awsCfg), Bus: cfg.EventBus}
	}
	return &Deployment{
		Config: cfg, Log: log, Store: store, Ledger: ledger, Publisher: pub,
		// In Lambda, metrics go out as CloudWatch embedded-metric-format
		// lines on stdout; elsewhere (make dev) they are only counted.
		Metrics: metrics.ForEnvironment(os.Getenv, os.Stdout),
		// OnReady stays nil: the DynamoDB stream starts the assembler (on
		// AWS, and emulated under `make dev`).
		// No Admission (the embedded server's uploads-per-namespace
		// limit): a count per Lambda instance would limit nothing.
		Service: &upload.Service{Store: store, Ledger: ledger, Direct: cfg.DataPath == DataPathDirect},
		S3:      s3c, DynamoDB: db, AWS: awsCfg,
	}
}

// Handler is the HTTP API, exactly as the embedded server serves it.
func (d *Deployment) Handler() http.Handler {
	namespace := httpapi.HeaderNamespace(d.Config.NamespaceHeader)
	if d.Config.Auth != AuthNone {
		namespace = GatewayNamespace(d.Config.Auth)
	}
	api := &httpapi.Handler{
		Service:   d.Service,
		Limits:    d.Config.Limits,
		CORS:      httpapi.CORS{AllowedOrigins: d.Config.AllowedOrigins},
		Namespace: namespace,
		Log:       d.Log,
		Allowed:   d.Config.AllowedTypes,
		Metrics:   d.Metrics,
	}
	if d.Config.DataPath == DataPathDirect {
		api.Direct = &httpapi.Direct{URLLife: d.Config.DirectURLLife}
	}
	// Guarded: the adapter hands over any path API Gateway sends, and
	// every answer, a 404 or a panic's 500 too, carries CORS headers.
	return api.Guarded()
}

// StreamHandler is the assembler function's handler of ledger stream
// batches.
func (d *Deployment) StreamHandler() *streamassemble.Handler {
	return &streamassemble.Handler{Pipeline: *d.Pipeline(""), Store: d.Store, Restorer: d.Ledger, Log: d.Log}
}

// Redriver is the re-drive function's logic for one invocation (owner names
// it in claims). The failure queue is replayed when FLOWGATE_FAILURE_QUEUE is
// set.
func (d *Deployment) Redriver(owner string) *redrive.Redriver {
	r := &redrive.Redriver{Ledger: d.Ledger, Pipeline: *d.Pipeline(""), Owner: owner, Log: d.Log}
	if d.Config.DataPath == DataPathDirect {
		r.Counting = d.Recounter()
	}
	if d.Config.FailureQueue != "" {
		r.Failures = &redrive.Failures{
			Queue: sqs.NewFromConfig(d.AWS), QueueURL: d.Config.FailureQueue,
			Stream: dynamodbstreams.NewFromConfig(d.AWS), Handler: d.StreamHandler(),
		}
	}
	return r
}

// Pipeline is the assembly pipeline for one owner.
func (d *Deployment) Pipeline(owner string) *upload.Pipeline {
	return &upload.Pipeline{
		Ledger: d.Ledger, Assembler: d.Store, Publisher: d.Publisher,
		Owner: owner, Lease: d.Config.Lease, Log: d.Log, Metrics: d.Metrics,
	}
}

// CreateResources makes the bucket and the table if they do not exist, for
// `make dev` and tests against MinIO and dynalite; on AWS the SAM template
// owns them.
func (d *Deployment) CreateResources(ctx context.Context) error {
	_, err := d.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(d.Config.Bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("awsdeploy: create bucket %s: %w", d.Config.Bucket, err)
	}
	return dynamoledger.CreateTable(ctx, d.DynamoDB, d.Config.Table)
}
