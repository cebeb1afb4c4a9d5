// Package statefile writes the resumable state of long runs (DGH
// generation, BRECQ reconstruction) atomically: a gob stream to a
// temporary file beside the target, synced, then renamed over it, so an
// interruption at any moment leaves either the old state or the new one.
package statefile

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"os"
	"path/filepath"
)

// Write gob-encodes v into path atomically.
func Write(path string, v any) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriter(f)
	if err = gob.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
