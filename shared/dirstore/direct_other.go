//go:build !linux

package dirstore

import (
	"errors"
	"os"
)

// Elsewhere chunks go through the page cache (macOS, for one, has F_NOCACHE
// instead of O_DIRECT; not worth it for a development machine).
func openDirectFile(string) (*os.File, error) { return nil, errors.ErrUnsupported }

func preallocate(*os.File, int64, int64) error { return nil }

// firstHole is the file's size where holes cannot be asked for.
func firstHole(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
