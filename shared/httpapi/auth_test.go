package httpapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/shared/auth"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/upload"
)

var (
	jwtSecret   = []byte("an HS256 secret of at least 32 bytes, for tests")
	otherSecret = []byte("another HS256 secret of 32 bytes or more, unknown")
)

func signHS(t *testing.T, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(sub string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
}

// bearerEnv is a handler whose namespaces come from tokens checked by
// shared/auth with an HS256 secret, as the local server's JWT mode wires it.
func bearerEnv(t *testing.T) *env {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: jwtSecret, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(h *httpapi.Handler) {
		h.Namespace = httpapi.BearerNamespace(func(tok string) (string, error) {
			id, err := v.Verify(tok)
			return id.Subject, err
		})
	})
}

// TestBearerIsolation: two callers with valid tokens who send the same
// identifier with the same geometry get two uploads. Neither can test, write,
// read the status of or complete the other's, whatever identifier it sends.
func TestBearerIsolation(t *testing.T) {
	e := bearerEnv(t)
	alice := "Bearer " + signHS(t, jwtSecret, claimsFor("alice", time.Hour))
	bob := "Bearer " + signHS(t, jwtSecret, claimsFor("bob", time.Hour))
	a := newFile(21, 3000, 1000, true)
	b := newFile(22, 3000, 1000, true)
	b.id, b.name = a.id, a.name // same identifier, same geometry, other bytes

	// Alice sends chunks 1 and 2 of 3.
	for n := 1; n <= 2; n++ {
		wantStatus(t, e.octet(a.params(n), a.chunk(n), "Authorization", alice), 200, "")
	}
	// Bob's test GETs find none of alice's chunks; his status is unknown.
	for n := 1; n <= 3; n++ {
		wantStatus(t, e.get("/upload", b.params(n), "Authorization", bob), 204, "")
	}
	if st := e.status(b, "Authorization", bob); st.State != upload.StateUnknown {
		t.Fatalf("bob sees alice's upload: %+v", st)
	}
	// Bob sends only chunk 3: were he in alice's upload, it would complete it.
	wantStatus(t, e.octet(b.params(3), b.chunk(3), "Authorization", bob), 200, "")
	if st := e.status(a, "Authorization", alice); st.State != upload.StateReceiving || st.Received != 2 {
		t.Fatalf("alice after bob's chunk 3: %+v, want receiving 2/3", st)
	}
	if st := e.status(b, "Authorization", bob); st.State != upload.StateReceiving || st.Received != 1 {
		t.Fatalf("bob after his chunk 3: %+v, want receiving 1/3", st)
	}
	// Bob finishes his; alice's is untouched and finishes with her bytes.
	for n := 1; n <= 2; n++ {
		wantStatus(t, e.octet(b.params(n), b.chunk(n), "Authorization", bob), 200, "")
	}
	if st := e.status(a, "Authorization", alice); st.State != upload.StateReceiving || st.Received != 2 {
		t.Fatalf("alice after bob completed: %+v", st)
	}
	wantStatus(t, e.get("/upload", a.params(3), "Authorization", alice), 204, "")
	wantStatus(t, e.octet(a.params(3), a.chunk(3), "Authorization", alice), 200, "")
	if got := e.finished(a, "Authorization", alice); sum(got) != sum(a.data) {
		t.Fatal("alice's file is not her bytes")
	}
	if got := e.finished(b, "Authorization", bob); sum(got) != sum(b.data) {
		t.Fatal("bob's file is not his bytes")
	}
	// The namespaces are the AWS JWT mode's: jwt:<subject>.
	if _, err := e.ledger.Get(context.Background(), a.key("jwt:alice")); err != nil {
		t.Fatalf("alice's upload is not under jwt:alice: %v", err)
	}
	// The public namespace, which an anonymous server would use, has nothing.
	if _, err := e.ledger.Get(context.Background(), a.key(httpapi.PublicNamespace)); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("an upload landed in the public namespace: %v", err)
	}
}

