package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// settle polls an upload's status until it is complete, failed with a
// reason, or unknown (its record gone), and returns that status; an error
// means it was none of these within bound (the last status says where it
// was), or the status could not be read.
func settle(ctx context.Context, c *flowclient.Client, u soakUpload, bound time.Duration) (flowclient.Status, error) {
	deadline := time.Now().Add(bound)
	var last flowclient.Status
	var lastErr error
	for {
		st, err := c.Status(ctx, u.opts, int64(len(u.data)), u.name)
		if err == nil {
			last, lastErr = st, nil
			switch {
			case st.State == "complete", st.State == "unknown":
				return st, nil
			case st.State == "failed" && st.Error != "":
				return st, nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return last, fmt.Errorf("no settled status within %v: %w", bound, lastErr)
			}
			return last, fmt.Errorf("%s (%d of %d chunks, %q) %v after its last chunk", last.State, last.Received, last.Total, last.Error, bound)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ChildStats add up the processes of one name.
type ChildStats struct {
	N   int
	RSS int64
}

// descendants are every process under pid, children first.
func descendants(pid int) []int {
	var out []int
	for _, c := range proc.Children(pid) {
		out = append(out, c)
		out = append(out, descendants(c)...)
	}
	return out
}

// StackStats is the part of make dev's GET /devstack/stats the soak
// reports (see package devserver).
type StackStats struct {
	Upload struct {
		Invokes []int `json:"invocationsPerInstance"`
		Errors  int   `json:"errors"`
	} `json:"upload"`
	Assemble struct {
		Invokes []int `json:"invocationsPerInstance"`
		Errors  int   `json:"errors"`
	} `json:"assemble"`
	Mapping struct {
		Read, Filtered, Invocations, FunctionErrors, Retries, Bisections int
		Duplicates, Discarded, DestinationMessages, Pending              int
	} `json:"mapping"`
	Redrives struct {
		Runs     int `json:"runs"`
		Errors   int `json:"errors"`
		Replayed int `json:"replayed"`
		Dropped  int `json:"dropped"`
		Owed     int `json:"owed"`
		Driven   int `json:"driven"`
	} `json:"redrives"`
}

func readStackStats(ctx context.Context, base string) (*StackStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/devstack/stats", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /devstack/stats: %s", resp.Status)
	}
	var st StackStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}
