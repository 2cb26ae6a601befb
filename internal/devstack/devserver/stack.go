package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/platform"
	"github.com/flowgate/flowgate/internal/devstack/s3notify"
	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/s3store"
)

// FailureQueueName is the SQS queue the assembler's event source mapping
// sends what it gives up to (the template's AssemblyFailureQueue).
const FailureQueueName = "flowgate-dev-assembly-failures"

// What template.yaml gives each function (MemorySize, Timeout).
var functions = map[string]struct {
	memoryMB int
	timeout  time.Duration
}{
	"upload":   {1024, 29 * time.Second},
	"assemble": {1024, 900 * time.Second},
	"redrive":  {1024, 900 * time.Second},
	"count":    {128, 30 * time.Second},
}

// Options start a Stack.
type Options struct {
	Settings Settings
	// Environ is the environment ("KEY=value" each, as os.Environ): its
	// FLOWGATE_* variables other than the dev stack's own configure the
	// functions. FLOWGATE_BUCKET and FLOWGATE_TABLE default to flowgate-dev.
	Environ []string
	// Servers, if set, are a running MinIO and dynalite to use (tests);
	// nil starts them on Settings' addresses, and Stop stops them.
	Servers *localaws.Servers
	// Template is the SAM template the mapping's settings come from; empty
	// means the repository's template.yaml.
	Template string
	// Output gets the functions' logs (without the emulator's chatter
	// unless FLOWGATE_LOG_LEVEL is debug) and the servers' progress; nil
	// discards them.
	Output io.Writer
	// Log gets the stack's own log lines; nil discards them.
	Log *slog.Logger
	// Mapping and Assemble, if set, adjust the event source mapping's
	// options and wrap the assemble function's invocations: tests use them
	// to make the stream give up quickly, or the assembler fail.
	Mapping  func(*esm.Options)
	Assemble func(esm.Function) esm.Function
	// Count, if set, wraps the counting function's invocations (direct
	// data path): tests make it fail.
	Count func(esm.Function) esm.Function
	// DropNotification, if set, drops the notification of an object key
	// when it says so, as if S3 had never sent it (direct data path).
	DropNotification func(key string) bool
	// Notifications, with Servers and FLOWGATE_DATA_PATH=direct, is the
	// Receiver those servers' MinIO posts to (NotificationServers); the
	// stack delivers its events, and stops it.
	Notifications *s3notify.Receiver
}

// Stack is make dev's serverless deployment, running.
type Stack struct {
	// Servers are MinIO and dynalite; Platform the emulation in front of
	// dynalite (DynamoDB with its stream and TTL, SQS).
	Servers  *localaws.Servers
	Platform *platform.Platform
	// Config is the deployment's configuration, as the functions read it.
	Config awsdeploy.Config
	// FailureQueueURL is the mapping's on-failure queue.
	FailureQueueURL string
	// API is API Gateway's REST API in front of the upload function's
	// instances: serve it at /upload and /upload/status.
	API http.Handler

	settings                  Settings
	ownServers                bool
	upload, assemble, redrive *pool
	count                     *pool   // direct data path only
	direct                    *direct // direct data path only
	mappings                  []*esm.Mapping
	log                       *slog.Logger
	cancel                    context.CancelFunc
	wg                        sync.WaitGroup

	mu      sync.Mutex
	redrove RedriveStats
}

