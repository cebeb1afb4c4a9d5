//go:build !unix

package dataset

import "path/filepath"

// fileID names a folder by the path links resolve it to, where the
// system offers no inode numbers.
type fileID struct{ path string }

// dirID identifies the folder at path, following links.
func dirID(path string) (fileID, error) {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileID{}, err
	}
	p, err = filepath.Abs(p)
	return fileID{path: p}, err
}
