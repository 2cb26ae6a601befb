package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// TestNamespacesNeverMix: alice and bob upload different files that flow.js
// gives the same identifier (same size, same name), behind a proxy that sets
// X-Flowgate-User. Neither may see, count or receive the other's chunks.
func TestNamespacesNeverMix(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "FLOWGATE_NAMESPACE_HEADER=X-Flowgate-User")
	alice := srv.client("X-Flowgate-User", "alice")
	bob := srv.client("X-Flowgate-User", "bob")
	carol := srv.client("X-Flowgate-User", "carol")

	const size = 1<<20 + 5
	opts := flowclient.Options{ChunkSize: 64 << 10, TestChunks: true, Shuffle: true, Duplicates: 0.2, MaxRetries: 2, RetryInterval: 20 * time.Millisecond}
	a := upload{name: "report.pdf", data: randomFile(1, size), opts: opts}
	b := upload{name: "report.pdf", data: randomFile(2, size), opts: opts}
	b.opts.Seed = 2
	total := a.geometry(t).TotalChunks
	if a.geometry(t).Identifier != b.geometry(t).Identifier {
		t.Fatal("the two files should share a flow identifier")
	}

	// Alice sends the first half of her file.
	half := allChunks(total / 2)
	aFirst := a
	aFirst.opts.Chunks, aFirst.opts.Shuffle = half, false
	if _, err := aFirst.send(ctx, alice); err != nil {
		t.Fatal(err)
	}

	// Bob's test GETs must not find alice's chunks: he sends all of his.
	stB, err := b.send(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if len(stB.Present) != 0 || !slices.Equal(stB.Posted, allChunks(total)) {
		t.Errorf("bob: chunks present %v, posted %v; want none present, all posted", stB.Present, stB.Posted)
	}
	doneB, err := b.wait(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	checkFinished(t, dataDir, doneB, b.data)

	// Bob's upload neither completed nor touched alice's.
	stA, err := alice.Status(ctx, a.opts, a.size(), a.name)
	if err != nil {
		t.Fatal(err)
	}
	if stA.State != "receiving" || stA.Received != len(half) || stA.Total != total {
		t.Errorf("alice after bob finished: %+v, want receiving %d/%d", stA, len(half), total)
	}
	// Someone else sees nothing at all.
	if st, err := carol.Status(ctx, a.opts, a.size(), a.name); err != nil || st.State != "unknown" {
		t.Errorf("carol's status for the same identifier: %+v, %v; want unknown", st, err)
	}
	// Without the header there is no namespace to work in: refused, never
	// served from someone's namespace or the public one.
	g := a.geometry(t)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/upload?"+queryOf(g.Params(1)), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("test GET without X-Flowgate-User: status %d, want a 4xx", resp.StatusCode)
	}

	// In her own namespace the identifier is taken by her upload in progress:
	// another geometry for it is a conflict (409), which flow.js retries
	// and then gives up on.
	other := a
	other.opts.ChunkSize, other.opts.MaxRetries, other.opts.Chunks = 32<<10, 0, []int{1}
	other.opts.TestChunks, other.opts.Duplicates = false, 0
	_, err = other.send(ctx, alice)
	var ce *flowclient.ChunkError
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict {
		t.Errorf("alice, same identifier with another chunk size: %v, want status 409", err)
	}

	// Alice resumes: exactly her first half is there, the rest is sent.
	stA2, err := a.send(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stA2.Present, half) || len(stA2.Posted) != total-len(half) {
		t.Errorf("alice resumes: present %v, %d posted; want present %v and the other %d posted", stA2.Present, len(stA2.Posted), half, total-len(half))
	}
	doneA, err := a.wait(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	checkFinished(t, dataDir, doneA, a.data)
	if doneA.Location == doneB.Location {
		t.Errorf("alice and bob share the location %s", doneA.Location)
	}
	// Bob's file is still his after alice's completed.
	if doneB2, err := b.wait(ctx, bob); err != nil {
		t.Error(err)
	} else {
		checkFinished(t, dataDir, doneB2, b.data)
	}
	if got := finishedFiles(t, dataDir); len(got) != 2 {
		t.Errorf("files/ holds %v, want two files", got)
	}
	checkStagingEmpty(t, dataDir)
}

// queryOf encodes fields for a hand-made request.
func queryOf(fields []flowclient.Field) string {
	q := make([]string, 0, len(fields))
	for _, f := range fields {
		q = append(q, f.Name+"="+url.QueryEscape(f.Value))
	}
	return strings.Join(q, "&")
}
