package statefile

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

type sample struct {
	Iter   int
	Values []float32
}

// consistent makes a sample whose values all repeat its iteration, so a
// reader can tell a whole state from a mixture of two.
func consistent(iter, n int) sample {
	s := sample{Iter: iter, Values: make([]float32, n)}
	for i := range s.Values {
		s.Values[i] = float32(iter)
	}
	return s
}

func (s sample) check() error {
	for i, v := range s.Values {
		if v != float32(s.Iter) {
			return fmt.Errorf("iteration %d, value %d is %g", s.Iter, i, v)
		}
	}
	return nil
}

func TestWriteRoundTripAndReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.gob")
	for i, want := range []sample{consistent(1, 2), consistent(2, 1)} {
		if err := Write(path, &want); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		var got sample
		if err := Read(path, &got); err != nil || got.Iter != want.Iter || len(got.Values) != len(want.Values) {
			t.Fatalf("write %d: read back %+v, %v; want %+v", i, got, err, want)
		}
		if err := Verify(path); err != nil {
			t.Fatalf("write %d: verify: %v", i, err)
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
	err := Write(path, make(chan int))
	var se *SaveError
	if !errors.As(err, &se) || se.Path != path {
		t.Fatalf("encoding a channel: %v, want a *SaveError for %s", err, path)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("folder holds %v (%v) after a failed write, want nothing", entries, err)
	}
	// A folder that is not there fails at once, also as a SaveError.
	if err := Write(filepath.Join(dir, "gone", "state"), 1); !errors.As(err, &se) {
		t.Fatalf("write into a missing folder: %v", err)
	}
}

// TestCorruptionRefused flips every byte of a small state file in turn,
// and cuts it at every length: each damaged copy must be refused as
// corrupt, never decoded.
func TestCorruptionRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := Write(path, consistent(7, 3)); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s sample
	if err := Decode(good, &s); err != nil || s.Iter != 7 {
		t.Fatalf("decode the good file: %+v, %v", s, err)
	}
	for i := range good {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(good)
			bad[i] ^= bit
			if err := Decode(bad, &s); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d flipped by %#x: %v, want ErrCorrupt", i, bit, err)
			}
		}
	}
	for n := range len(good) {
		if err := Decode(good[:n], &s); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	if err := Decode(append(bytes.Clone(good), 0), &s); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("one byte appended: %v, want ErrCorrupt", err)
	}
	// The file on disk goes through the same checks.
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Read(path, &s); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read of a flipped file: %v", err)
	}
	if err := Verify(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify of a flipped file: %v", err)
	}
}

func TestRemoveTemporaries(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"dgh.state" + tempMarker + "123", "brecq.state" + tempMarker + "9", "dgh.state", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveTemporaries(dir)
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v; want the two temporaries", removed, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left %v, want dgh.state and notes.txt", entries)
	}
}

// childEnv makes the test binary, re-executed, write states in a loop
// (TestSaveLoopChild) instead of running the tests.
const childEnv = "DGHCORE_STATEFILE_CHILD"

// TestSaveLoopChild is the child process of TestSIGKILLDuringSaves: it
// saves ever newer consistent states until it is killed.
func TestSaveLoopChild(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("only runs as the child of TestSIGKILLDuringSaves")
	}
	start := 0
	var s sample
	if err := Read(path, &s); err == nil {
		start = s.Iter + 1
	}
	for i := start; ; i++ {
		if err := Write(path, consistent(i, 1<<18)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
}

// TestSIGKILLDuringSaves kills a process that saves states in a loop at
// random moments; after every kill the state on disk must be whole (the
// checksum passes and every value belongs to one iteration) and no older
// than the last one read.
func TestSIGKILLDuringSaves(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes for a few seconds")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	rng := rand.New(rand.NewPCG(1, 2))
	last, orphans := -1, 0
	for round := range 25 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSaveLoopChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the first state, then kill at a random moment.
		for deadline := time.Now().Add(10 * time.Second); last < 0; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no state written in 10 s: %s", stderr.String())
			}
		}
		time.Sleep(time.Duration(5+rng.IntN(60)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended by %v, not by the kill: %s", round, err, stderr.String())
		}
		var s sample
		if err := Read(path, &s); err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		}
		if err := s.check(); err != nil {
			t.Fatalf("round %d: a mixed state: %v", round, err)
		}
		if s.Iter < last {
			t.Fatalf("round %d: state of iteration %d after %d", round, s.Iter, last)
		}
		last = s.Iter
		removed, err := RemoveTemporaries(dir)
		if err != nil {
			t.Fatal(err)
		}
		orphans += len(removed)
	}
	t.Logf("25 kills: last iteration %s, %d orphaned temporaries removed", strconv.Itoa(last), orphans)
	if orphans == 0 {
		t.Log("no kill landed inside a write")
	}
}
