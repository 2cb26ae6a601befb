// Package s3notify is make dev's stand-in for S3's event notifications on
// the direct data path: MinIO's bucket notifications become the events the
// counting function gets on AWS, delivered as Lambda delivers an
// asynchronous invocation.
//
// MinIO posts each ObjectCreated event of the staging prefix to a webhook
// target (MINIO_NOTIFY_WEBHOOK_*_FLOWGATE, configured at its start: see
// MinIOEnv), with a queue directory, so that an event is kept on disk and
// posted again until the Receiver takes it: at least once, as S3. The
// Receiver answers at once (one event it cannot use must not hold up the
// others behind it in MinIO's queue), turns the event into the form the
// template's rule gives the function (Convert: S3's notification to Lambda,
// the form of events/count-s3-object-created.json), and invokes the
// function with Lambda's asynchronous semantics: an invocation that fails
// is tried twice more after a delay, then handed to the on-failure
// destination (an SQS queue, which the re-drive replays) as Lambda's
// record of the failure.
//
// DropProbability drops events as if S3 had never sent them: what the
// re-drive's check of stored chunks is for.
package s3notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TargetID names the webhook target in MinIO's configuration; its ARN is
// arn:minio:sqs::FLOWGATE:webhook.
const TargetID = "FLOWGATE"

// LambdaRetryDelays are the delays before Lambda's two retries of a failed
// asynchronous invocation (AWS documents about one and two minutes).
var LambdaRetryDelays = []time.Duration{time.Minute, 2 * time.Minute}

// Options configure a Receiver's delivery.
type Options struct {
	// Invoke invokes the function with an event (its JSON); an error is a
	// failed invocation.
	Invoke func(ctx context.Context, event []byte) ([]byte, error)
	// Failed hands Lambda's record of an invocation that failed for good
	// to the on-failure destination.
	Failed func(ctx context.Context, record []byte) error
	// RetryDelays are the waits before each retry (nil: LambdaRetryDelays).
	RetryDelays []time.Duration
	// DropProbability is the chance that an event is dropped, never
	// delivered (0 to 1).
	DropProbability float64
	// Drop, if set, is asked for each event (its object key) before the
	// probability: true drops it.
	Drop func(key string) bool
	// Workers is how many invocations run at once (0: 2).
	Workers int
	// Region goes into the events (us-east-1 if empty).
	Region string
	Log    *slog.Logger
}

// Receiver takes MinIO's notifications and delivers them.
type Receiver struct {
	ln    net.Listener
	srv   *http.Server
	token string

	opt    Options
	work   chan pending
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	timers sync.WaitGroup

	mu    sync.Mutex
	stats Stats
	stop  sync.Once
}

// Stats count what the Receiver did.
type Stats struct {
	Received  int `json:"received"`  // events MinIO posted (records)
	Dropped   int `json:"dropped"`   // dropped on purpose (DropProbability, Drop)
	Invoked   int `json:"invoked"`   // invocations, retries included
	Succeeded int `json:"succeeded"` // events the function handled
	Retried   int `json:"retried"`   // retries after a failed invocation
	Failed    int `json:"failed"`    // events handed to the on-failure destination
	Unusable  int `json:"unusable"`  // posts that held no event it could convert
}

type pending struct {
	event    []byte
	key      string
	attempts int
}

// Listen opens the Receiver's address (127.0.0.1:0 picks a port), so that
// MinIO can be told where to post before either runs.
func Listen(addr string) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3notify: %w", err)
	}
	b := make([]byte, 16)
	rand.Read(b)
	return &Receiver{ln: ln, token: hex.EncodeToString(b), work: make(chan pending, 1024)}, nil
}

// Endpoint is where MinIO posts.
func (r *Receiver) Endpoint() string { return "http://" + r.ln.Addr().String() + "/minio/events" }

// MinIOEnv is MinIO's environment for the webhook target: its endpoint,
// a token it must send (checked), and a queue directory (queueDir, which
// must exist), without which MinIO drops an event it could not post.
// The region makes MinIO's records carry one, as S3's do.
func (r *Receiver) MinIOEnv(queueDir, region string) []string {
	return []string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_" + TargetID + "=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_" + TargetID + "=" + r.Endpoint(),
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_" + TargetID + "=" + r.token,
		"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_" + TargetID + "=" + queueDir,
		"MINIO_SITE_REGION=" + region,
	}
}

