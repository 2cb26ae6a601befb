// Package sqslocal is a minimal Amazon SQS endpoint for the dev stack: the
// on-failure destination of the emulated DynamoDB event source mapping, and
// any queue the project's code drains with the real SDK (through
// AWS_ENDPOINT_URL_SQS). It speaks the AWS JSON 1.0 protocol the SDK's sqs
// client uses.
//
// It emulates standard queues with: CreateQueue, GetQueueUrl, ListQueues,
// DeleteQueue, PurgeQueue, SendMessage (with DelaySeconds), ReceiveMessage
// (MaxNumberOfMessages, VisibilityTimeout, long polling with
// WaitTimeSeconds, the ApproximateReceiveCount, SentTimestamp and
// ApproximateFirstReceiveTimestamp attributes), DeleteMessage (with the
// latest receipt handle), ChangeMessageVisibility and GetQueueAttributes
// (ApproximateNumberOfMessages, ...NotVisible, ...Delayed, QueueArn,
// VisibilityTimeout, MessageRetentionPeriod, CreatedTimestamp). Messages
// expire after MessageRetentionPeriod (4 days by default). Bodies are
// checked as AWS checks them (1 byte to 256 KiB) and answered with their
// MD5, which the SDK verifies. FIFO queues, message attributes, batches and
// dead-letter redrive are not emulated and are refused with a clear error.
//
// The clock (Options.Now) decides visibility, delays and retention, so tests
// move time instead of waiting; long polling waits real time (at most
// WaitTimeSeconds) for a message to arrive.
package sqslocal

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures a Server.
type Options struct {
	// Region and Account go into queue ARNs and URLs; defaults us-east-1
	// and 000000000000.
	Region, Account string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the SQS endpoint. Serve it with an http.Server after telling it
// its own URL (SetEndpoint): queue URLs are made from it.
type Server struct {
	opt Options

	mu       sync.Mutex
	endpoint string
	queues   map[string]*queue // by name
	arrived  chan struct{}     // closed and replaced when a message is sent
}

type queue struct {
	name     string
	created  time.Time
	attrs    map[string]string
	messages []*message
}

type message struct {
	id, body, md5 string
	sent          time.Time
	visibleAt     time.Time
	receipt       string // the latest receipt handle
	receives      int
	firstReceive  time.Time
}

// New returns a Server with no queues.
func New(opt Options) *Server {
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Account == "" {
		opt.Account = "000000000000"
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Server{opt: opt, queues: map[string]*queue{}, arrived: make(chan struct{})}
}

// SetEndpoint tells the server the URL it is served at.
func (s *Server) SetEndpoint(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoint = strings.TrimRight(u, "/")
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// CreateQueue creates a queue (or returns the one of that name) and returns
// its URL and ARN.
func (s *Server) CreateQueue(name string) (queueURL, arn string, err error) {
	if err := s.createQueue(name, nil); err != nil {
		return "", "", err
	}
	return s.QueueURL(name), s.QueueARN(name), nil
}

// QueueURL is the URL of the queue named name.
func (s *Server) QueueURL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint + "/" + s.opt.Account + "/" + name
}

// QueueARN is the ARN of the queue named name.
func (s *Server) QueueARN(name string) string {
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", s.opt.Region, s.opt.Account, name)
}

// QueueNameFromARN returns the queue name an SQS ARN names.
func QueueNameFromARN(arn string) (string, bool) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || !validName.MatchString(parts[5]) {
		return "", false
	}
	return parts[5], true
}

var defaultAttrs = map[string]string{
	"VisibilityTimeout":             "30",
	"MessageRetentionPeriod":        "345600",
	"DelaySeconds":                  "0",
	"ReceiveMessageWaitTimeSeconds": "0",
	"MaximumMessageSize":            "262144",
}

// attribute bounds, as AWS's.
var attrRange = map[string][2]int{
	"VisibilityTimeout":             {0, 43200},
	"MessageRetentionPeriod":        {60, 1209600},
	"DelaySeconds":                  {0, 900},
	"ReceiveMessageWaitTimeSeconds": {0, 20},
	"MaximumMessageSize":            {1024, 262144},
}

func (s *Server) createQueue(name string, attrs map[string]string) error {
	if strings.HasSuffix(name, ".fifo") {
		return apiErr("InvalidParameterValue", "FIFO queues are not emulated by the dev stack")
	}
	if !validName.MatchString(name) {
		return apiErr("InvalidParameterValue", "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	full := map[string]string{}
	for k, v := range defaultAttrs {
		full[k] = v
	}
	for k, v := range attrs {
		r, ok := attrRange[k]
		if !ok {
			return apiErr("InvalidAttributeName", "Unknown or unemulated attribute %s.", k)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < r[0] || n > r[1] {
			return apiErr("InvalidAttributeValue", "Invalid value for the parameter %s.", k)
		}
		full[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[name]; q != nil {
		for k, v := range attrs {
			if q.attrs[k] != v {
				return apiErr("QueueNameExists", "A queue already exists with the same name and a different value for attribute %s", k)
			}
		}
		return nil
	}
	s.queues[name] = &queue{name: name, created: s.opt.Now(), attrs: full}
	return nil
}

// queueByURL finds the queue a QueueUrl names (its last path element, in
// this account).
func (s *Server) queueByURL(queueURL string) (*queue, error) {
	u, err := url.Parse(queueURL)
	if err == nil {
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(parts) == 2 && parts[0] == s.opt.Account {
			if q := s.queues[parts[1]]; q != nil {
				return q, nil
			}
		}
	}
	return nil, queueMissing()
}

func queueMissing() *Error {
	return &Error{Code: "QueueDoesNotExist", QueryCode: "AWS.SimpleQueueService.NonExistentQueue",
		Message: "The specified queue does not exist."}
}

// expireLocked drops messages past the queue's retention.
func (s *Server) expireLocked(q *queue, now time.Time) {
	keep, _ := strconv.Atoi(q.attrs["MessageRetentionPeriod"])
	cut := now.Add(-time.Duration(keep) * time.Second)
	live := q.messages[:0]
	for _, m := range q.messages {
		if m.sent.After(cut) {
			live = append(live, m)
		}
	}
	clear(q.messages[len(live):])
	q.messages = live
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// validBody: SQS takes #x9, #xA, #xD and #x20 to #xD7FF, #xE000 to #xFFFD,
// #x10000 to #x10FFFF.
func validBody(b string) bool {
	for _, r := range b {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

func sortedNames(m map[string]*queue) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
