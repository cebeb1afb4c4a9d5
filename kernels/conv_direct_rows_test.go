package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestConvDirectRows checks every kernel of convKernels.directRows (each height,
// storing and adding, runs and pairs) against convDirectRowsGeneric,
// under masks that keep every lane, none, or a random set, and that no
// lane outside the mask is written (stored tiles over NaN: never read).
func TestConvDirectRows(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		if active.conv.directRows == nil {
			t.Skip("no variable-height direct kernels on this path")
		}
		r := rand.New(rand.NewPCG(7, 8))
		abs := func(v []float32) []float32 {
			out := make([]float32, len(v))
			for i, e := range v {
				out[i] = float32(math.Abs(float64(e)))
			}
			return out
		}
		for h := 1; h <= maxDirectRows; h++ {
			for _, kc := range []int{1, 4, 9} {
				for panels := range 3 {
					for set := range 2 {
						for pair := range 2 {
							for _, mask := range []int{0xffff, 0, r.IntN(1 << 16)} {
								a := randSlice(r, panels*h*kc, 1)
								x := randSlice(r, 300, 1)
								d, e := 8, 8
								if pair == 1 {
									d, e = r.IntN(100), 8+r.IntN(8)
								}
								off := make([]int32, kc)
								for p := range off {
									off[p] = int32(r.IntN(len(x) - d - 16))
								}
								const ldc = 31
								c0 := randSlice(r, max(panels*h, 1)*ldc+e+8, 1)
								if set == 1 {
									for i := range c0 {
										if i%ldc < e+8 {
											c0[i] = float32(math.NaN())
										}
									}
								}
								got, want := slices.Clone(c0), slices.Clone(c0)
								active.conv.directRows[set][pair][h](kc, panels, a, x, off, d, got, ldc, e, mask)
								convDirectRowsGeneric(h, set == 1, pair == 1, kc, panels, a, x, off, d, want, ldc, e, mask)
								mag := abs(c0)
								if set == 1 {
									clear(mag)
								}
								convDirectRowsGeneric(h, false, pair == 1, kc, panels, abs(a), abs(x), off, d, mag, ldc, e, mask)
								what := fmt.Sprintf("h=%d kc=%d panels=%d set=%d pair=%d e=%d mask=%#x: c", h, kc, panels, set, pair, e, mask)
								for i := range got {
									if math.IsNaN(float64(want[i])) {
										if !math.IsNaN(float64(got[i])) {
											t.Fatalf("%s[%d] = %g outside the mask", what, i, got[i])
										}
										continue
									}
									checkClose(t, what, i, float64(got[i]), float64(want[i]), float64(mag[i]), float64(kc+2)*u32)
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestDirectRowsSplit checks that the split covers every channel once,
// in panels of at most maxDirectRows rows, as few as that allows, whose
// heights differ by at most one.
func TestDirectRowsSplit(t *testing.T) {
	for kg := 1; kg <= 600; kg++ {
		n1, h1, n2 := directRowsSplit(kg)
		if n1 < 1 || n2 < 0 || h1 > maxDirectRows || n1*h1+n2*(h1-1) != kg {
			t.Fatalf("directRowsSplit(%d) = %d x %d + %d x %d", kg, n1, h1, n2, h1-1)
		}
		if want := (kg + maxDirectRows - 1) / maxDirectRows; n1+n2 != want {
			t.Fatalf("directRowsSplit(%d): %d panels, want %d", kg, n1+n2, want)
		}
	}
}
