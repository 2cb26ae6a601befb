package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "1h30m": 90 * time.Minute, "24h": 24 * time.Hour,
		"1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "0d": 0,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "x", "1 d", "200000d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func loadMap(env map[string]string) (Local, error) {
	return LoadLocal(func(k string) string { return env[k] })
}

// TestLocalSecurityDefaults: anonymous, no per-namespace limit, 64 KiB of
// headers, 4 KiB fields, 64 parts, metrics on.
func TestLocalSecurityDefaults(t *testing.T) {
	c, err := loadMap(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth != AuthNone || c.MaxUploadsPerNamespace != 0 || c.MaxHeaderBytes != 64<<10 ||
		c.MaxFieldBytes != 4<<10 || c.MaxParts != 64 || !c.Metrics {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLocalSecuritySettings(t *testing.T) {
	c, err := loadMap(map[string]string{
		"FLOWGATE_AUTH": "jwt", "FLOWGATE_JWT_SECRET": "x",
		"FLOWGATE_MAX_UPLOADS_PER_NAMESPACE": "5", "FLOWGATE_MAX_HEADER_BYTES": "16KiB",
		"FLOWGATE_MAX_FIELD_BYTES": "8KiB", "FLOWGATE_MAX_PARTS": "20", "FLOWGATE_METRICS": "false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth != AuthJWT || c.MaxUploadsPerNamespace != 5 || c.MaxHeaderBytes != 16<<10 ||
		c.MaxFieldBytes != 8<<10 || c.MaxParts != 20 || c.Metrics {
		t.Fatalf("settings: %+v", c)
	}
	for name, env := range map[string]map[string]string{
		"jwt with a header":    {"FLOWGATE_AUTH": "jwt", "FLOWGATE_NAMESPACE_HEADER": "X-User"},
		"secret, no jwt":       {"FLOWGATE_JWT_SECRET": "x"},
		"public keys, no jwt":  {"FLOWGATE_JWT_PUBLIC_KEYS": "k.pem"},
		"cognito":              {"FLOWGATE_AUTH": "cognito"},
		"negative uploads":     {"FLOWGATE_MAX_UPLOADS_PER_NAMESPACE": "-1"},
		"tiny headers":         {"FLOWGATE_MAX_HEADER_BYTES": "100"},
		"huge headers":         {"FLOWGATE_MAX_HEADER_BYTES": "2MiB"},
		"tiny fields":          {"FLOWGATE_MAX_FIELD_BYTES": "10"},
		"too few parts":        {"FLOWGATE_MAX_PARTS": "3"},
		"metrics maybe":        {"FLOWGATE_METRICS": "maybe"},
		"negative body stall":  {"FLOWGATE_BODY_TIMEOUT": "-1s"},
		"uploads not a number": {"FLOWGATE_MAX_UPLOADS_PER_NAMESPACE": "many"},
	} {
		if _, err := loadMap(env); err == nil {
			t.Errorf("%s: accepted %v", name, env)
		}
	}
}
