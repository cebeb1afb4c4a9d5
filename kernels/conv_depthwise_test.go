package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// absTaps returns |w|, the taps of the magnitude an output's roundings
// scale with.
func absTaps(w *dwTaps) *dwTaps {
	var a dwTaps
	for i, v := range w {
		a[i] = float32(math.Abs(float64(v)))
	}
	return &a
}

// absSlice returns |s| elementwise.
func absSlice(s []float32) []float32 {
	a := make([]float32, len(s))
	for i, v := range s {
		a[i] = float32(math.Abs(float64(v)))
	}
	return a
}

// TestDepthwisePlane checks the path's 3x3 and 5x5 depthwise plane
// kernels against the generic rows on framed planes as newDWGeom sizes
// them (where the SIMD kernels must run, not fall back), storing and
// adding, with every width's masked last vector, and that they write
// nothing past each row.
func TestDepthwisePlane(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, k := range []int{3, 5} {
			for _, s := range []int{1, 2} {
				for _, hw := range [][2]int{{1, 1}, {3, 7}, {5, 16}, {4, 17}, {9, 33}, {7, 40}, {2, 47}, {6, 28}} {
					p := ConvParams{N: 1, C: 1, H: hw[0], W: hw[1], K: 1, KH: k, KW: k, StrideH: s, StrideW: s,
						PadH: k / 2, PadW: k / 2, DilH: 1, DilW: 1, Groups: 1}
					name := fmt.Sprintf("%dx%d stride %d, %dx%d", k, k, s, hw[0], hw[1])
					g := newDWGeom(&p)
					x := randSlice(r, g.padLen, 1)
					var w dwTaps
					copy(w[:], randSlice(r, k*k+1, 1))
					ldy := g.ow0 + 3
					if Active() != Generic && !dwPlaneFits(pathLanes(), k, s, g.oh0, g.ow0, make([]float32, g.oh0*ldy), ldy, x, g.wp) {
						t.Fatalf("%s: the framed plane is too short for the plane kernel", name)
					}
					for _, acc := range []bool{false, true} {
						y0 := randSlice(r, g.oh0*ldy, 1)
						got, want := slices.Clone(y0), slices.Clone(y0)
						active.conv.dwPlane(k, s, g.oh0, g.ow0, got, ldy, x, g.wp, &w, acc)
						dwPlaneGeneric(k, s, g.oh0, g.ow0, want, ldy, x, g.wp, &w, acc)
						mag := make([]float32, len(y0))
						if acc {
							mag = absSlice(y0)
						}
						dwPlaneGeneric(k, s, g.oh0, g.ow0, mag, ldy, absSlice(x), g.wp, absTaps(&w), true)
						for i := range got {
							if i%ldy >= g.ow0 {
								if got[i] != y0[i] {
									t.Fatalf("%s acc %v: y[%d] past the row was written", name, acc, i)
								}
								continue
							}
							checkClose(t, fmt.Sprintf("%s acc %v: y", name, acc), i,
								float64(got[i]), float64(want[i]), float64(mag[i]), float64(k*k+3)*u32)
						}
					}
				}
			}
		}
	})
}

// pathLanes is the active path's depthwise vector (dwLanes, 8 where
// zero).
func pathLanes() int {
	if active.conv.dwLanes == 0 {
		return 8
	}
	return active.conv.dwLanes
}