// Configure sends the bucket's ObjectCreated events under prefix to the
// webhook target, with the ordinary S3 call.
func Configure(ctx context.Context, c *s3.Client, bucket, prefix string) error {
	_, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &types.NotificationConfiguration{
			QueueConfigurations: []types.QueueConfiguration{{
				Id:       aws.String("flowgate-chunks"),
				QueueArn: aws.String("arn:minio:sqs::" + TargetID + ":webhook"),
				Events:   []types.Event{types.EventS3ObjectCreated},
				Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{
					FilterRules: []types.FilterRule{{Name: types.FilterRuleNamePrefix, Value: aws.String(prefix)}},
				}},
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("s3notify: configure the bucket's notifications: %w", err)
	}
	return nil
}

// Start serves MinIO's posts and delivers them with opt.
func (r *Receiver) Start(opt Options) {
	if opt.RetryDelays == nil {
		opt.RetryDelays = LambdaRetryDelays
	}
	if opt.Workers <= 0 {
		opt.Workers = 2
	}
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	r.opt = opt
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(r.ln)
	for range opt.Workers {
		r.wg.Go(r.deliver)
	}
}

// Stop stops taking posts and delivering (what is pending is lost: MinIO
// has posted it, as S3 would have sent it, and the re-drive's check of
// stored chunks is there for what is lost).
func (r *Receiver) Stop() { r.stop.Do(r.stopOnce) }

func (r *Receiver) stopOnce() {
	if r.srv != nil {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.srv.Shutdown(shut)
		cancel()
	} else {
		r.ln.Close()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.timers.Wait()
}

// Stats returns what the Receiver did so far.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Receiver) count(f func(*Stats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// ServeHTTP takes one of MinIO's posts.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.Header.Get("Authorization") != "Bearer "+r.token {
		http.Error(w, "not MinIO's notification", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	// Answered 200 whatever happens next: MinIO would otherwise post it
	// again and again, holding up every later event in its queue.
	w.WriteHeader(http.StatusOK)
	evs, keys, cerr := Convert(body, r.opt.Region)
	if err != nil || cerr != nil {
		r.count(func(s *Stats) { s.Unusable++ })
		r.opt.Log.Warn("a notification from MinIO that is not an S3 event; dropped", "err", errors.Join(err, cerr))
		return
	}
	for i, ev := range evs {
		r.count(func(s *Stats) { s.Received++ })
		if (r.opt.Drop != nil && r.opt.Drop(keys[i])) || (r.opt.DropProbability > 0 && mrand.Float64() < r.opt.DropProbability) {
			r.count(func(s *Stats) { s.Dropped++ })
			r.opt.Log.Info("notification dropped on purpose (FLOWGATE_DEV_DROP_NOTIFICATIONS)", "key", keys[i])
			continue
		}
		r.enqueue(pending{event: ev, key: keys[i]})
	}
}

func (r *Receiver) enqueue(p pending) {
	select {
	case r.work <- p:
	case <-r.ctx.Done():
	}
}

// deliver invokes the function with each event, as Lambda invokes a
// function asynchronously.
func (r *Receiver) deliver() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case p := <-r.work:
			r.count(func(s *Stats) { s.Invoked++ })
			_, err := r.opt.Invoke(r.ctx, p.event)
			if err == nil {
				r.count(func(s *Stats) { s.Succeeded++ })
				continue
			}
			if r.ctx.Err() != nil {
				return
			}
			if p.attempts < len(r.opt.RetryDelays) {
				delay := r.opt.RetryDelays[p.attempts]
				p.attempts++
				r.count(func(s *Stats) { s.Retried++ })
				r.opt.Log.Warn("the counting function failed; Lambda retries it", "key", p.key, "in", delay, "err", err)
				r.timers.Add(1)
				time.AfterFunc(delay, func() {
					defer r.timers.Done()
					r.enqueue(p)
				})
				continue
			}
			r.count(func(s *Stats) { s.Failed++ })
			r.opt.Log.Warn("the counting function failed for good; the event goes to its failure queue", "key", p.key, "err", err)
			if r.opt.Failed != nil {
				if ferr := r.opt.Failed(r.ctx, failureRecord(p, err)); ferr != nil {
					r.opt.Log.Error("could not hand the event to the failure queue; it is lost (the re-drive's check counts its chunk)", "err", ferr)
				}
			}
		}
	}
}

// failureRecord is Lambda's record of an asynchronous invocation that
// failed for good, as its on-failure destination gets it.
func failureRecord(p pending, err error) []byte {
	rec := map[string]any{
		"version": "1.0", "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"requestContext": map[string]any{
			"requestId": hex8(), "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:flowgate-dev-count:$LATEST",
			"condition": "RetriesExhausted", "approximateInvokeCount": p.attempts + 1,
		},
		"requestPayload":  json.RawMessage(p.event),
		"responseContext": map[string]any{"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
		"responsePayload": map[string]any{"errorMessage": err.Error(), "errorType": "errorString"},
	}
	b, _ := json.Marshal(rec)
	return b
}

func hex8() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// minioEvent is the part of MinIO's post that is used: its records, in
// S3's notification shape.
type minioEvent struct {
	Records []struct {
		EventTime string `json:"eventTime"`
		EventName string `json:"eventName"`
		AWSRegion string `json:"awsRegion"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key       string `json:"key"`
				Size      int64  `json:"size"`
				ETag      string `json:"eTag"`
				Sequencer string `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// Convert turns one of MinIO's posts into events as the counting function
// receives them on AWS (one per record), with each event's object key.
// What differs in MinIO's records: eventName has an "s3:" prefix, the
// source is "minio:s3", the version 2.0, and a 0-byte object has no size;
// the key is encoded as S3 encodes it (form-style) either way.
func Convert(body []byte, region string) (events [][]byte, keys []string, err error) {
	var in minioEvent
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, err
	}
	if len(in.Records) == 0 {
		return nil, nil, errors.New("no records")
	}
	for _, rec := range in.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("object key %q: %w", rec.S3.Object.Key, err)
		}
		if rec.AWSRegion != "" {
			region = rec.AWSRegion
		}
		ev := map[string]any{"Records": []any{map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region,
			"eventTime": rec.EventTime, "eventName": strings.TrimPrefix(rec.EventName, "s3:"),
			"s3": map[string]any{
				"s3SchemaVersion": "1.0",
				"bucket":          map[string]any{"name": rec.S3.Bucket.Name, "arn": "arn:aws:s3:::" + rec.S3.Bucket.Name},
				"object": map[string]any{
					"key": url.QueryEscape(key), "size": rec.S3.Object.Size,
					"eTag": rec.S3.Object.ETag, "sequencer": rec.S3.Object.Sequencer,
				},
			},
		}}}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, b)
		keys = append(keys, key)
	}
	return events, keys, nil
}
