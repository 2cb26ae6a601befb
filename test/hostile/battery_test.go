package hostile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// target is one path under test: where to send requests, and how to look
// at everything it stores.
type target interface {
	// base is the API's root URL.
	base() string
	// aws reports whether requests pass through API Gateway.
	aws() bool
	// json reports whether the function gets each request as a JSON event
	// (as Lambda hands it over, under make dev and on AWS), in which
	// invalid UTF-8 in a query parameter arrives as U+FFFD.
	json() bool
	// snapshot describes everything the path stores, and the watched
	// directory around it, as name -> content digest.
	snapshot(t *testing.T) map[string]string
	// staging reports whether a snapshot name is staged data or the
	// ledger: what a valid chunk may change.
	staging(name string) bool
	// finished returns the bytes of a finished file by its status location,
	// after checking that the location is inside the finished area.
	finished(t *testing.T, location string) []byte
	// pump runs whatever drives assembly, where nothing does by itself.
	pump(ctx context.Context)
	// staged lists the staged data left.
	staged(t *testing.T) []string
}

var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil}}

func send(t *testing.T, tg target, r request) (int, []byte) {
	t.Helper()
	resp, err := client.Do(r.build(tg.base()))
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, b
}

// runBattery sends every case, checking after each that the answer is the
// one wanted, that nothing stored changed (or, for accepted cases, only
// staged data), and that the case's own file is still taken; then it
// finishes every case's file and checks each one's bytes.
func runBattery(t *testing.T, tg target, e env) {
	cs := cases()
	refused := 0
	for _, c := range cs {
		if !c.accepted {
			refused++
		}
	}
	if refused < 40 {
		t.Fatalf("only %d hostile cases", refused)
	}
	t.Logf("%d cases (%d refused, %d accepted)", len(cs), refused, len(cs)-refused)
	files := make([]hfile, len(cs))
	for i, c := range cs {
		f := caseFile(i)
		files[i] = f
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				for _, r := range c.setup(f) {
					status, body := send(t, tg, r)
					checkAnswer(t, status, body, http.StatusOK)
				}
			}
			before := tg.snapshot(t)
			status, body := send(t, tg, c.req(f, e))
			want, accepted := c.want, c.accepted
			if tg.aws() && c.wantAWS != 0 {
				want = c.wantAWS
			}
			if tg.json() && c.jsonAccepted {
				want, accepted = http.StatusOK, true
			}
			checkAnswer(t, status, body, want)
			changed := diff(before, tg.snapshot(t))
			if accepted {
				changed = slices.DeleteFunc(changed, tg.staging)
			}
			if len(changed) > 0 {
				t.Errorf("the request changed what is stored: %q", changed)
			}
			// The server still takes the case's own file.
			status, body = send(t, tg, flowMultipart(f.params(1), f.chunk(1)))
			checkAnswer(t, status, body, http.StatusOK)
		})
	}
	if t.Failed() {
		return
	}

	// Finish every case's file and check its bytes; and, where a hostile
	// identifier arrived neutralized as another upload's, that one too.
	for i, f := range files {
		if c := cs[i]; tg.json() && c.twin != nil {
			twin := c.twin(f)
			status, body := send(t, tg, octetReq(twin.params(2), twin.chunk(2)))
			checkAnswer(t, status, body, http.StatusOK)
			files = append(files, twin)
		}
		status, body := send(t, tg, octetReq(f.params(2), f.chunk(2)))
		checkAnswer(t, status, body, http.StatusOK)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	left := slices.Clone(files)
	for len(left) > 0 {
		tg.pump(ctx)
		left = slices.DeleteFunc(left, func(f hfile) bool {
			st := status(t, tg, f)
			switch st.State {
			case "complete":
				if got := tg.finished(t, st.Location); sha256.Sum256(got) != sha256.Sum256(f.data) {
					t.Errorf("%s: finished file %s has %d bytes and other content than the %d sent", f.id, st.Location, len(got), len(f.data))
				}
				return true
			case "failed":
				t.Errorf("%s: failed: %s", f.id, st.Error)
				return true
			}
			return false
		})
		if ctx.Err() != nil {
			t.Fatalf("%d case files not complete: first %s", len(left), left[0].id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := tg.staged(t); len(s) > 0 {
		t.Errorf("staged data left after every file completed: %q", s)
	}
}

type uploadStatus struct {
	State    string `json:"state"`
	Location string `json:"location"`
	Error    string `json:"error"`
}

func status(t *testing.T, tg target, f hfile) uploadStatus {
	t.Helper()
	code, body := send(t, tg, request{method: http.MethodGet, path: "/upload/status", query: f.statusParams().query()})
	var st uploadStatus
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("%s: status %d %q", f.id, code, body)
	}
	return st
}

// diff lists the names whose content differs, appeared or went away.
func diff(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// treeSnapshot describes every file and directory under root, by a
// name prefixed with prefix.
func treeSnapshot(t *testing.T, root, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := prefix + filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out[name] = "dir"
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			out[name] = hex.EncodeToString(h[:])
		default:
			out[name] = d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

// cleanUnder reports whether loc is a clean relative path under dir.
func cleanUnder(loc, dir string) bool {
	return loc != "" && !strings.HasPrefix(loc, "/") && path.Clean(loc) == loc &&
		strings.HasPrefix(loc, dir+"/") && !slices.Contains(strings.Split(loc, "/"), "..")
}