// Start starts the stack and returns once every part accepts work. The
// caller must call Stop.
func Start(ctx context.Context, opt Options) (_ *Stack, err error) {
	if opt.Output == nil {
		opt.Output = io.Discard
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{settings: opt.Settings, log: opt.Log, Servers: opt.Servers}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	vars := functionSettings(opt.Environ)
	delete(vars, "FLOWGATE_FAILURE_QUEUE")       // the stack's own queue, for the re-drive
	delete(vars, "FLOWGATE_COUNT_FAILURE_QUEUE") // the same
	minioEnv, err := s.prepareDirect(opt, vars)
	if err != nil {
		return nil, err
	}
	if s.Servers == nil {
		s.ownServers = true
		s.Servers, err = localaws.Start(ctx, localaws.Options{
			MinIOAddr: opt.Settings.MinIOAddr, DynaliteAddr: opt.Settings.DynaliteAddr, Log: opt.Output,
			MinIOEnv: minioEnv,
		})
		if err != nil {
			return nil, err
		}
	}
	if s.direct != nil {
		if err := s.openDoor(opt.Settings.DoorAddr, vars); err != nil {
			return nil, err
		}
	}
	s.Platform, err = platform.Start(ctx, platform.Options{
		Dynalite: s.Servers.DynamoDBEndpoint, DynamoDBAddr: opt.Settings.DynamoDBAddr,
		TTLDelay: opt.Settings.TTLDelay, StreamRetention: opt.Settings.StreamRetention, Log: opt.Log,
	})
	if err != nil {
		return nil, err
	}

	if s.Config, err = awsdeploy.Load(func(k string) string { return vars[k] }); err != nil {
		return nil, err
	}
	if err := s.createResources(ctx); err != nil {
		return nil, err
	}
	if s.FailureQueueURL, _, err = s.Platform.SQS.CreateQueue(FailureQueueName); err != nil {
		return nil, err
	}
	redriveEnv := map[string]string{"FLOWGATE_ASSEMBLY_LEASE": "900s", "FLOWGATE_FAILURE_QUEUE": s.FailureQueueURL}
	if s.direct != nil {
		if s.direct.queueURL, _, err = s.Platform.SQS.CreateQueue(CountFailureQueueName); err != nil {
			return nil, err
		}
		redriveEnv["FLOWGATE_COUNT_FAILURE_QUEUE"] = s.direct.queueURL
	}

	// Each function sees the servers' endpoints, the credentials and its
	// FLOWGATE_* settings, as the template gives them on AWS.
	base := append(s.Servers.Env(), s.Platform.Env()...)
	env := func(extra map[string]string) []string {
		m := map[string]string{}
		for k, v := range vars {
			m[k] = v
		}
		for k, v := range extra {
			if _, set := m[k]; !set || k == "FLOWGATE_FAILURE_QUEUE" || k == "FLOWGATE_COUNT_FAILURE_QUEUE" {
				m[k] = v
			}
		}
		out := append([]string(nil), base...)
		for _, k := range sortedKeys(m) {
			out = append(out, k+"="+m[k])
		}
		return out
	}
	logs := &lineFilter{w: opt.Output, debug: s.Config.LogLevel <= slog.LevelDebug}
	start := func(function string, n int, extra map[string]string) (*pool, error) {
		f := functions[function]
		return startPool(ctx, function, n, lambdarie.Options{
			Env: env(extra), Name: "flowgate-dev-" + function, MemoryMB: f.memoryMB, Timeout: f.timeout, Output: logs,
		})
	}
	// The template's lease for the stream-driven functions: as long as
	// one may run.
	lease := map[string]string{"FLOWGATE_ASSEMBLY_LEASE": "900s"}
	if s.upload, err = start("upload", opt.Settings.Instances, nil); err != nil {
		return nil, err
	}
	if s.assemble, err = start("assemble", opt.Settings.Assemblers, lease); err != nil {
		return nil, err
	}
	if s.redrive, err = start("redrive", 1, redriveEnv); err != nil {
		return nil, err
	}
	if s.direct != nil {
		if err := s.startDirect(opt, start); err != nil {
			return nil, err
		}
	}

	template := opt.Template
	if template == "" {
		root, err := proc.Root()
		if err != nil {
			return nil, err
		}
		template = filepath.Join(root, "template.yaml")
	}
	var invoke esm.Function = s.assemble.invoke
	if opt.Assemble != nil {
		invoke = opt.Assemble(invoke)
	}
	s.mappings, err = s.Platform.StartMappings(ctx, platform.MappingOptions{
		Template: template, Function: "AssembleFunction",
		Tables: map[string]string{"LedgerTable": s.Config.Table},
		Queues: map[string]string{"AssemblyFailureQueue": FailureQueueName},
		Invoke: invoke,
		Override: func(o *esm.Options) {
			o.DuplicateProbability = opt.Settings.Duplicates
			if opt.Mapping != nil {
				opt.Mapping(o)
			}
		},
	})
	if err != nil {
		return nil, err
	}

	cors := ""
	if len(s.Config.AllowedOrigins) > 0 {
		cors = s.Config.AllowedOrigins[0]
	}
	s.API = &apigw.Gateway{Invoke: s.upload.invoke, CORSOrigin: cors}

	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Go(func() { s.schedule(run) })
	return s, nil
}

// createResources makes the bucket and the ledger table (with its stream
// and TTL), which the template owns on AWS.
func (s *Stack) createResources(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pem, err := os.ReadFile(s.Servers.CABundle)
	if err != nil {
		return err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(localaws.Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(localaws.AccessKey, localaws.SecretKey, "")),
		awsconfig.WithCustomCABundle(strings.NewReader(string(pem))),
	)
	if err != nil {
		return err
	}
	s3c := s3store.NewClient(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(s.Servers.S3Endpoint) })
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Config.Bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("devserver: create bucket %s: %w", s.Config.Bucket, err)
	}
	if s.direct != nil {
		if err := s3notify.Configure(ctx, s3c, s.Config.Bucket, s.Config.StagingPrefix); err != nil {
			return err
		}
	}
	return dynamoledger.CreateTable(ctx, s.Platform.DynamoDB(), s.Config.Table)
}

