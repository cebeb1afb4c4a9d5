package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDepthwisePlane checks the path's 3x3 depthwise plane kernel against
// the generic rows on framed planes as newDWGeom sizes them (where the
// SIMD kernels must run, not fall back), storing and adding, with every
// width's masked last vector, and that it writes nothing past each row.
func TestDepthwisePlane(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, s := range []int{1, 2} {
			for _, hw := range [][2]int{{1, 1}, {3, 7}, {5, 16}, {4, 17}, {9, 33}, {7, 40}, {2, 47}} {
				p := ConvParams{N: 1, C: 1, H: hw[0], W: hw[1], K: 1, KH: 3, KW: 3, StrideH: s, StrideW: s,
					PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1}
				g := newDWGeom(&p)
				x := randSlice(r, g.padLen, 1)
				var w [10]float32
				copy(w[:], randSlice(r, 10, 1))
				ldy := g.ow0 + 3
				lanes := active.conv.dwLanes
				if lanes == 0 {
					lanes = 8
				}
				if Active() != Generic && !dwPlaneFits(lanes, s, g.oh0, g.ow0, make([]float32, g.oh0*ldy), ldy, x, g.wp) {
					t.Fatalf("stride %d, %dx%d: the framed plane is too short for the plane kernel", s, hw[0], hw[1])
				}
				for _, acc := range []bool{false, true} {
					y0 := randSlice(r, g.oh0*ldy, 1)
					got, want := slices.Clone(y0), slices.Clone(y0)
					active.conv.dwPlane3x3(s, g.oh0, g.ow0, got, ldy, x, g.wp, &w, acc)
					dwPlane3x3Generic(s, g.oh0, g.ow0, want, ldy, x, g.wp, &w, acc)
					// The magnitude each output's roundings scale with.
					var wa [10]float32
					for i, v := range w {
						wa[i] = float32(math.Abs(float64(v)))
					}
					xa := make([]float32, len(x))
					for i, v := range x {
						xa[i] = float32(math.Abs(float64(v)))
					}
					mag := make([]float32, len(y0))
					for i, v := range y0 {
						if acc {
							mag[i] = float32(math.Abs(float64(v)))
						}
					}
					dwPlane3x3Generic(s, g.oh0, g.ow0, mag, ldy, xa, g.wp, &wa, true)
					for i := range got {
						if i%ldy >= g.ow0 {
							if got[i] != y0[i] {
								t.Fatalf("stride %d, %dx%d acc %v: y[%d] past the row was written", s, hw[0], hw[1], acc, i)
							}
							continue
						}
						checkClose(t, fmt.Sprintf("stride %d, %dx%d acc %v: y", s, hw[0], hw[1], acc), i,
							float64(got[i]), float64(want[i]), float64(mag[i]), 12*u32)
					}
				}
			}
		}
	})
}
