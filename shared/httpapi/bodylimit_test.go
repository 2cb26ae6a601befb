package httpapi_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/metrics"
)

// TestBodyOverTheLimit: a POST body past the handler's size limit is a 413
// that says so, whether the limit is crossed among the form's parts (counted
// as body_too_large) or inside the chunk's bytes (counted as limit_exceeded,
// as the upload service answers it); nothing is counted.
func TestBodyOverTheLimit(t *testing.T) {
	m := metrics.New()
	e := newEnv(t, func(h *httpapi.Handler) { h.Metrics = m })
	// The limit is the largest chunk plus what DefaultMaxParts fields may add.
	limit := testLimits.MaxChunkSize + int64(httpapi.DefaultMaxParts)*(httpapi.DefaultMaxFieldBytes+512)

	// Among the parts: a preamble (lines the reader skips) longer than the
	// limit before the first one.
	f := newFile(81, 3000, 1000, true)
	ct, body := multipartBody(flowParts(f.params(1), f.chunk(1)))
	line := append(bytes.Repeat([]byte{'p'}, 998), '\r', '\n')
	preamble := bytes.Repeat(line, int(limit)/len(line)+1)
	wantStatus(t, e.raw(ct, append(preamble, body...), nil), 413, "over the size limit")

	// Inside the chunk: a field part whose header takes all but a few hundred
	// bytes of the limit, so that the file part crosses it.
	g := newFile(82, 3000, 1000, true)
	ct, body = multipartBody(flowParts(g.params(1), g.chunk(1)))
	boundary := strings.TrimPrefix(ct, "multipart/form-data; boundary=")
	pad := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"note\"\r\nX-Pad: %s\r\n\r\nx\r\n",
		boundary, strings.Repeat("p", int(limit)-len(body)+500))
	wantStatus(t, e.raw(ct, append([]byte(pad), body...), nil), 413, "over the size limit")
	if st := e.status(g); st.Received != 0 {
		t.Fatalf("a chunk over the body limit was counted: %+v", st)
	}

	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for _, want := range []string{
		`flowgate_rejections_total{reason="body_too_large",status="413"} 1` + "\n",
		`flowgate_rejections_total{reason="limit_exceeded",status="413"} 1` + "\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}
