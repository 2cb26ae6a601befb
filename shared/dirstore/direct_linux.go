package dirstore

import (
	"os"
	"syscall"
)

func openDirectFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}
