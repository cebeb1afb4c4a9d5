package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The small autograd kernels against their float64 definitions, one row
// per kernel; all of them accumulate (backward) or overwrite (forward) as
// the file says, which the non-zero starting dst checks.
func TestAutogradKernels(t *testing.T) {
	x := []float32{-2.5, -1, -0.25, 0, 0.2, 0.3, 1, 4, 6.5}
	y := []float32{1.5, -2, 0.5, 3, -0.75, 0.3, 2, -1, 0.125}
	pos := []float32{0.01, 0.25, 1, 2, 9, 100, 0.5, 3, 7}
	start := func() []float32 {
		d := make([]float32, len(x))
		for i := range d {
			d[i] = 0.5 * float32(i)
		}
		return d
	}
	tests := []struct {
		name string
		run  func(dst []float32)
		// want gives element i from its starting value.
		want func(i int, start float64) float64
	}{
		{"MulAcc", func(d []float32) { MulAcc(d, x, y) },
			func(i int, s float64) float64 { return s + float64(x[i])*float64(y[i]) }},
		{"AddScalar", func(d []float32) { AddScalar(d, x, 0.75) },
			func(i int, _ float64) float64 { return float64(x[i]) + 0.75 }},
		{"MaxScalar", func(d []float32) { MaxScalar(d, x, 0.2) },
			func(i int, _ float64) float64 { return math.Max(float64(x[i]), float64(float32(0.2))) }},
		{"MaxScalarBackward", func(d []float32) { MaxScalarBackward(x, y, d, 0.2) },
			func(i int, s float64) float64 {
				if x[i] >= 0.2 { // the bound itself passes, as torch.clamp
					return s + float64(y[i])
				}
				return s
			}},
		{"Sqrt", func(d []float32) { Sqrt(d, pos) },
			func(i int, _ float64) float64 { return math.Sqrt(float64(pos[i])) }},
		{"SqrtBackward", func(d []float32) { SqrtBackward(pos, y, d) },
			func(i int, s float64) float64 { return s + float64(y[i])/(2*float64(pos[i])) }},
		{"Pow", func(d []float32) { Pow(d, pos, 2.4) },
			func(i int, _ float64) float64 { return math.Pow(float64(pos[i]), 2.4) }},
		{"PowBackward", func(d []float32) { PowBackward(pos, y, d, 2.4) },
			func(i int, s float64) float64 {
				return s + float64(y[i])*2.4*math.Pow(float64(pos[i]), 1.4)
			}},
		{"PowBackward/p=0", func(d []float32) { PowBackward(x, y, d, 0) },
			func(_ int, s float64) float64 { return s }},
		{"ClampChannels", func(d []float32) {
			ClampChannels(1, 3, 3, x, []float32{-1, 0, 1}, []float32{0, 0.25, 5}, d)
		}, func(i int, _ float64) float64 {
			lo, hi := []float64{-1, 0, 1}[i/3], []float64{0, 0.25, 5}[i/3]
			return math.Min(math.Max(float64(x[i]), lo), hi)
		}},
	}
	for _, tt := range tests {
		d := start()
		tt.run(d)
		for i, got := range d {
			want := tt.want(i, 0.5*float64(i))
			if math.Abs(float64(got)-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Errorf("%s[%d] = %v, want %v", tt.name, i, got, want)
			}
		}
	}
}

// lpInput returns a and b of length n whose differences span several
// decades, with some exactly equal pairs (zero difference) and some
// differences below the smallest normal float32.
func lpInput(r *rand.Rand, n int) (a, b []float32) {
	a, b = randSlice(r, n, 1), randSlice(r, n, 1)
	for i := range a {
		switch i % 7 {
		case 2:
			b[i] = a[i]
		case 4:
			b[i] = a[i] + a[i]*float32(math.Pow(10, -float64(i%9)))
		case 5:
			a[i], b[i] = 3e-39, 1e-39
		}
	}
	return a, b
}

