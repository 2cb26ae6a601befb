#!/usr/bin/env bash
# Installs the local AWS stand-ins at their pinned versions, once: MinIO and the
# AWS Lambda Runtime Interface Emulator (both built with `go install`) and
# dynalite (npm), into ${XDG_CACHE_HOME:-$HOME/.cache}/flowgate.
# Safe to run again; the pins live in internal/devstack/localaws/install.go.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/devstack/cmd/localaws ensure
