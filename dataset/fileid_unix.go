//go:build unix

package dataset

import (
	"fmt"
	"os"
	"syscall"
)

// fileID names a folder by device and inode, however it was reached.
type fileID struct{ dev, ino uint64 }

// dirID identifies the folder at path, following links.
func dirID(path string) (fileID, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no device and inode", path)
	}
	return fileID{dev: uint64(sys.Dev), ino: uint64(sys.Ino)}, nil
}
