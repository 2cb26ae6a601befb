// Package platform starts the emulated AWS platform the dev stack runs the
// serverless deployment on, in front of a running dynalite: DynamoDB with
// streams and TTL (package ddbfront, ddbstream), SQS (package sqslocal) and
// Lambda's DynamoDB event source mappings read from template.yaml (package
// esm), each on its own 127.0.0.1 port, with one clock. It is what `make
// dev`, the AWS-path tests, the soak and the benchmarks start in a few lines:
//
//	servers, _ := localaws.Start(ctx, localaws.Options{})  // MinIO and dynalite
//	defer servers.Stop()
//	servers.SetEnv()
//	p, err := platform.Start(ctx, platform.Options{Dynalite: servers.DynamoDBEndpoint, TTLDelay: 2 * time.Minute})
//	if err != nil { ... }
//	defer p.Stop()
//	p.SetEnv() // the SDK now reaches DynamoDB, Streams and SQS through the platform
//	// create the ledger table (dynamoledger.CreateTable: stream and TTL on), then:
//	mappings, err := p.StartMappings(ctx, platform.MappingOptions{
//		Template: "template.yaml", Function: "AssembleFunction",
//		Tables: map[string]string{"LedgerTable": table},
//		Queues: map[string]string{"AssemblyFailureQueue": "flowgate-dev-assembly-failures"},
//		Invoke: func(ctx context.Context, event []byte) ([]byte, error) { ... the assembler ... },
//	})
//	defer stop(mappings)
//
// The mapping gives up where the template says (its retries, record age,
// bisection, partial batch responses, filters) and sends what it gave up to
// the queue, in AWS's format; MappingOptions.Override changes anything (a
// test's fast backoff, make dev's duplicate deliveries).
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/internal/devstack/ddbfront"
	"github.com/flowgate/flowgate/internal/devstack/ddbstream"
	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/sqslocal"
)

// Options configure the platform.
type Options struct {
	// Dynalite is the running dynalite's URL. Required.
	Dynalite string
	// DynamoDBAddr and SQSAddr are host:port to listen on; empty picks a
	// free 127.0.0.1 port.
	DynamoDBAddr, SQSAddr string
	// TTLDelay: an expired item is deleted this long after its expiry, not
	// before (make dev: FLOWGATE_DEV_TTL_DELAY).
	TTLDelay time.Duration
	// TTLInterval is how often the TTL sweeper runs; 0 means every second,
	// negative never (tests call Front.SweepTTL).
	TTLInterval time.Duration
	// StreamShards and StreamRetention: see ddbstream.Options.
	StreamShards    int
	StreamRetention time.Duration
	// Now is the one clock of the platform; nil means time.Now.
	Now func() time.Time
	// Region and Account; defaults us-east-1 and 000000000000.
	Region, Account string
	// Log gets what goes wrong in the background; nil discards it.
	Log *slog.Logger
}

// Platform is the running emulation.
type Platform struct {
	// DynamoDBEndpoint serves the DynamoDB API and the DynamoDB Streams
	// API; SQSEndpoint the SQS API. Both http://127.0.0.1:port.
	DynamoDBEndpoint, SQSEndpoint string

	Front   *ddbfront.Front
	Streams *ddbstream.Streams
	SQS     *sqslocal.Server

	opt     Options
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	servers []*http.Server
}

// Start starts the platform. The caller must call Stop.
func Start(ctx context.Context, opt Options) (_ *Platform, err error) {
	if opt.Dynalite == "" {
		return nil, errors.New("platform: no dynalite URL")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Account == "" {
		opt.Account = "000000000000"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	p := &Platform{opt: opt}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	p.Streams = ddbstream.New(ddbstream.Options{Region: opt.Region, Account: opt.Account, Shards: opt.StreamShards,
		Retention: opt.StreamRetention, Now: opt.Now})
	p.Front, err = ddbfront.New(ddbfront.Options{Dynalite: opt.Dynalite, Streams: p.Streams, TTLDelay: opt.TTLDelay,
		TTLInterval: max(opt.TTLInterval, 0), Now: opt.Now, Log: opt.Log})
	if err != nil {
		return nil, err
	}
	p.SQS = sqslocal.New(sqslocal.Options{Region: opt.Region, Account: opt.Account, Now: opt.Now})
	if p.DynamoDBEndpoint, err = p.serve(opt.DynamoDBAddr, p.Front); err != nil {
		return nil, err
	}
	if p.SQSEndpoint, err = p.serve(opt.SQSAddr, p.SQS); err != nil {
		return nil, err
	}
	p.SQS.SetEndpoint(p.SQSEndpoint)
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	if opt.TTLInterval >= 0 {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.Front.Run(run) }()
	}
	return p, nil
}

func (p *Platform) serve(addr string, h http.Handler) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("platform: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	p.servers = append(p.servers, srv)
	p.wg.Add(1)
	go func() { defer p.wg.Done(); srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Stop stops the servers and the sweeper. Mappings are the caller's to
// stop (first).
func (p *Platform) Stop() {
	if p.cancel != nil {
		p.cancel()
	}
	for _, s := range p.servers {
		s.Close()
	}
	p.wg.Wait()
}

// Env is the environment that points the AWS SDK at the platform (on top of
// localaws's, which sets credentials and region).
func (p *Platform) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_DYNAMODB=" + p.DynamoDBEndpoint,
		"AWS_ENDPOINT_URL_DYNAMODB_STREAMS=" + p.DynamoDBEndpoint,
		"AWS_ENDPOINT_URL_SQS=" + p.SQSEndpoint,
	}
}

// SetEnv applies Env to this process.
func (p *Platform) SetEnv() {
	for _, kv := range p.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
}

func (p *Platform) creds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider("devstack", "devstack", "")
}

