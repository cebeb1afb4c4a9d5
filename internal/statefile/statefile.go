// Package statefile writes and reads the resumable state of long runs (DGH
// generation, BRECQ reconstruction, the command line's run record)
// (docs/DESIGN.md, "Command line"). A state file is a fixed header, then a
// gob stream:
//
//	"DGHSTATE" | format version (uint32) | payload length (uint64) | SHA-256 of the payload | payload
//
// Write is atomic: the file is written beside its target under a
// temporary name, synced, renamed over the target and the folder synced,
// so a crash or a SIGKILL at any moment leaves either the old state or the
// new one. Read checks the length and the checksum before decoding
// anything, so a truncated or bit-flipped file is refused as corrupt
// rather than resumed.
package statefile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const (
	magic      = "DGHSTATE"
	version    = 1
	headerSize = len(magic) + 4 + 8 + sha256.Size
	// tempMarker is part of every temporary file's name, so that
	// RemoveTemporaries finds the ones a killed process left behind.
	tempMarker = ".tmp-"
)

// ErrCorrupt is wrapped by Read's errors for a file that is not a state
// file, is cut short, or fails its checksum.
var ErrCorrupt = errors.New("corrupt state file")

// SaveError is a failed Write. Callers that promise a user "state saved"
// must check for it (errors.As) before saying so.
type SaveError struct {
	Path string
	Err  error
}

func (e *SaveError) Error() string { return fmt.Sprintf("save state %s: %v", e.Path, e.Err) }
func (e *SaveError) Unwrap() error { return e.Err }

// Write gob-encodes v into path atomically; a failure is a *SaveError and
// leaves no temporary file.
func Write(path string, v any) error {
	if err := write(path, v); err != nil {
		return &SaveError{Path: path, Err: err}
	}
	return nil
}

func write(path string, v any) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+tempMarker+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// The header's length and checksum are only known at the end: write
	// a blank one, stream the payload through the hash, then fill it in.
	if _, err = f.Write(make([]byte, headerSize)); err != nil {
		return err
	}
	sum := sha256.New()
	counter := &countingWriter{w: io.MultiWriter(f, sum)}
	w := bufio.NewWriterSize(counter, 1<<20)
	if err = gob.NewEncoder(w).Encode(v); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if _, err = f.WriteAt(header(counter.n, sum), 0); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func header(n int64, sum hash.Hash) []byte {
	h := make([]byte, 0, headerSize)
	h = append(h, magic...)
	h = binary.LittleEndian.AppendUint32(h, version)
	h = binary.LittleEndian.AppendUint64(h, uint64(n))
	return sum.Sum(h)
}

// syncDir makes a rename in dir durable: without it a power cut can
// forget the rename even though the file's bytes are on disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Read decodes the state file at path into v after checking it whole.
func Read(path string, v any) error {
	f, err := openVerified(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(int64(headerSize), io.SeekStart); err != nil {
		return err
	}
	if err := gob.NewDecoder(bufio.NewReaderSize(f, 1<<20)).Decode(v); err != nil {
		// The checksum matched, so these are the bytes Write wrote: a
		// different type, most likely a state of another kind.
		return fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	return nil
}

// Decode is Read on a state file held in memory.
func Decode(data []byte, v any) error {
	if err := verify(bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	if err := gob.NewDecoder(bytes.NewReader(data[headerSize:])).Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// Verify checks the state file at path (header, length, checksum) without
// decoding it, so a caller can refuse a damaged state before any work.
func Verify(path string) error {
	f, err := openVerified(path)
	if err == nil {
		f.Close()
	}
	return err
}

// openVerified opens the state file at path and checks it whole.
func openVerified(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		if err = verify(f, st.Size()); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// verify reads a whole state file of size bytes from r and checks it.
func verify(r io.Reader, size int64) error {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, size)
	}
	if string(h[:len(magic)]) != magic {
		return fmt.Errorf("%w: not a dghcore state file", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(h[len(magic):]); v != version {
		return fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, v, version)
	}
	n := binary.LittleEndian.Uint64(h[len(magic)+4:])
	if n != uint64(size-int64(headerSize)) {
		return fmt.Errorf("%w: %d payload bytes, the header says %d (cut short?)", ErrCorrupt, size-int64(headerSize), n)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, r); err != nil {
		return err
	}
	if !bytes.Equal(sum.Sum(nil), h[len(magic)+12:]) {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return nil
}

// RemoveTemporaries deletes the temporary files an interrupted Write left
// in dir (a process killed between creating and renaming one) and returns
// their names. Call it only while no other process writes into dir.
func RemoveTemporaries(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.Contains(e.Name(), tempMarker) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return removed, err
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}

// Setting is one input a state depends on, by name, with its value as
// text (a flag's name and value, say).
type Setting struct{ Name, Value string }

// Settings lists what a state depends on. A state saved under one list is
// only resumed under an equal one.
type Settings []Setting

// Diff names the settings that differ between a saved list and the
// current one, with both values, as "seed 3 (saved) vs 4 (now)"; it is
// empty when the lists are equal.
func (saved Settings) Diff(now Settings) string {
	old := make(map[string]string, len(saved))
	for _, s := range saved {
		old[s.Name] = s.Value
	}
	var parts []string
	seen := make(map[string]bool, len(now))
	for _, s := range now {
		seen[s.Name] = true
		v, ok := old[s.Name]
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("%s not in the saved state vs %s (now)", s.Name, s.Value))
		case v != s.Value:
			parts = append(parts, fmt.Sprintf("%s %s (saved) vs %s (now)", s.Name, v, s.Value))
		}
	}
	for _, s := range saved {
		if !seen[s.Name] {
			parts = append(parts, fmt.Sprintf("%s %s (saved) vs not set (now)", s.Name, s.Value))
		}
	}
	return strings.Join(parts, "; ")
}

// Frame wraps a gob payload in the header Write gives it, for tests that
// craft payloads (the fuzz targets of the state readers).
func Frame(payload []byte) []byte {
	sum := sha256.New()
	sum.Write(payload)
	return append(header(int64(len(payload)), sum), payload...)
}

// Payload returns the gob payload of a state file held in memory, after
// checking it as Read does.
func Payload(data []byte) ([]byte, error) {
	if err := verify(bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, err
	}
	return data[headerSize:], nil
}
