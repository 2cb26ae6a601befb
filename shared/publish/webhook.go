package publish

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// Webhook POSTs each event as JSON to URL. With a Secret, the body is signed:
// the X-Flowgate-Signature header carries "sha256=" and the hex HMAC-SHA256 of
// the body, so the receiver can tell the call came from this server.
type Webhook struct {
	URL    string
	Secret string
	Client *http.Client // nil: a client with a 10 s timeout
}

// webhookBody is what the receiver gets: the event with its name, in the
// same shape as an EventBridge event's detail-type and detail.
type webhookBody struct {
	Source     string       `json:"source"`
	DetailType string       `json:"detail-type"`
	Detail     upload.Event `json:"detail"`
}

func (w Webhook) Publish(ctx context.Context, ev upload.Event) error {
	body, err := json.Marshal(webhookBody{Source: upload.EventSource, DetailType: upload.EventDetailType, Detail: ev})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "flowgate")
	if w.Secret != "" {
		req.Header.Set("X-Flowgate-Signature", "sha256="+Sign(w.Secret, body))
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s answered %s", w.URL, resp.Status)
	}
	return nil
}

// Sign returns the hex HMAC-SHA256 of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
