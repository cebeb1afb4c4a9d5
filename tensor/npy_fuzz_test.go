package tensor

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzReadNPY checks that no input makes ReadNPYArrayFrom panic or return
// an array whose data disagrees with its shape and type, and that a
// float32 array survives a write and a read. The seeds are the fixtures
// in testdata. CI runs it for a few seconds; run it longer with
//
//	go test -run '^$' -fuzz FuzzReadNPY -fuzztime 60s ./tensor/
func FuzzReadNPY(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.npy"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadNPYArrayFrom(bytes.NewReader(data))
		if err != nil {
			return
		}
		n := Numel(a.Shape)
		lengths := map[DType]int{Float32: len(a.Float32), Float64: len(a.Float64), Int64: len(a.Int64), Uint8: len(a.Uint8)}
		if got, ok := lengths[a.DType]; !ok || got != n {
			t.Fatalf("%s array of shape %v holds %d values", a.DType, a.Shape, got)
		}
		if a.DType != Float32 {
			return
		}
		var buf bytes.Buffer
		if err := WriteNPYTo(&buf, a.Tensor()); err != nil {
			t.Fatal(err)
		}
		b, err := ReadNPYArrayFrom(&buf)
		if err != nil || !slices.Equal(b.Shape, a.Shape) || len(b.Float32) != n {
			t.Fatalf("round trip: %v, shape %v", err, b.Shape)
		}
		for i, v := range a.Float32 {
			if math.Float32bits(b.Float32[i]) != math.Float32bits(v) {
				t.Fatalf("round trip: value %d is %v, was %v", i, b.Float32[i], v)
			}
		}
	})
}
