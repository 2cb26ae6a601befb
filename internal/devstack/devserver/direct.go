package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/s3notify"
	"github.com/flowgate/flowgate/shared/awsdeploy"
)

// The direct data path in make dev (FLOWGATE_DATA_PATH=direct): the
// counting function's instances, MinIO's notifications turned into S3's
// (package s3notify) and delivered to them as Lambda does, a queue for
// what they give up (the template's CountFailureQueue, replayed by the
// re-drive), and a plain-HTTP door to MinIO for browsers, which the
// upload function signs chunk URLs for.

// CountFailureQueueName stands for the template's CountFailureQueue.
const CountFailureQueueName = "flowgate-dev-count-failures"

// countInstances is how many counting function instances take the
// notifications.
const countInstances = 2

// direct is the stack's part of the direct data path.
type direct struct {
	notify   *s3notify.Receiver
	queueURL string
	door     *http.Server
	doorURL  string
	queueDir string
}

// NotificationServers starts MinIO and dynalite for a direct-mode stack,
// with MinIO posting its notifications to a Receiver, for tests that hand
// the stack their own servers (Options.Servers and Options.Notifications).
// The caller stops both.
func NotificationServers(ctx context.Context, origins string) (*localaws.Servers, *s3notify.Receiver, error) {
	recv, err := s3notify.Listen("127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "flowgate-dev-notify-")
	if err != nil {
		recv.Stop()
		return nil, nil, err
	}
	servers, err := localaws.Start(ctx, localaws.Options{MinIOEnv: minioEnv(recv, dir, origins)})
	if err != nil {
		recv.Stop()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return servers, recv, nil
}

// minioEnv configures MinIO's webhook target and its CORS origins (MinIO
// has no per-bucket CORS: the template's rule, which lets the allowed
// origins PUT, is server-wide here).
func minioEnv(recv *s3notify.Receiver, queueDir, origins string) []string {
	if strings.TrimSpace(origins) == "" {
		origins = "*"
	}
	return append(recv.MinIOEnv(queueDir, localaws.Region), "MINIO_API_CORS_ALLOW_ORIGIN="+strings.ReplaceAll(origins, " ", ""))
}

// prepare readies the direct data path before the servers start: a
// Receiver for MinIO to post to, when the stack starts MinIO itself.
func (s *Stack) prepareDirect(opt Options, vars map[string]string) ([]string, error) {
	if vars["FLOWGATE_DATA_PATH"] != awsdeploy.DataPathDirect {
		return nil, nil
	}
	s.direct = &direct{}
	if opt.Servers != nil {
		if opt.Notifications == nil {
			return nil, errors.New("devserver: a direct-mode stack on given servers needs Options.Notifications (see NotificationServers)")
		}
		s.direct.notify = opt.Notifications
		return nil, nil
	}
	recv, err := s3notify.Listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.direct.notify = recv
	if s.direct.queueDir, err = os.MkdirTemp("", "flowgate-dev-notify-"); err != nil {
		return nil, err
	}
	return minioEnv(recv, s.direct.queueDir, vars["FLOWGATE_ALLOWED_ORIGINS"]), nil
}

// openDoor serves the plain-HTTP door to MinIO and sets the upload
// function's FLOWGATE_DIRECT_ENDPOINT to it (unless it is set already).
func (s *Stack) openDoor(addr string, vars map[string]string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	client, err := s.Servers.HTTPClient()
	if err != nil {
		return err
	}
	h, err := s3notify.Door(s.Servers.S3Endpoint, client.Transport)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devserver: the S3 door: %w", err)
	}
	s.direct.door = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.direct.door.Serve(ln)
	s.direct.doorURL = "http://" + ln.Addr().String()
	if vars["FLOWGATE_DIRECT_ENDPOINT"] == "" {
		vars["FLOWGATE_DIRECT_ENDPOINT"] = s.direct.doorURL
	}
	return nil
}

// startDirect starts the counting function's instances and the delivery
// of notifications to them.
func (s *Stack) startDirect(opt Options, start func(string, int, map[string]string) (*pool, error)) error {
	var err error
	if s.count, err = start("count", countInstances, nil); err != nil {
		return err
	}
	var invoke esm.Function = s.count.invoke
	if opt.Count != nil {
		invoke = opt.Count(invoke)
	}
	sqsc := s.Platform.SQSClient()
	s.direct.notify.Start(s3notify.Options{
		Invoke: invoke,
		Failed: func(ctx context.Context, record []byte) error {
			_, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.direct.queueURL), MessageBody: aws.String(string(record))})
			return err
		},
		RetryDelays:     s.settings.NotifyRetryDelays,
		DropProbability: s.settings.DropNotifications,
		Drop:            opt.DropNotification,
		Workers:         countInstances,
		Region:          localaws.Region,
		Log:             s.log,
	})
	return nil
}

// stopDirect stops the delivery (and the Receiver, if the stack made it)
// and the door.
func (s *Stack) stopDirect() {
	if s.direct == nil {
		return
	}
	if s.direct.door != nil {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.direct.door.Shutdown(shut)
		cancel()
	}
	if s.direct.notify != nil {
		s.direct.notify.Stop()
	}
	if s.direct.queueDir != "" {
		os.RemoveAll(s.direct.queueDir)
	}
}

// DoorURL is where browsers reach MinIO on the direct data path ("" on
// the proxy path).
func (s *Stack) DoorURL() string {
	if s.direct == nil {
		return ""
	}
	return s.direct.doorURL
}