// TestDepthwisePlaneGrad checks the path's filter-gradient plane kernels
// against the generic rows on framed planes and dy as newDWGeom sizes
// them (where the SIMD kernels must run, not fall back).
func TestDepthwisePlaneGrad(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, k := range []int{3, 5} {
			for _, s := range []int{1, 2} {
				for _, hw := range [][2]int{{1, 1}, {3, 7}, {5, 16}, {4, 17}, {9, 33}, {7, 40}, {6, 28}, {14, 14}} {
					p := ConvParams{N: 1, C: 1, H: hw[0], W: hw[1], K: 1, KH: k, KW: k, StrideH: s, StrideW: s,
						PadH: k / 2, PadW: k / 2, DilH: 1, DilW: 1, Groups: 1}
					name := fmt.Sprintf("%dx%d stride %d, %dx%d", k, k, s, hw[0], hw[1])
					g := newDWGeom(&p)
					x := randSlice(r, g.padLen, 1)
					rows := g.oh0
					if s == 1 {
						rows = 1 // the flattened plane
					}
					dy := randSlice(r, g.outLen, 1)
					lanes := pathLanes()
					if s == 2 {
						lanes = 8 // every path's stride-2 gradient kernels
					}
					if Active() != Generic && !dwGradFits(lanes, k, s, rows, g.outRow, dy, x, g.wp) {
						t.Fatalf("%s: dy or the framed plane is too short for the gradient kernel", name)
					}
					var got, want, mag dwGradSums
					active.conv.dwPlaneGrad(k, s, rows, g.outRow, dy, x, g.wp, &got)
					dwPlaneGradGeneric(k, s, rows, g.outRow, dy, x, g.wp, &want)
					dwPlaneGradGeneric(k, s, rows, g.outRow, absSlice(dy), absSlice(x), g.wp, &mag)
					checkGradSums(t, name, k, &got, &want, &mag, rows*g.outRow)
				}
			}
		}
	})
}

// TestDepthwiseRows checks the path's forward and gradient row kernels
// against the definitions, on rows of lengths around one to four
// vectors and none, with the last row just as long as the outputs need
// (at stride 2 a float short of the kernels' last whole vector, which
// the Go tail then computes) or longer.
func TestDepthwiseRows(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, k := range []int{3, 5} {
			for _, s := range []int{1, 2} {
				for _, n := range []int{0, 1, 7, 8, 9, 16, 23, 24, 33} {
					for _, extra := range []int{0, 1, 9} {
						name := fmt.Sprintf("%dx%d stride %d, %d outputs, %d floats spare", k, k, s, n, extra)
						// The last row just long enough for n outputs, plus extra.
						last := k + extra
						if n > 0 {
							last += s * (n - 1)
						}
						ldx := last + 3
						x := randSlice(r, (k-1)*ldx+last, 1)
						var w dwTaps
						copy(w[:], randSlice(r, k*k+1, 1))
						for _, acc := range []bool{false, true} {
							y0 := randSlice(r, n, 1)
							got, want := slices.Clone(y0), slices.Clone(y0)
							active.conv.dwRow(k, s, got, x, ldx, &w, acc)
							dwRowGeneric(k, s, want, x, ldx, &w, acc)
							mag := make([]float32, n)
							if acc {
								mag = absSlice(y0)
							}
							dwRowGeneric(k, s, mag, absSlice(x), ldx, absTaps(&w), true)
							for i := range got {
								checkClose(t, fmt.Sprintf("%s acc %v: y", name, acc), i,
									float64(got[i]), float64(want[i]), float64(mag[i]), float64(k*k+3)*u32)
							}
						}
						dy := randSlice(r, n, 1)
						var g0 dwGradSums
						for i := range k * k {
							g0[i*dwGradLanes] = float32(r.NormFloat64())
						}
						got, want, mag := g0, g0, g0
						for i, v := range mag {
							mag[i] = float32(math.Abs(float64(v)))
						}
						active.conv.dwRowGrad(k, s, dy, x, ldx, &got)
						dwRowGradGeneric(k, s, dy, x, ldx, &want)
						dwRowGradGeneric(k, s, absSlice(dy), absSlice(x), ldx, &mag)
						checkGradSums(t, name, k, &got, &want, &mag, n)
					}
				}
			}
		}
	})
}

// checkGradSums compares the tap totals of the lane sums got and want,
// with the rounding bound of sums of n products (and the lanes' total)
// of magnitude mag's totals.
func checkGradSums(t *testing.T, name string, k int, got, want, mag *dwGradSums, n int) {
	t.Helper()
	total := func(g *dwGradSums, i int) float64 {
		var v float64
		for _, l := range g[i*dwGradLanes : (i+1)*dwGradLanes] {
			v += float64(l)
		}
		return v
	}
	for i := range k * k {
		checkClose(t, name+": grad", i, total(got, i), total(want, i), total(mag, i), float64(n+dwGradLanes+2)*u32)
	}
}
