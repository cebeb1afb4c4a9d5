package optim

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// Fixtures come from tools/torchref/optim.py (PyTorch 1.13).

// fixture reads testdata/<stem>.npy as float64 values with its shape,
// whatever float type it was stored in.
func fixture(t *testing.T, stem string) ([]float64, []int) {
	t.Helper()
	a, err := tensor.ReadNPYArray(filepath.Join("testdata", stem+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	switch a.DType {
	case tensor.Float64:
		return a.Float64, a.Shape
	case tensor.Float32:
		out := make([]float64, len(a.Float32))
		for i, v := range a.Float32 {
			out[i] = float64(v)
		}
		return out, a.Shape
	}
	t.Fatalf("%s: dtype %s, want a float type", stem, a.DType)
	return nil, nil
}

// withinTol reports whether got is within the tolerance of docs/DESIGN.md, "Testing and numerics", of want:
// 1e-4 relative with a 1e-5 absolute floor.
func withinTol(got, want float64) bool {
	return math.Abs(got-want) <= 1e-5+1e-4*math.Abs(want)
}

// sameFloat is bit-for-bit equality that also matches infinities.
func sameFloat(got, want float64) bool {
	return got == want || (math.IsNaN(got) && math.IsNaN(want))
}

// viaGob round-trips a state through encoding/gob, as saving and
// resuming a run would.
func viaGob[S any](st S) (S, error) {
	var buf bytes.Buffer
	var out S
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return out, fmt.Errorf("encode %T: %w", st, err)
	}
	if err := gob.NewDecoder(&buf).Decode(&out); err != nil {
		return out, fmt.Errorf("decode %T: %w", st, err)
	}
	return out, nil
}
