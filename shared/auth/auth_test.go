package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"
)

var (
	keysOnce     sync.Once
	rsaA, rsaB   *rsa.PrivateKey
	rsaSmall     *rsa.PrivateKey
	testSecret   = []byte("0123456789abcdef0123456789abcdef")
	now          = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fixedNow     = func() time.Time { return now }
	testIssuer   = "https://issuer.example.com/"
	testAudience = "flowgate"
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaB, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
	})
}

func pemPublic(t testing.TB, k *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func jwk(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}
}

func jwks(t testing.TB, keys ...map[string]string) string {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// claims are valid for the test clock, issuer and audience.
func claims(sub string) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": sub, "iss": testIssuer, "aud": []string{"other", testAudience},
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func with(c jwt.MapClaims, edit func(jwt.MapClaims)) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	edit(out)
	return out
}

func signHS(t testing.TB, c jwt.MapClaims, secret []byte) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signRS(t testing.TB, c jwt.MapClaims, k *rsa.PrivateKey, kid string) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifier(t testing.TB, c Config) *Verifier {
	t.Helper()
	if c.Now == nil {
		c.Now = fixedNow
	}
	v, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustKeys(t testing.TB, text string) KeySet {
	t.Helper()
	ks, err := ParseKeys([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestVerify(t *testing.T) {
	keys(t)
	hs := Config{Secret: testSecret, Issuer: testIssuer, Audience: testAudience, Leeway: 30 * time.Second}
	rsPEM := Config{Keys: mustKeys(t, pemPublic(t, &rsaA.PublicKey)), Issuer: testIssuer, Audience: testAudience}
	rsJWKS := Config{Keys: mustKeys(t, jwks(t, jwk("a", &rsaA.PublicKey), jwk("b", &rsaB.PublicKey)))}
	rsOneJWK := Config{Keys: mustKeys(t, jwks(t, jwk("a", &rsaA.PublicKey)))}
	rsTwoPEM := Config{Keys: mustKeys(t, pemPublic(t, &rsaA.PublicKey)+pemPublic(t, &rsaB.PublicKey))}
	noChecks := Config{Secret: testSecret}
	c := claims("user-1")

	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384, c).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	// The classic confusion: an HS256 token "signed" with the RSA public key.
	confused := signHS(t, c, []byte(pemPublic(t, &rsaA.PublicKey)))

	tests := []struct {
		name  string
		cfg   Config
		token string
		want  string // subject, or "" for refused
	}{
		{"hs256", hs, signHS(t, c, testSecret), "user-1"},
		{"bearer prefix", hs, "Bearer " + signHS(t, c, testSecret), "user-1"},
		{"lowercase bearer", hs, "bearer  " + signHS(t, c, testSecret), "user-1"},
		{"single audience string", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["aud"] = testAudience }), testSecret), "user-1"},
		{"no iss or aud checks configured", noChecks, signHS(t, with(c, func(m jwt.MapClaims) { delete(m, "iss"); delete(m, "aud") }), testSecret), "user-1"},
		{"expired within leeway", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["exp"] = now.Add(-10 * time.Second).Unix() }), testSecret), "user-1"},

		{"empty", hs, "", ""},
		{"bearer only", hs, "Bearer ", ""},
		{"garbage", hs, "Bearer not.a.jwt", ""},
		{"wrong secret", hs, signHS(t, c, []byte("another-secret-another-secret-32")), ""},
		{"expired", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Minute).Unix() }), testSecret), ""},
		{"no expiry", hs, signHS(t, with(c, func(m jwt.MapClaims) { delete(m, "exp") }), testSecret), ""},
		{"not yet valid", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["nbf"] = now.Add(time.Hour).Unix() }), testSecret), ""},
		{"issued in the future", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["iat"] = now.Add(time.Hour).Unix() }), testSecret), ""},
		{"wrong issuer", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["iss"] = "https://evil.example.com/" }), testSecret), ""},
		{"missing issuer", hs, signHS(t, with(c, func(m jwt.MapClaims) { delete(m, "iss") }), testSecret), ""},
		{"wrong audience", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["aud"] = []string{"other"} }), testSecret), ""},
		{"missing audience", hs, signHS(t, with(c, func(m jwt.MapClaims) { delete(m, "aud") }), testSecret), ""},
		{"no subject", hs, signHS(t, with(c, func(m jwt.MapClaims) { delete(m, "sub") }), testSecret), ""},
		{"empty subject", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["sub"] = "" }), testSecret), ""},
		{"control character in subject", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["sub"] = "a\nb" }), testSecret), ""},
		{"format character in subject", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["sub"] = "a\u202eb" }), testSecret), ""},
		{"overlong subject", hs, signHS(t, with(c, func(m jwt.MapClaims) { m["sub"] = strings.Repeat("x", MaxSubjectBytes+1) }), testSecret), ""},
		{"alg none", hs, noneToken, ""},
		{"hs384 not allowed", hs, hs384, ""},
		{"rs256 token when only hs256 is configured", hs, signRS(t, c, rsaA, ""), ""},

		{"rs256 pem", rsPEM, signRS(t, c, rsaA, ""), "user-1"},
		{"rs256 pem ignores an unknown kid", rsPEM, signRS(t, c, rsaA, "whatever"), "user-1"},
		{"rs256 wrong key", rsPEM, signRS(t, c, rsaB, ""), ""},
		{"hs256 with the public key as secret", rsPEM, confused, ""},
		{"jwks kid a", rsJWKS, signRS(t, c, rsaA, "a"), "user-1"},
		{"jwks kid b", rsJWKS, signRS(t, c, rsaB, "b"), "user-1"},
		{"jwks kid mismatch", rsJWKS, signRS(t, c, rsaA, "b"), ""},
		{"jwks unknown kid", rsJWKS, signRS(t, c, rsaA, "c"), ""},
		{"jwks two keys, token without kid", rsJWKS, signRS(t, c, rsaA, ""), ""},
		{"jwks one key, token without kid", rsOneJWK, signRS(t, c, rsaA, ""), "user-1"},
		{"two pem keys, second one signed", rsTwoPEM, signRS(t, c, rsaB, ""), "user-1"},
		{"two pem keys, neither signed", rsTwoPEM, signRS(t, c, rsaSmall, ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := verifier(t, tt.cfg).Verify(tt.token)
			if tt.want == "" {
				if err == nil || !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("accepted (%+v, %v), want ErrInvalidToken", id, err)
				}
				return
			}
			if err != nil || id.Subject != tt.want {
				t.Fatalf("Verify = %+v, %v; want subject %q", id, err, tt.want)
			}
		})
	}
}