// DynamoDB returns an SDK client for the platform's DynamoDB, whatever the
// environment says.
func (p *Platform) DynamoDB() *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{Region: p.opt.Region, BaseEndpoint: aws.String(p.DynamoDBEndpoint), Credentials: p.creds()})
}

// DynamoDBStreams returns an SDK client for the platform's Streams API.
func (p *Platform) DynamoDBStreams() *dynamodbstreams.Client {
	return dynamodbstreams.New(dynamodbstreams.Options{Region: p.opt.Region, BaseEndpoint: aws.String(p.DynamoDBEndpoint), Credentials: p.creds()})
}

// SQSClient returns an SDK client for the platform's SQS.
func (p *Platform) SQSClient() *sqs.Client {
	return sqs.New(sqs.Options{Region: p.opt.Region, BaseEndpoint: aws.String(p.SQSEndpoint), Credentials: p.creds()})
}

// MappingOptions say which function's stream events to run, and against
// what.
type MappingOptions struct {
	// Template is the SAM template's path; Function the function's logical
	// ID in it.
	Template, Function string
	// Tables maps the template's table logical IDs to the tables' names;
	// the table must exist with a stream.
	Tables map[string]string
	// Queues maps the template's on-failure queue logical IDs to queue
	// names; the queue is created if need be.
	Queues map[string]string
	// Invoke runs the function.
	Invoke esm.Function
	// Override, if set, adjusts each mapping's options before it starts.
	Override func(*esm.Options)
}

// StartMappings starts an event source mapping for each DynamoDB event of
// the function in the template. The caller stops them (before Stop).
func (p *Platform) StartMappings(ctx context.Context, mo MappingOptions) (_ []*esm.Mapping, err error) {
	sources, err := esm.LoadTemplate(mo.Template, mo.Function)
	if err != nil {
		return nil, err
	}
	var started []*esm.Mapping
	defer func() {
		if err != nil {
			for _, m := range started {
				m.Stop()
			}
		}
	}()
	for _, src := range sources {
		opt := esm.Options{Config: src.Config, Streams: p.DynamoDBStreams(), Function: mo.Invoke, Now: p.opt.Now,
			Region: p.opt.Region, Account: p.opt.Account, Log: p.opt.Log}
		table := mo.Tables[src.Table]
		if table == "" {
			return nil, fmt.Errorf("platform: %s's event %s reads table %s: MappingOptions.Tables has no name for it", src.Function, src.Event, src.Table)
		}
		out, err := p.DynamoDB().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return nil, fmt.Errorf("platform: table %s: %w", table, err)
		}
		if opt.StreamARN = aws.ToString(out.Table.LatestStreamArn); opt.StreamARN == "" {
			return nil, fmt.Errorf("platform: table %s has no stream (create it with a StreamSpecification)", table)
		}
		if src.OnFailure != "" {
			name := mo.Queues[src.OnFailure]
			if name == "" {
				return nil, fmt.Errorf("platform: %s's event %s gives up to %s: MappingOptions.Queues has no name for it", src.Function, src.Event, src.OnFailure)
			}
			url, _, err := p.SQS.CreateQueue(name)
			if err != nil {
				return nil, err
			}
			opt.OnFailure = esm.SQSDestination{Client: p.SQSClient(), QueueURL: url}
		}
		if mo.Override != nil {
			mo.Override(&opt)
		}
		m, err := esm.Start(ctx, opt)
		if err != nil {
			return nil, err
		}
		started = append(started, m)
	}
	return started, nil
}
