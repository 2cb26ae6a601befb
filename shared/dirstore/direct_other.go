//go:build !linux

package dirstore

import (
	"errors"
	"os"
)

// Elsewhere chunks go through the page cache (macOS, for one, has F_NOCACHE
// instead of O_DIRECT; not worth it for a development machine).
func openDirectFile(string) (*os.File, error) { return nil, errors.ErrUnsupported }