func TestNewRefusesWeakConfig(t *testing.T) {
	for name, c := range map[string]Config{
		"no key":       {},
		"short secret": {Secret: []byte("short")},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestParseKeys(t *testing.T) {
	keys(t)
	der := x509.MarshalPKCS1PublicKey(&rsaA.PublicKey)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der}))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaA.PublicKey, rsaA)
	if err != nil {
		t.Fatal(err)
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}))
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaA)}))
	ecJWK := map[string]string{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}
	encJWK := jwk("enc", &rsaB.PublicKey)
	encJWK["use"] = "enc"

	ok := map[string]struct {
		text string
		n    int
	}{
		"pkix pem":                 {pemPublic(t, &rsaA.PublicKey), 1},
		"pkcs1 pem":                {pkcs1, 1},
		"certificate":              {cert, 1},
		"two pems":                 {pemPublic(t, &rsaA.PublicKey) + "\n" + pkcs1, 2},
		"jwks skips ec and enc":    {jwks(t, ecJWK, jwk("a", &rsaA.PublicKey), encJWK), 1},
		"jwks with padding in n/e": {strings.Replace(jwks(t, jwk("a", &rsaA.PublicKey)), `"e":"AQAB"`, `"e":"AQAB=="`, 1), 1},
	}
	for name, tt := range ok {
		ks, err := ParseKeys([]byte(tt.text))
		n := 0
		for _, k := range ks {
			n += len(k)
		}
		if err != nil || n != tt.n {
			t.Errorf("%s: %d keys, %v; want %d", name, n, err, tt.n)
		}
	}
	bad := map[string]string{
		"empty":            "",
		"not pem":          "hello",
		"ec pem":           ecPEM,
		"private key":      privPEM,
		"small rsa":        pemPublic(t, &rsaSmall.PublicKey),
		"jwks without rsa": jwks(t, ecJWK),
		"jwks bad json":    `{"keys": [`,
		"jwks bad n":       `{"keys": [{"kty": "RSA", "kid": "x", "n": "!!", "e": "AQAB"}]}`,
		"jwks small":       jwks(t, jwk("s", &rsaSmall.PublicKey)),
		"jwks dup kid":     jwks(t, jwk("a", &rsaA.PublicKey), jwk("a", &rsaB.PublicKey)),
	}
	for name, text := range bad {
		if ks, err := ParseKeys([]byte(text)); err == nil {
			t.Errorf("%s: accepted %v", name, ks)
		}
	}
}

