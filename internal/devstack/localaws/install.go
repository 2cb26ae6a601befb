// Package localaws installs and runs the real local stand-ins for the AWS
// services flowgate uses: MinIO for S3 and dynalite for DynamoDB. Tests start
// them from TestMain (see RunTests), `make dev` starts them on fixed ports
// (see Start), and both stop them when done. It also installs the AWS Lambda
// Runtime Interface Emulator (EnsureRIE), which internal/devstack/lambdarie runs.
//
// The servers are installed once, at pinned versions, into a cache outside
// the checkout (${XDG_CACHE_HOME:-$HOME/.cache}/flowgate), so a fresh clone or
// CI run on the same machine reuses them. MinIO and the emulator are built
// from source with `go install` (MinIO takes a few minutes on two cores),
// dynalite comes from npm. Nothing is downloaded from anywhere but the Go
// module proxy and the npm registry.
//
// If a server cannot be installed or started, every entry point fails with a
// message that says which and why; tests are never skipped for it.
package localaws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

// Pinned versions. MinIO and the Runtime Interface Emulator publish no Go
// module versions the proxy serves, so their pseudo-versions name exact
// commits; dynalite is pinned the same way in package.json.
const (
	MinIOModule     = "github.com/minio/minio"
	MinIOVersion    = "v0.0.0-20260212201848-7aac2a2c5b7c"
	DynaliteVersion = "4.0.0"
	// RIEModule is the AWS Lambda Runtime Interface Emulator, the runtime
	// API SAM CLI runs inside its containers; RIEPackage is its command.
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	RIEPackage = RIEModule + "/cmd/aws-lambda-rie"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// CacheDir is where the servers are installed.
func CacheDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("localaws: no cache directory: set XDG_CACHE_HOME or HOME: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "flowgate"), nil
}

// MinIOPath is where the pinned MinIO binary lives once installed.
func MinIOPath() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "minio-"+MinIOVersion, "minio"), nil
}

// EnsureMinIO returns the path of the pinned MinIO binary, building it first
// if needed. Build output goes to log. Concurrent callers (parallel test
// packages) wait for one build instead of running several.
func EnsureMinIO(ctx context.Context, log io.Writer) (string, error) {
	bin, err := MinIOPath()
	if err != nil {
		return "", err
	}
	return goInstall(ctx, log, bin, "MinIO", MinIOModule, MinIOVersion, "a few minutes, once")
}

// RIEPath is where the pinned Runtime Interface Emulator lives once installed.
func RIEPath() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "aws-lambda-rie-"+RIEVersion, "aws-lambda-rie"), nil
}

// EnsureRIE returns the path of the pinned AWS Lambda Runtime Interface
// Emulator, building it first if needed (about a minute on two cores), the
// same way and with the same lock discipline as EnsureMinIO.
func EnsureRIE(ctx context.Context, log io.Writer) (string, error) {
	bin, err := RIEPath()
	if err != nil {
		return "", err
	}
	return goInstall(ctx, log, bin, "the Lambda Runtime Interface Emulator", RIEPackage, RIEVersion, "once")
}

// goInstall builds pkg@version with `go install` into bin's directory unless
// bin is already there. A lock beside the directory makes concurrent callers
// wait for one build; whoever held it before may have built it already.
func goInstall(ctx context.Context, log io.Writer, bin, name, pkg, version, how string) (string, error) {
	if isExecutable(bin) {
		return bin, nil
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("localaws: create %s: %w", dir, err)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) {
		return bin, nil
	}
	fmt.Fprintf(log, "localaws: building %s %s into %s (%s)\n", name, version, dir, how)
	cmd := exec.CommandContext(ctx, "go", "install", pkg+"@"+version)
	// GOFLAGS from a developer's shell (-mod=vendor, say) must not leak into
	// building someone else's module.
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("localaws: could not build %s (go install %s@%s): %w", name, pkg, version, err)
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("localaws: go install of %s succeeded but %s is missing", name, bin)
	}
	return bin, nil
}

// EnsureDynalite returns the path of dynalite's cli.js at the pinned version.
// The checkout's node_modules (from `npm ci`, since package.json pins
// dynalite) is used when it has the right version; otherwise dynalite is
// installed into the cache, without install scripts: in memory, as the tests
// run it, it needs no native code.
func EnsureDynalite(ctx context.Context, log io.Writer) (string, error) {
	if root, err := proc.Root(); err == nil {
		if cli, ok := dynaliteAt(filepath.Join(root, "node_modules")); ok {
			return cli, nil
		}
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	prefix := filepath.Join(cache, "dynalite-"+DynaliteVersion)
	if cli, ok := dynaliteAt(filepath.Join(prefix, "node_modules")); ok {
		return cli, nil
	}
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return "", fmt.Errorf("localaws: create %s: %w", prefix, err)
	}
	unlock, err := lockFile(ctx, prefix+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if cli, ok := dynaliteAt(filepath.Join(prefix, "node_modules")); ok {
		return cli, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", errors.New("localaws: npm is not installed; dynalite (the local DynamoDB) needs Node.js and npm")
	}
	fmt.Fprintf(log, "localaws: installing dynalite %s into %s\n", DynaliteVersion, prefix)
	cmd := exec.CommandContext(ctx, "npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
		"--ignore-scripts", "--save-exact", "dynalite@"+DynaliteVersion)
	cmd.Dir = prefix
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("localaws: npm install dynalite@%s failed: %w", DynaliteVersion, err)
	}
	cli, ok := dynaliteAt(filepath.Join(prefix, "node_modules"))
	if !ok {
		return "", fmt.Errorf("localaws: npm installed dynalite but %s has no dynalite %s", prefix, DynaliteVersion)
	}
	return cli, nil
}

// dynaliteAt finds dynalite's CLI in a node_modules directory if it is the
// pinned version.
func dynaliteAt(nodeModules string) (string, bool) {
	dir := filepath.Join(nodeModules, "dynalite")
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", false
	}
	var pkg struct{ Version string }
	if json.Unmarshal(b, &pkg) != nil || pkg.Version != DynaliteVersion {
		return "", false
	}
	cli := filepath.Join(dir, "cli.js")
	if _, err := os.Stat(cli); err != nil {
		return "", false
	}
	return cli, true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lockFile takes an exclusive advisory lock, polling so that ctx can end the
// wait (a MinIO build holds it for minutes).
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localaws: open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("localaws: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("localaws: waiting for %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