// TestBearerRefusals: without a valid token nothing is answered or stored:
// every endpoint says 401 with a JSON error and a Bearer challenge.
func TestBearerRefusals(t *testing.T) {
	e := bearerEnv(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsFor("mallory", time.Hour)).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor("mallory", time.Hour)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	valid := signHS(t, jwtSecret, claimsFor("mallory", time.Hour))
	// Alice's header and claims with the signature of mallory's token.
	asAlice := strings.Split(signHS(t, jwtSecret, claimsFor("alice", time.Hour)), ".")
	tampered := asAlice[0] + "." + asAlice[1] + "." + strings.Split(valid, ".")[2]
	noExp := signHS(t, jwtSecret, jwt.MapClaims{"sub": "mallory", "iat": time.Now().Unix()})
	noSub := signHS(t, jwtSecret, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})

	cases := []struct {
		name   string
		header []string // Authorization values
		reason string   // the challenge's error, "" for none
	}{
		{"no header", nil, ""},
		{"empty header", []string{""}, ""},
		{"expired", []string{"Bearer " + signHS(t, jwtSecret, claimsFor("mallory", -time.Hour))}, "invalid_token"},
		{"wrong key", []string{"Bearer " + signHS(t, otherSecret, claimsFor("mallory", time.Hour))}, "invalid_token"},
		{"alg none", []string{"Bearer " + none}, "invalid_token"},
		{"RS256 where only HS256 is configured", []string{"Bearer " + rs256}, "invalid_token"},
		{"tampered payload", []string{"Bearer " + tampered}, "invalid_token"},
		{"no expiry", []string{"Bearer " + noExp}, "invalid_token"},
		{"no subject", []string{"Bearer " + noSub}, "invalid_token"},
		{"not yet valid", []string{"Bearer " + signHS(t, jwtSecret, jwt.MapClaims{"sub": "m", "nbf": time.Now().Add(time.Hour).Unix(),
			"exp": time.Now().Add(2 * time.Hour).Unix()})}, "invalid_token"},
		{"basic scheme", []string{"Basic " + valid}, "invalid_token"},
		{"bare token", []string{valid}, "invalid_token"},
		{"bearer without token", []string{"Bearer "}, "invalid_token"},
		{"garbage", []string{"Bearer not.a.jwt"}, "invalid_token"},
		{"two headers", []string{"Bearer " + valid, "Bearer " + valid}, "invalid_token"},
	}
	f := newFile(23, 1000, 1000, true)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			send := func(method, path string, q url.Values, body []byte) resp {
				req, _ := http.NewRequest(method, e.srv.URL+path+"?"+q.Encode(), strings.NewReader(string(body)))
				if body != nil {
					req.Header.Set("Content-Type", "application/octet-stream")
				}
				for _, v := range c.header {
					req.Header.Add("Authorization", v)
				}
				return e.do(req)
			}
			sq := f.params(1)
			sq.Del("flowChunkNumber")
			sq.Del("flowCurrentChunkSize")
			for _, r := range []resp{
				send(http.MethodGet, "/upload", f.params(1), nil),
				send(http.MethodPost, "/upload", f.params(1), f.chunk(1)),
				send(http.MethodGet, "/upload/status", sq, nil),
			} {
				wantStatus(t, r, 401, "")
				ch := r.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, `Bearer realm="flowgate"`) {
					t.Errorf("WWW-Authenticate %q", ch)
				}
				if got := strings.Contains(ch, `error="invalid_token"`); got != (c.reason != "") {
					t.Errorf("WWW-Authenticate %q, want error=%q", ch, c.reason)
				}
				// The verifier's reason is logged, not told.
				for _, leak := range []string{"signature", "malformed", "unverifiable", "claims"} {
					if strings.Contains(r.body, leak) {
						t.Errorf("body tells the verifier's reason: %s", r.body)
					}
				}
			}
			for _, ns := range []string{"jwt:mallory", "jwt:alice", "jwt:m", "jwt:", httpapi.PublicNamespace} {
				if _, err := e.ledger.Get(context.Background(), f.key(ns)); !errors.Is(err, upload.ErrNotFound) {
					t.Errorf("stored under %q: %v", ns, err)
				}
			}
			if s := e.stagingFiles(); len(s) != 0 {
				t.Errorf("staged: %v", s)
			}
		})
	}
	// The preflight needs no token (browsers send none), and allows the header.
	req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/upload", nil)
	req.Header.Set("Origin", "https://site.example")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	if r := e.do(req); r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
}
