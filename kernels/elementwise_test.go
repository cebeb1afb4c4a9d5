package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// testLengths covers empty and single inputs, odd lengths, lengths on
// both sides of the 8-, 16- and 32-float SIMD blocks, and one split over
// the worker pool into uneven blocks.
var testLengths = []int{0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257, bigLength}

// bigLength spans several parallel blocks, the last one partial.
const bigLength = 3*blockFloats + 37

// u32 is the float32 unit roundoff.
const u32 = 1.0 / (1 << 24)

// acrossPaths runs f once per available kernel path, as a subtest named
// after the path, and restores the path that was active.
func acrossPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := Active()
	defer use(saved)
	for _, p := range Available() {
		use(p)
		t.Run(string(p), f)
	}
}

// randSlice returns n values from N(0, scale^2).
func randSlice(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * scale)
	}
	return s
}

// checkClose fails when |got-want| > tol*mag (+ the smallest normal, so a
// zero magnitude allows only tiny differences).
func checkClose(t *testing.T, what string, i int, got, want, mag, tol float64) {
	t.Helper()
	if d := math.Abs(got - want); !(d <= tol*mag+1e-30) {
		t.Fatalf("%s[%d] = %g, want %g (diff %g > %g)", what, i, got, want, d, tol*mag)
	}
}

func TestBinaryElementwise(t *testing.T) {
	cases := []struct {
		name string
		f    func(dst, a, b []float32)
		ref  func(a, b float32) float32
	}{
		{"Add", Add, func(a, b float32) float32 { return a + b }},
		{"Sub", Sub, func(a, b float32) float32 { return a - b }},
		{"Mul", Mul, func(a, b float32) float32 { return a * b }},
		{"Scale", func(dst, a, _ []float32) { Scale(dst, -1.75, a) }, func(a, _ float32) float32 { return -1.75 * a }},
		{"ReLU", func(dst, a, _ []float32) { ReLU(dst, a) }, func(a, _ float32) float32 { return float32(math.Max(float64(a), 0)) }},
		{"ReLU6", func(dst, a, _ []float32) { ReLU6(dst, a) }, func(a, _ float32) float32 { return float32(math.Min(math.Max(float64(a), 0), 6)) }},
	}
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, c := range cases {
			for _, n := range testLengths {
				a, b := randSlice(r, n, 4), randSlice(r, n, 4)
				dst := randSlice(r, n+1, 1) // the extra element must survive
				guard := dst[n]
				c.f(dst[:n], a, b)
				for i := range n {
					// One correctly rounded float32 operation: exact.
					if want := c.ref(a[i], b[i]); dst[i] != want {
						t.Fatalf("%s n=%d: [%d] = %g, want %g", c.name, n, i, dst[i], want)
					}
				}
				if dst[n] != guard {
					t.Fatalf("%s n=%d wrote past the end", c.name, n)
				}
			}
		}
	})
}

func TestInPlace(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range testLengths {
			a := randSlice(r, n, 4)
			want := make([]float32, n)
			for i, v := range a {
				want[i] = float32(math.Min(math.Max(float64(v+v), 0), 6))
			}
			Add(a, a, a)
			ReLU6(a, a)
			for i := range a {
				if a[i] != want[i] {
					t.Fatalf("n=%d [%d] = %g, want %g", n, i, a[i], want[i])
				}
			}
		}
	})
}

func TestAxpy(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range testLengths {
			for _, alpha := range []float32{0, 1, -0.37} {
				x, y := randSlice(r, n, 3), randSlice(r, n+1, 3)
				y0 := append([]float32(nil), y...)
				Axpy(alpha, x, y[:n])
				for i := range n {
					want := float64(alpha)*float64(x[i]) + float64(y0[i])
					// FMA rounds once, a*x+y twice.
					mag := math.Abs(float64(alpha)*float64(x[i])) + math.Abs(float64(y0[i]))
					checkClose(t, "Axpy", i, float64(y[i]), want, mag, 2*u32)
				}
				if y[n] != y0[n] {
					t.Fatalf("Axpy n=%d wrote past the end", n)
				}
			}
		}
	})
}

func TestDot(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range append(testLengths, 1000, 4099, 9*blockFloats) {
			x, y := randSlice(r, n, 1), randSlice(r, n, 1)
			var want, mag float64
			for i := range x {
				want += float64(x[i]) * float64(y[i])
				mag += math.Abs(float64(x[i]) * float64(y[i]))
			}
			// float32 partial sums over at most 32 lanes: error bound
			// (n/32 + 6) * u * sum|x*y| plus the final rounding.
			tol := (float64(n)/32 + 6) * u32
			checkClose(t, "Dot", n, float64(Dot(x, y)), want, mag+math.Abs(want), tol)
		}
	})
}

func TestSums(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, n := range append(testLengths, 5000, 9*blockFloats) {
			x := randSlice(r, n, 2)
			var s, ss, mag float64
			for _, v := range x {
				s += float64(v)
				ss += float64(v) * float64(v)
				mag += math.Abs(float64(v))
			}
			// float64 accumulation: only the final float32 rounding counts.
			checkClose(t, "Sum", n, float64(Sum(x)), s, math.Abs(s)+1e-6*mag, u32)
			checkClose(t, "SumSquares", n, float64(SumSquares(x)), ss, ss, u32)
		}
	})
}

