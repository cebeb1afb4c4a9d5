package statefile

import (
	"encoding/gob"
	"os"
	"path/filepath"
	"testing"
)

type sample struct {
	Iter   int
	Values []float32
}

func TestWriteRoundTripAndReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.gob")
	for i, want := range []sample{{Iter: 1, Values: []float32{1, 2}}, {Iter: 2, Values: []float32{3}}} {
		if err := Write(path, &want); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var got sample
		err = gob.NewDecoder(f).Decode(&got)
		f.Close()
		if err != nil || got.Iter != want.Iter || len(got.Values) != len(want.Values) {
			t.Fatalf("write %d: read back %+v, %v; want %+v", i, got, err, want)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("folder holds %v (%v), want only the state file", entries, err)
	}
}

func TestWriteFailureLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.gob")
	// A channel cannot be gob-encoded: the write fails after the
	// temporary file exists, which must then be removed.
	if err := Write(path, make(chan int)); err == nil {
		t.Fatal("encoding a channel succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("folder holds %v (%v) after a failed write, want nothing", entries, err)
	}
}
