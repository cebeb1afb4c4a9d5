package kernels

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// frozenForms is how many packed forms the frozen w holds, -1 when w is
// not frozen.
func frozenForms(w []float32) int {
	frozen.mu.Lock()
	defer frozen.mu.Unlock()
	e := frozen.m[&w[0]]
	if e == nil {
		return -1
	}
	return len(e.packs)
}

// TestFreezeWeights checks, on every path and at 1 and 3 workers, that a
// frozen weight's forward and backward-data passes give bit for bit what
// the unfrozen ones give, on the call that packs and keeps the form and
// on the call that reuses it; that the GEMM routes keep forms; and that
// thawing drops them, so new contents count again.
func TestFreezeWeights(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		r := rand.New(rand.NewPCG(5, 0))
		kept := 0
		for _, procs := range []int{1, 3} {
			runtime.GOMAXPROCS(procs)
			for _, p := range convCases {
				x := randSlice(r, p.xLen(), 1)
				w := randSlice(r, p.wLen(), 1)
				dy := randSlice(r, p.yLen(), 1)
				wantY := make([]float32, p.yLen())
				wantDX := make([]float32, p.xLen())
				Conv2dForward(p, x, w, nil, wantY)
				Conv2dBackwardDataSet(p, dy, w, wantDX)

				thaw := FreezeWeights(w)
				for call := range 2 {
					y := make([]float32, p.yLen())
					dx := make([]float32, p.xLen())
					Conv2dForward(p, x, w, nil, y)
					Conv2dBackwardDataSet(p, dy, w, dx)
					sameConvBits(t, p, procs, "frozen y", y, wantY)
					sameConvBits(t, p, procs, "frozen dx", dx, wantDX)
					if call == 0 {
						kept += frozenForms(w)
					}
				}
				thaw()
				thaw() // a second call does nothing
				if n := frozenForms(w); n != -1 {
					t.Fatalf("%s: %d forms left after thaw", convName(p), n)
				}
				// New contents after the thaw are used.
				for i := range w {
					w[i] = -w[i]
				}
				y := make([]float32, p.yLen())
				Conv2dForward(p, x, w, nil, y)
				for i := range y {
					// Negation is exact; only a zero's sign may differ.
					if -y[i] != wantY[i] {
						t.Fatalf("%s, %d workers: with the weights negated after the thaw, y[%d] = %g, want %g", convName(p), procs, i, y[i], -wantY[i])
					}
				}
			}
		}
		if kept == 0 {
			t.Error("no convolution kept a packed form of its frozen weights")
		}
		if n := frozen.count.Load(); n != 0 {
			t.Errorf("%d slices still frozen after every thaw", n)
		}
	})
}

// TestFreezeWeightsSlices checks which slices count as frozen: the same
// first element and length only, twice frozen needing two thaws.
func TestFreezeWeightsSlices(t *testing.T) {
	p := ConvParams{N: 1, C: 8, H: 6, W: 6, K: 8, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Groups: 1}
	r := rand.New(rand.NewPCG(6, 0))
	buf := randSlice(r, 2*p.wLen(), 1)
	w := buf[:p.wLen()]
	x := randSlice(r, p.xLen(), 1)
	y := make([]float32, p.yLen())

	thawLonger := FreezeWeights(buf)
	Conv2dForward(p, x, w, nil, y)
	if n := frozenForms(buf); n != 0 {
		t.Errorf("a shorter slice of the same start kept %d forms under the longer one", n)
	}
	// Freezing the shorter slice replaces the longer one's entry, and
	// the longer one's thaw leaves the shorter one frozen.
	thawShorter := FreezeWeights(w)
	thawLonger()
	Conv2dForward(p, x, w, nil, y)
	if n := frozenForms(w); n != 1 {
		t.Errorf("the shorter slice after the longer one's thaw: %d forms, want 1", n)
	}
	thawShorter()
	if n := frozen.count.Load(); n != 0 {
		t.Errorf("%d slices frozen after both thaws", n)
	}

	thaw1, thaw2 := FreezeWeights(w), FreezeWeights(w)
	Conv2dForward(p, x, w, nil, y)
	if n := frozenForms(w); n != 1 {
		t.Errorf("frozen pointwise weights: %d forms, want 1", n)
	}
	thaw1()
	if n := frozenForms(w); n != 1 {
		t.Errorf("after one of two thaws: %d forms, want 1 (still frozen)", n)
	}
	thaw2()
	if n := frozenForms(w); n != -1 {
		t.Errorf("after both thaws: %d forms, want none", n)
	}
}