// TestLpDistance checks the Lp distance and its gradient on every kernel
// path against math.Pow of the float32 differences. The generic path and
// p = 2 are exact up to float64 summation order (the gradient to 3 units
// in the last place); the SIMD paths carry the quant family's float32
// power (TestQuantErrorLp's 1e-6 relative) in the forward sum and, for
// |p-1| <= 6, in the gradient.
func TestLpDistance(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		// 7 and 8 straddle the SIMD power's range; p < 1 has slopes
		// that grow towards d = 0.
		for _, p := range []float32{2, 2.4, 1.5, 1, 0.5, 7, 8} {
			tol, gtol := 1e-12, 0.0
			if Active() != Generic && p != 2 && p <= 7 {
				tol = 1e-6
			}
			if Active() != Generic && p != 2 && math.Abs(float64(p)-1) <= 6 {
				gtol = 1e-6
			}
			for _, n := range testLengths {
				a, b := lpInput(r, n)
				var want float64
				for i := range a {
					want += math.Pow(math.Abs(float64(a[i]-b[i])), float64(p))
				}
				checkClose(t, fmt.Sprintf("p=%g n=%d LpDistance", p, n), 0, LpDistance(a, b, p), want, want, tol)

				const g = -0.75
				da, db := randSlice(r, n, 1), randSlice(r, n, 1)
				da0, db0 := slices.Clone(da), slices.Clone(db)
				LpDistanceBackward(a, b, p, g, da, db)
				daOnly, dbOnly := slices.Clone(da0), slices.Clone(db0)
				LpDistanceBackward(a, b, p, g, daOnly, nil)
				LpDistanceBackward(a, b, p, g, nil, dbOnly)
				LpDistanceBackward(a, b, p, g, nil, nil) // both gradients optional
				for i := range a {
					d := float64(a[i] - b[i])
					w := 0.0
					if d != 0 {
						w = g * float64(p) * math.Pow(math.Abs(d), float64(p)-1) * math.Copysign(1, d)
					}
					// 3 units in the last place of the sum, plus the power's error.
					ba := 3*u32*(math.Abs(float64(da0[i]))+math.Abs(w)) + gtol*math.Abs(w)
					bb := 3*u32*(math.Abs(float64(db0[i]))+math.Abs(w)) + gtol*math.Abs(w)
					if !near(float64(da[i]), float64(da0[i])+w, 1, ba) || !near(float64(db[i]), float64(db0[i])-w, 1, bb) {
						t.Fatalf("p=%g n=%d: gradient %d: da %g db %g, want %g and %g", p, n, i, da[i], db[i], float64(da0[i])+w, float64(db0[i])-w)
					}
					if daOnly[i] != da[i] || dbOnly[i] != db[i] {
						t.Fatalf("p=%g n=%d: one-sided gradients %g %g differ from %g %g", p, n, daOnly[i], dbOnly[i], da[i], db[i])
					}
				}
			}
		}
	})
}

// TestPowFast compares powAny, and through it powFast, with math.Pow over
// the whole float32 range, across mantissas on both sides of sqrt(2) and
// exponents on both sides of the fast range.
func TestPowFast(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	as := []float64{0x1p-126, 0x1p-126 * 1.5, 1, math.Sqrt2, math.Nextafter(math.Sqrt2, 0),
		math.Nextafter(math.Sqrt2, 2), 2, 0.5, 3, 1e-20, 1e20, math.MaxFloat32}
	for range 2000 {
		as = append(as, float64(float32(math.Exp(r.Float64()*170-85))))
	}
	for _, q := range []float64{-7, -1.5, -1, 0, 0.4, 1, 1.4, 2.4, 3, 7} {
		for _, a := range as {
			a = float64(float32(a))
			want := math.Pow(a, q)
			checkClose(t, fmt.Sprintf("powAny(%g, %g)", a, q), 0, powAny(a, q), want, want, 1e-9)
		}
	}
	// Outside the fast range powAny is math.Pow itself.
	for _, c := range []struct{ a, q float64 }{
		{0, 2.4}, {0, -1}, {1e-40, 2.4}, {-2, 2.4}, {-2, 3}, {math.Inf(1), 2.4},
		{math.NaN(), 2}, {2, 7.5}, {0.5, -8}, {1e39, 2},
	} {
		want, got := math.Pow(c.a, c.q), powAny(c.a, c.q)
		if !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("powAny(%g, %g) = %g, want %g", c.a, c.q, got, want)
		}
	}
}