// Stop stops everything the stack started, the mappings first (no new
// invocations), then the functions, the platform and the servers.
func (s *Stack) Stop() {
	for _, m := range s.mappings {
		m.Stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.stopDirect()
	var wg sync.WaitGroup
	for _, p := range []*pool{s.upload, s.assemble, s.redrive, s.count} {
		if p != nil {
			wg.Go(p.stop)
		}
	}
	wg.Wait()
	if s.Platform != nil {
		s.Platform.Stop()
	}
	if s.ownServers && s.Servers != nil {
		s.Servers.Stop()
	}
}

// Stats is what the stack did so far.
type Stats struct {
	Upload   PoolStats `json:"upload"`
	Assemble PoolStats `json:"assemble"`
	Redrive  PoolStats `json:"redrive"`
	// Count and Notifications: the direct data path only.
	Count         *PoolStats      `json:"count,omitempty"`
	Notifications *s3notify.Stats `json:"notifications,omitempty"`
	Mapping       esm.Stats       `json:"mapping"`
	Redrives      RedriveStats    `json:"redrives"`
}

// Stats counts the invocations of each function, what the event source
// mapping did and what the re-drive runs reported.
func (s *Stack) Stats() Stats {
	st := Stats{Upload: s.upload.stats(), Assemble: s.assemble.stats(), Redrive: s.redrive.stats()}
	if s.count != nil {
		cs, ns := s.count.stats(), s.direct.notify.Stats()
		st.Count, st.Notifications = &cs, &ns
	}
	for _, m := range s.mappings {
		ms := m.Stats()
		st.Mapping.Read += ms.Read
		st.Mapping.Filtered += ms.Filtered
		st.Mapping.Invocations += ms.Invocations
		st.Mapping.FunctionErrors += ms.FunctionErrors
		st.Mapping.PartialFailures += ms.PartialFailures
		st.Mapping.NotInvoked += ms.NotInvoked
		st.Mapping.Bisections += ms.Bisections
		st.Mapping.Retries += ms.Retries
		st.Mapping.Succeeded += ms.Succeeded
		st.Mapping.Duplicates += ms.Duplicates
		st.Mapping.Discarded += ms.Discarded
		st.Mapping.DestinationMessages += ms.DestinationMessages
		st.Mapping.Pending += ms.Pending
	}
	s.mu.Lock()
	st.Redrives = s.redrove
	s.mu.Unlock()
	return st
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
