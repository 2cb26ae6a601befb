package ddbfront

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/flowgate/flowgate/internal/devstack/ddbstream"
)

// The front's own calls to dynalite (reading images, table descriptions,
// TTL scans and deletes) are plain JSON: the images it records are exactly
// what dynalite returns, with no round trip through SDK types.

// APIError is a DynamoDB error, from dynalite or the front's own.
type APIError = ddbstream.APIError

func apiErr(code, format string, a ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, a...)}
}

// writeError answers with err in DynamoDB's error format.
func writeError(w http.ResponseWriter, err error) { ddbstream.WriteError(w, err) }

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Write(b)
}

// call runs op on dynalite with in and decodes the answer into out.
func (f *Front) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.opt.Dynalite+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	// dynalite wants a signature's shape, not a valid one.
	req.Header.Set("X-Amz-Date", "20260101T000000Z")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=devstack/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=0")
	resp, err := f.opt.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("ddbfront: %s on dynalite: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("ddbfront: %s on dynalite: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return parseError(b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// parseError turns a DynamoDB error body into an *APIError.
func parseError(b []byte) error {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	if json.Unmarshal(b, &e) != nil || e.Type == "" {
		return fmt.Errorf("ddbfront: dynalite answered %q", b)
	}
	_, code, _ := strings.Cut(e.Type, "#")
	if code == "" {
		code = e.Type
	}
	if e.Message == "" {
		e.Message = e.Message2
	}
	return &APIError{Code: code, Message: e.Message}
}

func isCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// getItem reads an item consistently; nil if there is none.
func (f *Front) getItem(ctx context.Context, table string, key ddbstream.Item) (ddbstream.Item, error) {
	var out struct{ Item ddbstream.Item }
	err := f.call(ctx, "GetItem", map[string]any{"TableName": table, "Key": key, "ConsistentRead": true}, &out)
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}