// TestPowKernels checks Pow and PowBackward on every path and on lengths
// that span several parallel blocks, for the exact exponents (1, 2) and
// for the fast and math.Pow ones, negative bases included.
func TestPowKernels(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, p := range []float32{2, 1, 2.4, 0.5, -1.5, 3, 9} {
			for _, n := range testLengths {
				x := randSlice(r, n, 2)
				if n > 2 {
					x[1] = 0
				}
				dst := make([]float32, n)
				Pow(dst, x, p)
				dy, dx := randSlice(r, n, 1), randSlice(r, n, 1)
				dx0 := slices.Clone(dx)
				PowBackward(x, dy, dx, p)
				for i, v := range x {
					want := math.Pow(float64(v), float64(p))
					if !near(float64(dst[i]), want, math.Abs(want), u32) {
						t.Fatalf("p=%g n=%d: Pow(%g) = %g, want %g", p, n, v, dst[i], want)
					}
					w := float64(dy[i]) * float64(p) * math.Pow(float64(v), float64(p)-1)
					if want := float64(dx0[i]) + w; !near(float64(dx[i]), want, math.Abs(float64(dx0[i]))+math.Abs(w), 3*u32) {
						t.Fatalf("p=%g n=%d: PowBackward at x=%g dy=%g: %g, want %g", p, n, v, dy[i], dx[i], want)
					}
				}
			}
		}
	})
}

// near reports whether got is within tol*mag of want, NaN matching NaN
// and an infinity matching itself.
func near(got, want, mag, tol float64) bool {
	if math.IsNaN(want) || math.IsInf(want, 0) {
		return got == want || math.IsNaN(got) && math.IsNaN(want)
	}
	return math.Abs(got-want) <= tol*mag+1e-30
}

// BenchmarkLpDistance times BRECQ's reconstruction loss and its gradient
// on a 32x64x28x28 activation, for the exponents it uses.
func BenchmarkLpDistance(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	const n = 32 * 64 * 28 * 28
	x, y := randSlice(r, n, 1), randSlice(r, n, 1)
	dx := make([]float32, n)
	for _, p := range []float32{2, 2.4} {
		b.Run(fmt.Sprintf("p=%g/forward", p), func(b *testing.B) {
			b.SetBytes(2 * 4 * n)
			for range b.N {
				LpDistance(x, y, p)
			}
		})
		b.Run(fmt.Sprintf("p=%g/backward", p), func(b *testing.B) {
			b.SetBytes(3 * 4 * n)
			for range b.N {
				LpDistanceBackward(x, y, p, 1e-3, dx, nil)
			}
		})
	}
}

// TestAutogradKernelsSplit runs the kernels that workers split on every
// length of the elementwise tests, several parallel blocks included, and
// wants exactly the element-by-element result.
func TestAutogradKernelsSplit(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, n := range testLengths {
			x, y, z := randSlice(r, n, 1), randSlice(r, n, 1), randSlice(r, n, 1)
			check := func(name string, got []float32, want func(i int) float32) {
				t.Helper()
				for i := range got {
					if w := want(i); got[i] != w && !(math.IsNaN(float64(w)) && math.IsNaN(float64(got[i]))) {
						t.Fatalf("%s n=%d [%d] = %g, want %g", name, n, i, got[i], w)
					}
				}
			}
			d := slices.Clone(z)
			MulAcc(d, x, y)
			check("MulAcc", d, func(i int) float32 { return z[i] + x[i]*y[i] })
			AddScalar(d, x, 0.75)
			check("AddScalar", d, func(i int) float32 { return x[i] + 0.75 })
			MaxScalar(d, x, 0.25)
			check("MaxScalar", d, func(i int) float32 { return max(x[i], 0.25) })
			Sqrt(d, x)
			check("Sqrt", d, func(i int) float32 { return float32(math.Sqrt(float64(x[i]))) })
			lo, hi := []float32{-1, 0, -0.5}, []float32{0.5, 0.25, 2}
			xc := randSlice(r, 2*3*n, 1)
			dc := make([]float32, len(xc))
			ClampChannels(2, 3, n, xc, lo, hi, dc)
			check("ClampChannels", dc, func(i int) float32 { c := i / n % 3; return min(max(xc[i], lo[c]), hi[c]) })
		}
	})
}
