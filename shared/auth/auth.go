// Package auth verifies the JSON Web Tokens that callers present, for the
// optional JWT mode of the AWS deployment: the Lambda authorizer
// (functions/authorizer) checks each token with a Verifier, and API Gateway
// hands the token's subject to the upload function, where it becomes the
// caller's namespace.
//
// Two kinds of key are accepted, each only for its own algorithm, so a token
// can never pick how it is checked:
//
//   - HS256 with a shared secret (at least 32 bytes);
//   - RS256 with RSA public keys, given as PEM (PUBLIC KEY, RSA PUBLIC KEY or
//     CERTIFICATE blocks) or as a JWKS document such as an identity
//     provider publishes; a token's "kid" header picks the key.
//
// Every token must carry an expiry and a subject; the issuer and the
// audience are checked when configured, and a token issued in the future or
// not yet valid is refused. Settings (see Load):
//
//	FLOWGATE_JWT_SECRET       HS256 shared secret
//	FLOWGATE_JWT_PUBLIC_KEYS  RS256 keys: PEM text, JWKS JSON, or the path of a file holding either
//	FLOWGATE_JWT_ISSUER       required "iss", if set
//	FLOWGATE_JWT_AUDIENCE     required "aud" (one of the token's), if set
//	FLOWGATE_JWT_LEEWAY       clock skew allowed on exp, nbf and iat (30s)
//	FLOWGATE_LOG_LEVEL        debug, info, warn, error
package auth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/shared/config"
)

// MinSecretBytes is the shortest HS256 secret accepted: as long as the hash.
const MinSecretBytes = 32

// MaxSubjectBytes bounds a subject; it becomes a namespace, which is hashed
// into storage keys and written to logs.
const MaxSubjectBytes = 256

// Config is what a Verifier checks tokens against.
type Config struct {
	// Secret enables HS256.
	Secret []byte
	// Keys enable RS256.
	Keys KeySet
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer, Audience string
	// Leeway is the clock skew allowed.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LogLevel is for the program that uses the Verifier.
	LogLevel slog.Level
}

// Load reads the configuration through getenv and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	e := config.NewEnv(getenv)
	c := Config{
		Secret:   []byte(e.String("FLOWGATE_JWT_SECRET", "")),
		Issuer:   e.String("FLOWGATE_JWT_ISSUER", ""),
		Audience: e.String("FLOWGATE_JWT_AUDIENCE", ""),
		Leeway:   e.Duration("FLOWGATE_JWT_LEEWAY", 30*time.Second),
		LogLevel: e.Level("FLOWGATE_LOG_LEVEL", slog.LevelInfo),
	}
	if keys := e.String("FLOWGATE_JWT_PUBLIC_KEYS", ""); keys != "" {
		data := []byte(keys)
		if !looksInline(keys) {
			b, err := os.ReadFile(keys)
			if err != nil {
				e.Fail("FLOWGATE_JWT_PUBLIC_KEYS: neither PEM, nor JWKS JSON, nor a readable file: %v", err)
			}
			data = b
		}
		if len(data) > 0 {
			ks, err := ParseKeys(data)
			if err != nil {
				e.Fail("FLOWGATE_JWT_PUBLIC_KEYS: %v", err)
			}
			c.Keys = ks
		}
	}
	if c.Leeway < 0 || c.Leeway > 10*time.Minute {
		e.Fail("FLOWGATE_JWT_LEEWAY must be from 0 to 10m")
	}
	if err := c.check(); err != nil {
		e.Fail("%v", err)
	}
	return c, e.Err()
}

func looksInline(s string) bool {
	return strings.HasPrefix(s, "{") || strings.HasPrefix(s, "-----BEGIN")
}

func (c Config) check() error {
	if len(c.Secret) == 0 && len(c.Keys) == 0 {
		return errors.New("auth: set FLOWGATE_JWT_SECRET (HS256) or FLOWGATE_JWT_PUBLIC_KEYS (RS256)")
	}
	if len(c.Secret) > 0 && len(c.Secret) < MinSecretBytes {
		return fmt.Errorf("auth: FLOWGATE_JWT_SECRET must be at least %d bytes", MinSecretBytes)
	}
	return nil
}

// Identity is who a valid token says the caller is.
type Identity struct {
	Subject string
	Issuer  string
}

// ErrInvalidToken wraps every reason a token is refused.
var ErrInvalidToken = errors.New("invalid token")

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
}

