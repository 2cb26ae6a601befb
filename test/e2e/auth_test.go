package e2e

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

const e2eSecret = "an HS256 secret of 32 bytes or more for e2e"

func bearer(t *testing.T, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(e2eSecret))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// TestJWTUploads: the server binary in JWT mode (FLOWGATE_AUTH=jwt, an
// HS256 secret as shared/auth reads it). Two users whose files share
// flow.js's identifier each get their own file; a client without a token
// is refused with 401 and never gets in.
func TestJWTUploads(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "FLOWGATE_AUTH=jwt", "FLOWGATE_JWT_SECRET="+e2eSecret)
	alice := srv.client("Authorization", bearer(t, "alice"))
	bob := srv.client("Authorization", bearer(t, "bob"))

	opts := flowclient.Options{ChunkSize: 32 << 10, TestChunks: true, Shuffle: true, MaxRetries: 2, RetryInterval: 20 * time.Millisecond}
	a := upload{name: "notes.txt", data: randomFile(11, 100<<10+3), opts: opts}
	b := upload{name: "notes.txt", data: randomFile(12, 100<<10+3), opts: opts}
	for _, u := range []struct {
		up upload
		c  *flowclient.Client
	}{{a, alice}, {b, bob}} {
		st, err := u.up.send(ctx, u.c)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Present) != 0 {
			t.Errorf("chunks already present for a new upload: %v", st.Present)
		}
		done, err := u.up.wait(ctx, u.c)
		if err != nil {
			t.Fatal(err)
		}
		checkFinished(t, dataDir, done, u.up.data)
	}

	_, err := a.send(ctx, srv.client())
	var ce *flowclient.ChunkError
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Fatalf("upload without a token: %v, want 401", err)
	}
	if got := finishedFiles(t, dataDir); len(got) != 2 {
		t.Errorf("files/ holds %v, want two files", got)
	}
}

// TestConflictingAuthRefusedAtStart: the binary will not start with both a
// JWT mode and a trusted namespace header, nor with a JWT secret while
// anonymous; it exits with status 2 and says why.
func TestConflictingAuthRefusedAtStart(t *testing.T) {
	t.Parallel()
	for _, env := range [][]string{
		{"FLOWGATE_AUTH=jwt", "FLOWGATE_JWT_SECRET=" + e2eSecret, "FLOWGATE_NAMESPACE_HEADER=X-User"},
		{"FLOWGATE_JWT_SECRET=" + e2eSecret},
		{"FLOWGATE_AUTH=jwt"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, binary)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "FLOWGATE_ADDR=127.0.0.1:0",
			"FLOWGATE_DATA_DIR=" + filepath.Join(t.TempDir(), "data")}, env...)
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit status 2 (output %s)", env, err, out)
			continue
		}
		if !strings.Contains(string(out), "FLOWGATE_") {
			t.Errorf("%v: the refusal does not name the setting: %s", env, out)
		}
	}
}