func TestLoad(t *testing.T) {
	keys(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, []byte(jwks(t, jwk("a", &rsaA.PublicKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	good := map[string]func(string) string{
		"secret":      env("FLOWGATE_JWT_SECRET", string(testSecret)),
		"inline pem":  env("FLOWGATE_JWT_PUBLIC_KEYS", pemPublic(t, &rsaA.PublicKey), "FLOWGATE_JWT_ISSUER", testIssuer),
		"inline jwks": env("FLOWGATE_JWT_PUBLIC_KEYS", jwks(t, jwk("a", &rsaA.PublicKey)), "FLOWGATE_JWT_LEEWAY", "5s"),
		"jwks file":   env("FLOWGATE_JWT_PUBLIC_KEYS", file, "FLOWGATE_JWT_AUDIENCE", testAudience, "FLOWGATE_LOG_LEVEL", "debug"),
		"both":        env("FLOWGATE_JWT_PUBLIC_KEYS", file, "FLOWGATE_JWT_SECRET", string(testSecret)),
	}
	for name, getenv := range good {
		c, err := Load(getenv)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := New(c); err != nil {
			t.Errorf("%s: New: %v", name, err)
		}
	}
	bad := map[string]func(string) string{
		"nothing":      env(),
		"short secret": env("FLOWGATE_JWT_SECRET", "abc"),
		"missing file": env("FLOWGATE_JWT_PUBLIC_KEYS", filepath.Join(dir, "nope.json")),
		"bad pem":      env("FLOWGATE_JWT_PUBLIC_KEYS", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
		"bad leeway":   env("FLOWGATE_JWT_SECRET", string(testSecret), "FLOWGATE_JWT_LEEWAY", "1h"),
		"bad level":    env("FLOWGATE_JWT_SECRET", string(testSecret), "FLOWGATE_LOG_LEVEL", "loud"),
	}
	for name, getenv := range bad {
		if _, err := Load(getenv); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}

func TestAuthorizer(t *testing.T) {
	a := &Authorizer{Verifier: verifier(t, Config{Secret: testSecret, Issuer: testIssuer}), Log: slog.New(slog.DiscardHandler)}
	const methodArn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/v1/POST/upload"
	ctx := context.Background()

	resp, err := a.Handle(ctx, events.APIGatewayCustomAuthorizerRequest{
		Type: "TOKEN", AuthorizationToken: "Bearer " + signHS(t, claims("alice"), testSecret), MethodArn: methodArn,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.PolicyDocument.Statement
	if resp.PrincipalID != "alice" || resp.Context["sub"] != "alice" || resp.PolicyDocument.Version != "2012-10-17" ||
		len(st) != 1 || st[0].Effect != "Allow" || strings.Join(st[0].Action, ",") != "execute-api:Invoke" ||
		strings.Join(st[0].Resource, ",") != "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/v1/*" {
		t.Fatalf("response = %+v", resp)
	}

	for name, ev := range map[string]events.APIGatewayCustomAuthorizerRequest{
		"no token":      {Type: "TOKEN", MethodArn: methodArn},
		"bad token":     {Type: "TOKEN", AuthorizationToken: "Bearer x.y.z", MethodArn: methodArn},
		"expired token": {Type: "TOKEN", AuthorizationToken: signHS(t, with(claims("bob"), func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Hour).Unix() }), testSecret), MethodArn: methodArn},
		"bad arn":       {Type: "TOKEN", AuthorizationToken: signHS(t, claims("bob"), testSecret), MethodArn: "arn:aws:s3:::bucket"},
	} {
		resp, err := a.Handle(ctx, ev)
		if err == nil || err.Error() != "Unauthorized" || resp.PrincipalID != "" || len(resp.PolicyDocument.Statement) != 0 {
			t.Errorf("%s: %+v, %v; want the error Unauthorized and no policy", name, resp, err)
		}
	}
}

func TestStageResource(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:execute-api:us-east-1:123456789012:api1/prod/GET/upload":        "arn:aws:execute-api:us-east-1:123456789012:api1/prod/*",
		"arn:aws:execute-api:us-east-1:123456789012:api1/prod/GET/upload/status": "arn:aws:execute-api:us-east-1:123456789012:api1/prod/*",
		"arn:aws-cn:execute-api:cn-north-1:123456789012:api1/v1/OPTIONS/upload":  "arn:aws-cn:execute-api:cn-north-1:123456789012:api1/v1/*",
		"arn:aws:execute-api:us-east-1:123456789012:api1/prod":                   "",
		"arn:aws:execute-api:us-east-1:123456789012:*/prod/GET/upload":           "",
		"arn:aws:lambda:us-east-1:123456789012:function:f":                       "",
		"arn:aws:execute-api:us-east-1::api1/prod/GET/upload":                    "",
		"": "",
		"arn:aws:execute-api:us-east-1:123456789012:api1//GET/upload":                 "",
		"arn:aws:execute-api:us-east-1:123456789012:api1/prod/GET/upload?x=arn:a:b:c": "arn:aws:execute-api:us-east-1:123456789012:api1/prod/*",
	} {
		got, ok := StageResource(arn)
		if got != want || ok != (want != "") {
			t.Errorf("StageResource(%q) = %q, %v; want %q", arn, got, ok, want)
		}
	}
}