// New builds a Verifier; it fails if no key is configured.
func New(c Config) (*Verifier, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var methods []string
	if len(c.Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if len(c.Keys) > 0 {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(c.Leeway),
	}
	if c.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(c.Now))
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	return &Verifier{cfg: c, parser: jwt.NewParser(opts...)}, nil
}

// Verify checks a token (with or without a "Bearer " prefix) and returns
// its identity. Every failure wraps ErrInvalidToken.
func (v *Verifier) Verify(token string) (Identity, error) {
	token = strings.TrimSpace(token)
	if scheme, rest, ok := strings.Cut(token, " "); ok && strings.EqualFold(scheme, "bearer") {
		token = strings.TrimSpace(rest)
	}
	if token == "" {
		return Identity{}, fmt.Errorf("%w: no token", ErrInvalidToken)
	}
	var claims jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(token, &claims, v.key); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if !validSubject(claims.Subject) {
		return Identity{}, fmt.Errorf("%w: missing or unusable subject", ErrInvalidToken)
	}
	return Identity{Subject: claims.Subject, Issuer: claims.Issuer}, nil
}

// key picks the verification key for a token whose algorithm the parser
// already checked against the configured ones.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodHS256:
		return v.cfg.Secret, nil
	case jwt.SigningMethodRS256:
		kid, _ := t.Header["kid"].(string)
		return v.cfg.Keys.lookup(kid)
	}
	return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
}

func validSubject(s string) bool {
	if s == "" || len(s) > MaxSubjectBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// KeySet holds RSA public keys by key ID; keys from PEM have none ("").
type KeySet map[string][]*rsa.PublicKey

func (ks KeySet) lookup(kid string) (any, error) {
	if keys, ok := ks[kid]; ok && kid != "" {
		return keys[0], nil
	}
	// No kid, or one we do not know: only keys without an ID may be tried
	// (a JWKS names every key, so an unknown kid is refused).
	unnamed := ks[""]
	switch len(unnamed) {
	case 0:
		if kid == "" && len(ks) == 1 {
			for _, keys := range ks {
				return keys[0], nil
			}
		}
		return nil, fmt.Errorf("no key with id %q", kid)
	case 1:
		return unnamed[0], nil
	}
	set := jwt.VerificationKeySet{}
	for _, k := range unnamed {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// ParseKeys reads RSA public keys from PEM (any number of PUBLIC KEY, RSA
// PUBLIC KEY or CERTIFICATE blocks) or from a JWKS document (RSA keys only;
// others are skipped, as is any key marked for encryption).
func ParseKeys(data []byte) (KeySet, error) {
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "{") {
		return parseJWKS([]byte(text))
	}
	ks := KeySet{}
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM %s: %w", block.Type, err)
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PEM %s holds a %T, not an RSA key", block.Type, pub)
		}
		if err := checkRSA(rk); err != nil {
			return nil, err
		}
		ks[""] = append(ks[""], rk)
	}
	if len(ks) == 0 {
		return nil, errors.New("no PEM public key and no JWKS found")
	}
	return ks, nil
}

func parseJWKS(data []byte) (KeySet, error) {
	var doc struct {
		Keys []struct {
			Kty, Kid, Use, Alg, N, E string
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	ks := KeySet{}
	for i, k := range doc.Keys {
		if k.Kty != "RSA" || k.Use == "enc" || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("JWKS key %d (%q): bad modulus or exponent", i, k.Kid)
		}
		rk := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if err := checkRSA(rk); err != nil {
			return nil, fmt.Errorf("JWKS key %d (%q): %w", i, k.Kid, err)
		}
		if _, dup := ks[k.Kid]; dup && k.Kid != "" {
			return nil, fmt.Errorf("JWKS: two keys with id %q", k.Kid)
		}
		ks[k.Kid] = append(ks[k.Kid], rk)
	}
	if len(ks) == 0 {
		return nil, errors.New("JWKS has no RSA signing key")
	}
	return ks, nil
}

func checkRSA(k *rsa.PublicKey) error {
	if k.N.BitLen() < 2048 {
		return fmt.Errorf("RSA key of %d bits: at least 2048 are needed", k.N.BitLen())
	}
	if k.E < 3 || k.E%2 == 0 {
		return errors.New("RSA key with an invalid exponent")
	}
	return nil
}
