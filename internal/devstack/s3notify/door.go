package s3notify

import (
	"net/http"
	"net/http/httputil"
	"net/url"
)

// Door is a plain-HTTP door to MinIO, for browsers on make dev's direct
// data path: MinIO serves only HTTPS (the SDK streams a chunk only over
// TLS), with a certificate made at each start that no browser trusts. The
// upload function signs chunk URLs for the door's address
// (FLOWGATE_DIRECT_ENDPOINT), and the door passes each request on with the
// Host it came with, the one the URL was signed for: MinIO checks the
// signature, the length, the checksum and its CORS rules as it would for a
// browser talking to it directly. AWS needs no door: browsers reach S3's
// HTTPS endpoint.
func Door(minio string, transport http.RoundTripper) (http.Handler, error) {
	target, err := url.Parse(minio)
	if err != nil {
		return nil, err
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: transport,
	}, nil
}
