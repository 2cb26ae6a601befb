package awsdeploy

import (
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/s3count"
	"github.com/flowgate/flowgate/shared/s3store"
)

// The data paths (FLOWGATE_DATA_PATH): proxy, where every chunk is POSTed
// to the API and the upload function stores it; direct, where the API
// signs a URL per chunk and the client PUTs the chunk into the bucket
// itself, S3's notifications starting the counting function (package
// s3count).
const (
	DataPathProxy  = "proxy"
	DataPathDirect = "direct"
)

// DirectMaxChunk is the default chunk limit of the direct data path: the
// largest object one PUT can store in S3.
const DirectMaxChunk = 5 << 30

// directMinExpiry is how many chunk URL lives an upload's idle expiry must
// be at least: a chunk stored with a URL is counted when its notification
// comes, which must find the record (refreshed when the URL was signed)
// still live, late notifications and the re-drive's check included.
const directMinExpiry = 4

func checkDirect(e *config.Env, c *Config) {
	switch c.DataPath {
	case DataPathProxy:
	case DataPathDirect:
		if c.DirectURLLife <= 0 || c.DirectURLLife > s3store.MaxURLLife {
			e.Fail("FLOWGATE_DIRECT_URL_LIFE must be from 1s to %s", s3store.MaxURLLife)
		}
		if c.IdleTTL < directMinExpiry*c.DirectURLLife {
			e.Fail("FLOWGATE_EXPIRY (%s) must be at least %d times FLOWGATE_DIRECT_URL_LIFE (%s): chunks stored with a URL must find their upload alive when they are counted",
				c.IdleTTL, directMinExpiry, c.DirectURLLife)
		}
		if c.DirectEndpoint != "" && !validEndpoint(c.DirectEndpoint) {
			e.Fail("FLOWGATE_DIRECT_ENDPOINT must be an http:// or https:// URL without a path")
		}
	default:
		e.Fail("FLOWGATE_DATA_PATH: %q is not %s or %s", c.DataPath, DataPathProxy, DataPathDirect)
	}
}

func validEndpoint(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// presigner signs chunk URLs for the endpoint clients reach: the SDK's own
// (AWS), or FLOWGATE_DIRECT_ENDPOINT (make dev's plain-HTTP door to MinIO,
// which keeps the Host the URL was signed for).
func presigner(cfg Config, awsCfg aws.Config) *s3.PresignClient {
	c := s3store.NewClient(awsCfg, func(o *s3.Options) {
		if cfg.DirectEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.DirectEndpoint)
			o.UsePathStyle = true
		}
	})
	return s3.NewPresignClient(c)
}

// CountHandler is the counting function's handler of S3's notifications.
func (d *Deployment) CountHandler() *s3count.Handler {
	return &s3count.Handler{Service: d.Service, Keys: d.Store, Bucket: d.Config.Bucket, Log: d.Log}
}

// Recounter is the direct data path's part of the re-drive: the counting
// function's failure queue, when FLOWGATE_COUNT_FAILURE_QUEUE is set, and
// the check of uploads whose URLs ran out.
func (d *Deployment) Recounter() *s3count.Recounter {
	r := &s3count.Recounter{Handler: d.CountHandler()}
	if d.Config.CountFailureQueue != "" {
		r.Failures = &s3count.Failures{Queue: sqs.NewFromConfig(d.AWS), QueueURL: d.Config.CountFailureQueue}
	}
	return r
}
