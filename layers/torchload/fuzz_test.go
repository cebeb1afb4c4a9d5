package torchload

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that no input makes LoadBytes panic or return a
// malformed StateDict. The seeds are every fixture (good checkpoints in
// both formats, malicious and foreign files) plus truncated and
// bit-flipped copies of them. Run it with
//
//	go test -fuzz FuzzLoad -fuzztime 60s ./layers/torchload/
func FuzzLoad(f *testing.F) {
	var files []string
	for _, pattern := range []string{"*.pt", "*.pkl", "*.zip", "*.txt"} {
		m, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		f.Fatal("no fixtures in testdata")
	}
	for _, file := range files {
		data := readFixture(f, filepath.Base(file))
		f.Add(data)
		for _, cut := range []int{len(data) / 3, len(data) / 2, len(data) - 1} {
			if cut > 0 {
				f.Add(data[:cut])
			}
		}
		for _, at := range []int{len(data) / 5, len(data) / 2, 3 * len(data) / 4} {
			if at < len(data) {
				c := bytes.Clone(data)
				c[at] ^= 0x10
				f.Add(c)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := LoadBytes(data)
		if err != nil {
			if sd != nil {
				t.Fatalf("a StateDict and the error %v", err)
			}
			return
		}
		checkWellFormed(t, sd)
	})
}
