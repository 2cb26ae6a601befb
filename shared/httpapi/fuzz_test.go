package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/upload"
)

// FuzzPostChunk throws arbitrary bodies, content types and query strings at
// POST /upload on real embedded storage. Whatever arrives, the answer is a
// 200 or a 4xx with a JSON error, never a 5xx or a panic; and a 200 means the
// chunk is counted.
func FuzzPostChunk(f *testing.F) {
	file := newFile(1, 2500, 1000, false)
	ct, body := multipartBody(flowParts(file.params(1), file.chunk(1)))
	f.Add(ct, body, "")
	f.Add("application/octet-stream", file.chunk(2), file.params(2).Encode())
	f.Add(ct, body[:len(body)/2], "")
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--x--\r\n"), file.params(1).Encode())
	f.Add("multipart/form-data; boundary=\"", []byte("--"), "flowChunkNumber=1")
	rq := file.resumableParams(1, "up_")
	rct, rbody := multipartBody(filePart(file.chunk(1), "up_file", resumableFields(rq)))
	f.Add(rct, rbody, rq.Encode())
	f.Add("application/octet-stream", file.chunk(2), file.resumableParams(2, "").Encode())

	dir := f.TempDir()
	store, err := dirstore.New(dir)
	if err != nil {
		f.Fatal(err)
	}
	ledger, err := boltledger.Open(filepath.Join(dir, "ledger.db"), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ledger.Close() })
	h := &httpapi.Handler{
		Service: &upload.Service{Store: store, Ledger: ledger},
		Limits:  testLimits,
		Log:     slog.New(slog.DiscardHandler),
	}

	f.Fuzz(func(t *testing.T, contentType string, body []byte, query string) {
		req := httptest.NewRequest(http.MethodPost, "/upload", bytes.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var ok struct{ Chunk int }
			if err := json.Unmarshal(rec.Body.Bytes(), &ok); err != nil || ok.Chunk < 1 {
				t.Fatalf("200 with body %q", rec.Body.String())
			}
		case http.StatusBadRequest, http.StatusRequestTimeout, http.StatusConflict, http.StatusRequestEntityTooLarge:
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%d with body %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, contentType, rec.Body.String())
		}
		// A 200 for the well-formed seed file means its chunk is now counted.
		if rec.Code == http.StatusOK && query == file.params(2).Encode() && bytes.Equal(body, file.chunk(2)) {
			if _, counted, err := ledgertest.Lookup(context.Background(), ledger, upload.Info{Key: file.key(httpapi.PublicNamespace),
				Namespace: httpapi.PublicNamespace, Identifier: file.id}, 2); err != nil || !counted {
				t.Fatalf("chunk answered 200 but not counted (err %v)", err)
			}
		}
	})
}
