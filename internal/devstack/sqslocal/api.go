package sqslocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TargetPrefix is the X-Amz-Target prefix of the SQS JSON API.
const TargetPrefix = "AmazonSQS."

// Error is an SQS error: HTTP 400, {"__type": "com.amazonaws.sqs#Code"},
// and the query protocol's code in x-amzn-query-error for SDKs that want it.
type Error struct {
	Code, QueryCode, Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func apiErr(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// ServeHTTP answers an SQS request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeError(w, apiErr("UnsupportedOperation", "only the AWS JSON protocol (X-Amz-Target: AmazonSQS.*) is emulated"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, apiErr("InvalidParameterValue", "read body: %v", err))
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	var out any
	decode := func(v any) bool {
		if err = json.Unmarshal(body, v); err != nil {
			err = apiErr("InvalidParameterValue", "%v", err)
			return false
		}
		return true
	}
	switch op {
	case "CreateQueue":
		var in struct {
			QueueName  string
			Attributes map[string]string
			Tags       map[string]string
		}
		if decode(&in) {
			if err = s.createQueue(in.QueueName, in.Attributes); err == nil {
				out = map[string]string{"QueueUrl": s.QueueURL(in.QueueName)}
			}
		}
	case "GetQueueUrl":
		var in struct{ QueueName string }
		if decode(&in) {
			s.mu.Lock()
			q := s.queues[in.QueueName]
			s.mu.Unlock()
			if q == nil {
				err = queueMissing()
			} else {
				out = map[string]string{"QueueUrl": s.QueueURL(in.QueueName)}
			}
		}
	case "ListQueues":
		var in struct{ QueueNamePrefix string }
		if decode(&in) {
			s.mu.Lock()
			urls := []string{}
			for _, n := range sortedNames(s.queues) {
				if strings.HasPrefix(n, in.QueueNamePrefix) {
					urls = append(urls, s.endpoint+"/"+s.opt.Account+"/"+n)
				}
			}
			s.mu.Unlock()
			out = map[string][]string{"QueueUrls": urls}
		}
	case "DeleteQueue", "PurgeQueue":
		var in struct{ QueueUrl string }
		if decode(&in) {
			s.mu.Lock()
			var q *queue
			if q, err = s.queueByURL(in.QueueUrl); err == nil {
				if op == "DeleteQueue" {
					delete(s.queues, q.name)
				} else {
					q.messages = nil
				}
				out = struct{}{}
			}
			s.mu.Unlock()
		}
	case "SendMessage":
		var in sendInput
		if decode(&in) {
			out, err = s.send(in)
		}
	case "ReceiveMessage":
		var in receiveInput
		if decode(&in) {
			out, err = s.receive(r, in)
		}
	case "DeleteMessage":
		var in struct{ QueueUrl, ReceiptHandle string }
		if decode(&in) {
			out, err = s.deleteMessage(in.QueueUrl, in.ReceiptHandle)
		}
	case "ChangeMessageVisibility":
		var in struct {
			QueueUrl, ReceiptHandle string
			VisibilityTimeout       int
		}
		if decode(&in) {
			out, err = s.changeVisibility(in.QueueUrl, in.ReceiptHandle, in.VisibilityTimeout)
		}
	case "GetQueueAttributes":
		var in struct {
			QueueUrl       string
			AttributeNames []string
		}
		if decode(&in) {
			out, err = s.attributes(in.QueueUrl, in.AttributeNames)
		}
	default:
		err = apiErr("UnsupportedOperation", "%s is not emulated by the dev stack", op)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	status := http.StatusBadRequest
	if !errors.As(err, &e) {
		e = &Error{Code: "InternalError", Message: err.Error()}
		status = http.StatusInternalServerError
	}
	query := e.QueryCode
	if query == "" {
		query = e.Code
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", query+";Sender")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.sqs#" + e.Code, "message": e.Message})
	w.Write(b)
}

type sendInput struct {
	QueueUrl, MessageBody   string
	DelaySeconds            *int
	MessageAttributes       map[string]json.RawMessage
	MessageSystemAttributes map[string]json.RawMessage
	MessageGroupId          string
}

func (s *Server) send(in sendInput) (any, error) {
	if len(in.MessageAttributes) > 0 || len(in.MessageSystemAttributes) > 0 || in.MessageGroupId != "" {
		return nil, apiErr("UnsupportedOperation", "message attributes and FIFO fields are not emulated by the dev stack")
	}
	if in.MessageBody == "" || !utf8.ValidString(in.MessageBody) || !validBody(in.MessageBody) {
		return nil, apiErr("InvalidMessageContents", "the message body is empty or has characters SQS does not take")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queueByURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if max, _ := strconv.Atoi(q.attrs["MaximumMessageSize"]); len(in.MessageBody) > max {
		return nil, apiErr("InvalidParameterValue", "One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", max)
	}
	delay, _ := strconv.Atoi(q.attrs["DelaySeconds"])
	if in.DelaySeconds != nil {
		if *in.DelaySeconds < 0 || *in.DelaySeconds > 900 {
			return nil, apiErr("InvalidParameterValue", "DelaySeconds must be 0 to 900")
		}
		delay = *in.DelaySeconds
	}
	now := s.opt.Now()
	m := &message{id: newID(), body: in.MessageBody, md5: md5hex(in.MessageBody), sent: now,
		visibleAt: now.Add(time.Duration(delay) * time.Second)}
	q.messages = append(q.messages, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	return map[string]string{"MessageId": m.id, "MD5OfMessageBody": m.md5}, nil
}

type receiveInput struct {
	QueueUrl                    string
	MaxNumberOfMessages         *int
	VisibilityTimeout           *int
	WaitTimeSeconds             *int
	AttributeNames              []string
	MessageSystemAttributeNames []string
}

type outMessage struct {
	MessageId, ReceiptHandle, MD5OfBody, Body string
	Attributes                                map[string]string `json:",omitempty"`
}

func (s *Server) receive(r *http.Request, in receiveInput) (any, error) {
	max := 1
	if in.MaxNumberOfMessages != nil {
		if max = *in.MaxNumberOfMessages; max < 1 || max > 10 {
			return nil, apiErr("InvalidParameterValue", "MaxNumberOfMessages must be 1 to 10")
		}
	}
	if in.VisibilityTimeout != nil && (*in.VisibilityTimeout < 0 || *in.VisibilityTimeout > 43200) {
		return nil, apiErr("InvalidParameterValue", "VisibilityTimeout must be 0 to 43200")
	}
	s.mu.Lock()
	q, err := s.queueByURL(in.QueueUrl)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	wait, _ := strconv.Atoi(q.attrs["ReceiveMessageWaitTimeSeconds"])
	s.mu.Unlock()
	if in.WaitTimeSeconds != nil {
		if wait = *in.WaitTimeSeconds; wait < 0 || wait > 20 {
			return nil, apiErr("InvalidParameterValue", "WaitTimeSeconds must be 0 to 20")
		}
	}
	want := map[string]bool{}
	for _, a := range append(in.AttributeNames, in.MessageSystemAttributeNames...) {
		want[a] = true
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		s.mu.Lock()
		q, err := s.queueByURL(in.QueueUrl)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		msgs := s.takeLocked(q, max, in.VisibilityTimeout, want)
		arrived := s.arrived
		s.mu.Unlock()
		if len(msgs) > 0 || !time.Now().Before(deadline) {
			return map[string][]outMessage{"Messages": msgs}, nil
		}
		// Wake on a new message, or now and then for one the clock made
		// visible.
		t := time.NewTimer(min(time.Until(deadline), 100*time.Millisecond))
		select {
		case <-arrived:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, r.Context().Err()
		}
		t.Stop()
	}
}

func (s *Server) takeLocked(q *queue, max int, visibility *int, want map[string]bool) []outMessage {
	now := s.opt.Now()
	s.expireLocked(q, now)
	vis, _ := strconv.Atoi(q.attrs["VisibilityTimeout"])
	if visibility != nil {
		vis = *visibility
	}
	out := []outMessage{}
	for _, m := range q.messages {
		if len(out) == max {
			break
		}
		if m.visibleAt.After(now) {
			continue
		}
		m.receives++
		if m.receives == 1 {
			m.firstReceive = now
		}
		m.receipt = m.id + "#" + newID()
		m.visibleAt = now.Add(time.Duration(vis) * time.Second)
		o := outMessage{MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: m.md5, Body: m.body}
		all := map[string]string{
			"ApproximateReceiveCount":          strconv.Itoa(m.receives),
			"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
			"SenderId":                         s.opt.Account,
		}
		for k, v := range all {
			if want["All"] || want[k] {
				if o.Attributes == nil {
					o.Attributes = map[string]string{}
				}
				o.Attributes[k] = v
			}
		}
		out = append(out, o)
	}
	return out
}

// byReceipt finds the message a receipt handle was given for.
func (s *Server) byReceipt(queueURL, receipt string) (*queue, int, error) {
	q, err := s.queueByURL(queueURL)
	if err != nil {
		return nil, 0, err
	}
	id, _, ok := strings.Cut(receipt, "#")
	if !ok {
		return nil, 0, apiErr("ReceiptHandleIsInvalid", "The input receipt handle %q is not a valid receipt handle.", receipt)
	}
	for i, m := range q.messages {
		if m.id == id {
			return q, i, nil
		}
	}
	return q, -1, nil
}

func (s *Server) deleteMessage(queueURL, receipt string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, i, err := s.byReceipt(queueURL, receipt)
	if err != nil {
		return nil, err
	}
	// A handle from an earlier receive (the message was received again
	// since) deletes nothing, as on AWS: only the latest receiver may.
	if i >= 0 && q.messages[i].receipt == receipt {
		q.messages = append(q.messages[:i], q.messages[i+1:]...)
	}
	return struct{}{}, nil
}

func (s *Server) changeVisibility(queueURL, receipt string, timeout int) (any, error) {
	if timeout < 0 || timeout > 43200 {
		return nil, apiErr("InvalidParameterValue", "VisibilityTimeout must be 0 to 43200")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, i, err := s.byReceipt(queueURL, receipt)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	if i < 0 || q.messages[i].receipt != receipt || !q.messages[i].visibleAt.After(now) {
		return nil, apiErr("MessageNotInflight", "Value %s for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.", receipt)
	}
	q.messages[i].visibleAt = now.Add(time.Duration(timeout) * time.Second)
	if timeout == 0 {
		close(s.arrived)
		s.arrived = make(chan struct{})
	}
	return struct{}{}, nil
}

func (s *Server) attributes(queueURL string, names []string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queueByURL(queueURL)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	s.expireLocked(q, now)
	visible, inflight, delayed := 0, 0, 0
	for _, m := range q.messages {
		switch {
		case !m.visibleAt.After(now):
			visible++
		case m.receives > 0:
			inflight++
		default:
			delayed++
		}
	}
	all := map[string]string{
		"ApproximateNumberOfMessages":           strconv.Itoa(visible),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inflight),
		"ApproximateNumberOfMessagesDelayed":    strconv.Itoa(delayed),
		"QueueArn":                              s.QueueARN(q.name),
		"CreatedTimestamp":                      strconv.FormatInt(q.created.Unix(), 10),
	}
	for k, v := range q.attrs {
		all[k] = v
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			out = all
			break
		}
		v, ok := all[n]
		if !ok {
			return nil, apiErr("InvalidAttributeName", "Unknown or unemulated attribute %s.", n)
		}
		out[n] = v
	}
	return map[string]map[string]string{"Attributes": out}, nil
}
