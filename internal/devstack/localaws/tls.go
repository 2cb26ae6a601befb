package localaws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// MinIO serves HTTPS with a throwaway certificate, because the AWS SDK
// streams a body of unknown content (a chunk as it arrives) only over TLS:
// the CRC32 trailer that lets it send without buffering or seeking is
// refused on plain HTTP. Serving TLS keeps the code under test on the very
// path it takes against AWS; AWS_CA_BUNDLE (in Env) makes the SDK trust the
// certificate.

// writeCert creates a self-signed certificate for 127.0.0.1 and localhost in
// dir, named as MinIO's --certs-dir expects, and returns the certificate's path.
func writeCert(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "flowgate local MinIO"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	crt := filepath.Join(dir, "public.crt")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", err
	}
	return crt, nil
}

// tlsClient trusts only the certificate at crt.
func tlsClient(crt string) (*http.Client, error) {
	b, err := os.ReadFile(crt)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

// HTTPClient is a client that trusts MinIO's certificate (and nothing
// else), for requests made without the SDK: a browser's PUT with a
// presigned URL, say.
func (s *Servers) HTTPClient() (*http.Client, error) {
	c, err := tlsClient(s.CABundle)
	if err != nil {
		return nil, err
	}
	c.Timeout = time.Minute
	return c, nil
}