func TestReLUBackward(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, n := range testLengths {
			x := randSlice(r, n, 5)
			for i := range x {
				switch i % 5 { // exact bounds get no gradient
				case 1:
					x[i] = 0
				case 3:
					x[i] = 6
				}
			}
			dy := randSlice(r, n, 1)
			for _, relu6 := range []bool{false, true} {
				dx := randSlice(r, n+1, 1)
				dx0 := append([]float32(nil), dx...)
				if relu6 {
					ReLU6Backward(x, dy, dx[:n])
				} else {
					ReLUBackward(x, dy, dx[:n])
				}
				for i := range n {
					want := dx0[i]
					if x[i] > 0 && (!relu6 || x[i] < 6) {
						want += dy[i]
					}
					if dx[i] != want {
						t.Fatalf("relu6=%v n=%d [%d] = %g, want %g", relu6, n, i, dx[i], want)
					}
				}
				if dx[n] != dx0[n] {
					t.Fatalf("relu6=%v n=%d wrote past the end", relu6, n)
				}
			}
		}
	})
}

// TestReLUBackwardSet checks the storing ReLU backwards bit for bit
// against their definition on every path, at every length through the
// masked tails and at the long ones that split over the pool. dx starts
// as garbage (NaN among it), so a kernel that adds fails, and floats past
// its end must stay as they were. x holds the bounds, both zeros, the
// floats next to 6, NaN and Inf; dy holds -0 and NaN where they pass.
func TestReLUBackwardSet(t *testing.T) {
	specials := []float32{0, float32(math.Copysign(0, -1)), -1, 6, math.Nextafter32(6, 7), math.Nextafter32(6, 5),
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, 1e-30}
	var lengths []int
	for n := range 71 {
		lengths = append(lengths, n)
	}
	for _, n := range testLengths {
		if n > 70 {
			lengths = append(lengths, n)
		}
	}
	const pad = 17
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, n := range lengths {
			x := randSlice(r, n, 5)
			for i := range x {
				if r.IntN(3) == 0 {
					x[i] = specials[r.IntN(len(specials))]
				}
			}
			dy := randSlice(r, n, 1)
			for i := range dy {
				switch r.IntN(8) {
				case 0:
					dy[i] = float32(math.Copysign(0, -1))
				case 1:
					dy[i] = float32(math.NaN())
				}
			}
			for _, relu6 := range []bool{false, true} {
				dx := randSlice(r, n+pad, 1e3)
				for i := range dx {
					if i%7 == 3 {
						dx[i] = float32(math.NaN())
					}
				}
				dx0 := append([]float32(nil), dx...)
				if relu6 {
					ReLU6BackwardSet(x, dy, dx[:n])
				} else {
					ReLUBackwardSet(x, dy, dx[:n])
				}
				for i := range n {
					var want float32
					if x[i] > 0 && (!relu6 || x[i] < 6) {
						want = dy[i]
					}
					if math.Float32bits(dx[i]) != math.Float32bits(want) {
						t.Fatalf("relu6=%v n=%d [%d] x=%g dy=%g: %g (%#08x), want %g (%#08x)", relu6, n, i, x[i], dy[i],
							dx[i], math.Float32bits(dx[i]), want, math.Float32bits(want))
					}
				}
				for i := n; i < n+pad; i++ {
					if math.Float32bits(dx[i]) != math.Float32bits(dx0[i]) {
						t.Fatalf("relu6=%v n=%d wrote past the end, at %d", relu6, n, i)
					}
				}
			}
		}
	})
}

func TestRowMaxMin(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, cols := range []int{1, 3, 17, 33} {
		rows := 4
		x := randSlice(r, rows*cols, 1)
		if cols > 3 { // ties: the first occurrence wins
			x[2], x[cols-1] = 9, 9
			x[cols+1], x[2*cols-1] = -9, -9
		}
		mx, mn := make([]float32, rows), make([]float32, rows)
		amx, amn := make([]int32, rows), make([]int32, rows)
		RowMaxMin(rows, cols, x, mx, mn, amx, amn)
		for i := range rows {
			row := x[i*cols : (i+1)*cols]
			bi, si := 0, 0
			for j := range row {
				if row[j] > row[bi] {
					bi = j
				}
				if row[j] < row[si] {
					si = j
				}
			}
			if mx[i] != row[bi] || mn[i] != row[si] || amx[i] != int32(bi) || amn[i] != int32(si) {
				t.Fatalf("cols=%d row %d: got max %g@%d min %g@%d, want %g@%d %g@%d",
					cols, i, mx[i], amx[i], mn[i], amn[i], row[bi], bi, row[si], si)
			}
		}
		RowMaxMin(rows, cols, x, nil, mn, nil, nil) // nil outputs are skipped
	}
}

// TestThreadCountInvariance checks that split reductions give the same
// bits for any number of workers: blocks and their order are fixed.
func TestThreadCountInvariance(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	x, y := randSlice(r, 7*blockFloats+3, 1), randSlice(r, 7*blockFloats+3, 1)
	run := func() [5]float64 {
		return [5]float64{
			float64(Dot(x, y)), float64(Sum(x)), float64(SumSquares(x)),
			QuantErrorLp(x, 0.1, 8, 16, 2.4), float64(FakeQuantBackward(x, y, nil, 0.1, 8, 16)),
		}
	}
	acrossPaths(t, func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		want := run()
		for _, procs := range []int{2, 3, 8} {
			runtime.GOMAXPROCS(procs)
			if got := run(); got != want {
				t.Fatalf("GOMAXPROCS=%d: %v, with 1: %v", procs, got, want)
			}
		}
	})
}
