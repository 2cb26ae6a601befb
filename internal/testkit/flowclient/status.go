package flowclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Status is the answer of GET <target>/status.
type Status struct {
	State    string `json:"state"` // unknown, receiving, ready, assembling, complete, failed
	Received int    `json:"received"`
	Total    int    `json:"total"`
	Size     int64  `json:"size,omitempty"`     // when complete
	Location string `json:"location,omitempty"` // when complete
	Error    string `json:"error,omitempty"`    // when failed
}

// Status asks the server where the upload of a file of size bytes called name,
// sent with opts, stands. It sends the fields of a test GET without the chunk
// number and current chunk size.
func (c *Client) Status(ctx context.Context, opts Options, size int64, name string) (Status, error) {
	g, err := NewGeometry(opts, size, name)
	if err != nil {
		return Status{}, err
	}
	url := withQuery(c.target()+"/status", encodeQuery(withExtras(opts.ExtraFields, g.StatusParams())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Status{}, err
	}
	c.addHeaders(req)
	resp, err := c.http().Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var st Status
	dec := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = dec.Decode(&e)
		return Status{}, fmt.Errorf("flowclient: status: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(e.Error))
	}
	if err := dec.Decode(&st); err != nil {
		return Status{}, fmt.Errorf("flowclient: status: %w", err)
	}
	return st, nil
}

// WaitComplete polls Status every interval (25 ms if zero) until the upload
// is complete or failed, or ctx ends. Errors on the way, such as a server
// that is restarting, are retried; the last one is returned if ctx ends.
// A failed upload returns its Status with an error.
func (c *Client) WaitComplete(ctx context.Context, opts Options, size int64, name string, interval time.Duration) (Status, error) {
	if interval <= 0 {
		interval = 25 * time.Millisecond
	}
	var (
		last    Status
		lastErr error
	)
	for {
		st, err := c.Status(ctx, opts, size, name)
		switch {
		case err != nil:
			lastErr = err
		case st.State == "complete":
			return st, nil
		case st.State == "failed":
			return st, fmt.Errorf("flowclient: upload failed: %s", st.Error)
		default:
			last, lastErr = st, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if lastErr != nil {
				return last, fmt.Errorf("flowclient: waiting for completion: %w (last error: %v)", ctx.Err(), lastErr)
			}
			return last, fmt.Errorf("flowclient: waiting for completion: %w (last state %q, %d/%d chunks)", ctx.Err(), last.State, last.Received, last.Total)
		case <-t.C:
		}
	}
}
