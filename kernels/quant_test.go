package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantCases are (delta, zp, levels) triples: 4- and 8-bit, symmetric and
// one-sided ranges, and a power-of-two delta so x/delta hits exact halves.
var quantCases = []struct {
	delta, zp float32
	levels    int
}{
	{0.1, 8, 16},
	{0.25, 0, 16},
	{0.037, 128, 256},
	{0.5, 3, 4},
	{1.3, 15, 16},
}

// quantizeRef is q(x) spelled out: x/delta in float32 (as torch), then
// round half to even and the clamp in float64.
func quantizeRef(x, delta, zp float32, levels int) float32 {
	s := float64(x / delta)
	r := math.RoundToEven(s) + float64(zp)
	c := math.Min(math.Max(r, 0), float64(levels-1))
	return float32((float32(c) - zp) * delta)
}

// quantInput mixes Gaussian values that overflow the range on both sides
// with exact half-way points k+0.5 (in units of delta).
func quantInput(r *rand.Rand, n int, delta, zp float32, levels int) []float32 {
	x := randSlice(r, n, float64(delta)*float64(levels)/2)
	for i := range x {
		if i%3 == 1 {
			k := float32(r.IntN(levels+4)) - zp - 2
			x[i] = (k + 0.5) * delta
		}
	}
	return x
}

func TestFakeQuant(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(41, 42))
		for _, qc := range quantCases {
			for _, n := range testLengths {
				x := quantInput(r, n, qc.delta, qc.zp, qc.levels)
				dst := make([]float32, n+1)
				dst[n] = 7
				FakeQuant(dst[:n], x, qc.delta, qc.zp, qc.levels)
				for i, v := range x {
					if want := quantizeRef(v, qc.delta, qc.zp, qc.levels); dst[i] != want {
						t.Fatalf("%+v x=%g (x/delta=%g): got %g, want %g", qc, v, v/qc.delta, dst[i], want)
					}
					if n == bigLength {
						continue // the grid check below is for the small cases
					}
					// Independent check: no grid level is nearer to x.
					e := math.Abs(float64(v) - float64(dst[i]))
					for j := range qc.levels {
						g := float64((float32(j) - qc.zp) * qc.delta)
						if d := math.Abs(float64(v) - g); d < e-1e-6*math.Abs(float64(v)) {
							t.Fatalf("%+v x=%g: q=%g, level %g is nearer", qc, v, dst[i], g)
						}
					}
				}
				if dst[n] != 7 {
					t.Fatal("FakeQuant wrote past the end")
				}
			}
		}
	})
}

func TestRoundHalfEven(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		x := []float32{0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 0.49999997, 4.5, 5.5, 6.5, 7.5, -3.5, 2.5000002, 1, 0}
		want := []float32{0, 2, 2, 0, -2, -2, 4, 0, 4, 6, 6, 8, -4, 3, 1, 0}
		dst := make([]float32, len(x))
		FakeQuant(dst, x, 1, 8, 256)
		for i := range x {
			if dst[i] != want[i] {
				t.Fatalf("round(%g) = %g, want %g", x[i], dst[i], want[i])
			}
		}
	})
}

func TestFakeQuantPerChannel(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(43, 44))
		for _, cols := range []int{1, 3, 7, 17, 33, 100, blockFloats + 3} {
			rows := len(quantCases)
			delta, zp := make([]float32, rows), make([]float32, rows)
			x := make([]float32, 0, rows*cols)
			for i, qc := range quantCases {
				delta[i], zp[i] = qc.delta, qc.zp
				x = append(x, quantInput(r, cols, qc.delta, qc.zp, 16)...)
			}
			dst := make([]float32, len(x))
			FakeQuantPerChannel(dst, x, rows, delta, zp, 16)
			for i, v := range x {
				row := i / cols
				if want := quantizeRef(v, delta[row], zp[row], 16); dst[i] != want {
					t.Fatalf("cols=%d [%d]: got %g, want %g", cols, i, dst[i], want)
				}
			}
		}
	})
}

func TestFakeQuantBackward(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(45, 46))
		for _, qc := range quantCases {
			for _, n := range testLengths {
				x := quantInput(r, n, qc.delta, qc.zp, qc.levels)
				// Put two elements exactly on the range bounds: they pass.
				if n > 5 {
					x[2] = (0 - qc.zp) * qc.delta
					x[5] = (float32(qc.levels-1) - qc.zp) * qc.delta
				}
				dy := randSlice(r, n, 1)
				dx := randSlice(r, n, 1)
				dx0 := append([]float32(nil), dx...)
				got := FakeQuantBackward(x, dy, dx, qc.delta, qc.zp, qc.levels)
				var want, mag float64
				qmax := float64(qc.levels - 1)
				for i, v := range x {
					s := float64(v / qc.delta)
					rd := math.RoundToEven(s)
					u := rd + float64(qc.zp)
					g := float64(dy[i])
					var term float64
					pass := u >= 0 && u <= qmax
					switch {
					case u < 0:
						term = g * -float64(qc.zp)
					case u > qmax:
						term = g * (qmax - float64(qc.zp))
					default:
						term = g * (rd - s)
					}
					want += term
					mag += math.Abs(term)
					wdx := dx0[i]
					if pass {
						wdx += dy[i]
					}
					if dx[i] != wdx {
						t.Fatalf("%+v n=%d dx[%d] = %g, want %g (x/delta=%g)", qc, n, i, dx[i], wdx, s)
					}
				}
				checkClose(t, "dDelta", n, float64(got), want, mag, 4*u32)
				if got2 := FakeQuantBackward(x, dy, nil, qc.delta, qc.zp, qc.levels); got2 != got {
					t.Fatalf("dDelta with nil dx = %g, want %g", got2, got)
				}
			}
		}
	})
}

// TestFakeQuantDeltaGradientClamped checks the clamped part of the LSQ
// gradient against a finite difference, where q is smooth in delta.
func TestFakeQuantDeltaGradientClamped(t *testing.T) {
	x := []float32{-5, -3, 9, 12} // all outside [(-zp)*delta, (15-zp)*delta]
	dy := []float32{1, -2, 0.5, 1.5}
	const delta, zp, levels = 0.25, 8, 16
	got := float64(FakeQuantBackward(x, dy, nil, delta, zp, levels))
	loss := func(d float64) float64 {
		var s float64
		for i, v := range x {
			c := math.Min(math.Max(math.RoundToEven(float64(v)/d)+zp, 0), levels-1)
			s += float64(dy[i]) * (c - zp) * d
		}
		return s
	}
	const h = 1e-6
	want := (loss(delta+h) - loss(delta-h)) / (2 * h)
	checkClose(t, "dDelta", 0, got, want, math.Abs(want), 1e-6)
}

func TestQuantErrorLp(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(47, 48))
		for _, p := range []float32{2.4, 2, 1} {
			for _, qc := range quantCases {
				for _, n := range testLengths {
					x := quantInput(r, n, qc.delta, qc.zp, qc.levels)
					var want float64
					for _, v := range x {
						e := math.Abs(float64(v - quantizeRef(v, qc.delta, qc.zp, qc.levels)))
						want += math.Pow(e, float64(p))
					}
					got := QuantErrorLp(x, qc.delta, qc.zp, qc.levels, p)
					checkClose(t, "QuantErrorLp", n, got, want, want, 1e-6)
				}
			}
		}
	})
}

func TestScaleSearchLp(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(49, 50))
		for _, levels := range []int{4, 16, 256} {
			for _, n := range []int{1, 3, 7, 17, 33, 200} {
				x := randSlice(r, n, 1)
				if n > 3 {
					x[1] = 6 // an outlier the search should clip
				}
				delta, zp, lpErr := ScaleSearchLp(x, levels, 2.4)
				lo, hi := x[0], x[0]
				for _, v := range x {
					lo, hi = min(lo, v), max(hi, v)
				}
				best := math.Inf(1)
				found := false
				for i := range ScaleSearchSteps {
					d, z, ok := ScaleCandidate(lo, hi, i, levels)
					if !ok {
						continue
					}
					// The reference candidate, spelled out in float32.
					f := float32(1 - float64(i)*0.01)
					wd := (hi*f - lo*f) / float32(levels-1)
					if d != wd || z != float32(math.RoundToEven(float64(-(lo*f)/wd))) {
						t.Fatalf("candidate %d: got %g/%g", i, d, z)
					}
					var e float64
					for _, v := range x {
						e += math.Pow(math.Abs(float64(v-quantizeRef(v, d, z, levels))), 2.4)
					}
					best = math.Min(best, e)
					if d == delta && z == zp {
						found = true
						checkClose(t, "lpErr", i, lpErr, e, e, 1e-6)
					}
				}
				if n == 1 {
					// Empty range: the fallback reproduces x >= 0 exactly,
					// and any x with a zero error.
					continue
				}
				if !found {
					t.Fatalf("levels=%d n=%d: result %g/%g is no candidate", levels, n, delta, zp)
				}
				if lpErr > best*(1+1e-6) {
					t.Fatalf("levels=%d n=%d: error %g, best candidate %g", levels, n, lpErr, best)
				}
			}
		}
	})
}

func TestScaleSearchLpPerChannelAndConstant(t *testing.T) {
	x := []float32{0, 0, 0, 2, 2, 2, -1, 0.5, 3}
	delta, zp := make([]float32, 3), make([]float32, 3)
	ScaleSearchLpPerChannel(x, 3, 16, 2.4, delta, zp)
	for r := range 2 { // constant rows are reproduced exactly
		q := make([]float32, 3)
		FakeQuant(q, x[r*3:r*3+3], delta[r], zp[r], 16)
		for i := range q {
			if q[i] != x[r*3+i] {
				t.Fatalf("row %d: q = %v for %v (delta %g zp %g)", r, q, x[r*3:r*3+3], delta[r], zp[r])
			}
		}
	}
	d, z, _ := ScaleSearchLp(x[6:], 16, 2.4)
	if delta[2] != d || zp[2] != z {
		t.Fatalf("row 2: %g/%g, want %g/%g", delta[2], zp[2], d, z)
	}
}

// adaRoundRef is AdaRound's soft weight in float64.
func adaRoundRef(w, a float64, delta, zp float32, levels int) float64 {
	s := 1 / (1 + math.Exp(-a))
	h := math.Min(math.Max(s*1.2-0.1, 0), 1)
	u := math.Floor(float64(float32(w)/delta)) + h + float64(zp)
	return (math.Min(math.Max(u, 0), float64(levels-1)) - float64(zp)) * float64(delta)
}

func TestAdaRound(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(51, 52))
		for _, cols := range []int{1, 3, 7, 17, 33, 4099} {
			rows := len(quantCases)
			delta, zp := make([]float32, rows), make([]float32, rows)
			var w []float32
			for i, qc := range quantCases {
				delta[i], zp[i] = qc.delta, qc.zp
				w = append(w, randSlice(r, cols, float64(qc.delta)*6)...)
			}
			alpha := randSlice(r, len(w), 2)
			alpha[0] = 9 // h clamps at 1
			const levels = 16

			dst := make([]float32, len(w))
			AdaRoundForward(dst, w, alpha, rows, delta, zp, levels)
			for i := range w {
				d, z := delta[i/cols], zp[i/cols]
				want := adaRoundRef(float64(w[i]), float64(alpha[i]), d, z, levels)
				// float32 sums in level units, up to floor(w/delta)+h+zp.
				mag := (math.Abs(math.Floor(float64(w[i]/d))) + float64(z) + 1) * float64(d)
				checkClose(t, "AdaRoundForward", i, float64(dst[i]), want, mag, 4*u32)
			}

			// Backward against a central difference in alpha.
			dy := randSlice(r, len(w), 1)
			dAlpha := make([]float32, len(w))
			AdaRoundBackward(w, alpha, dy, dAlpha, rows, delta, zp, levels)
			for i := range w {
				const h = 1e-4
				a := float64(alpha[i])
				d, z := delta[i/cols], zp[i/cols]
				f := func(a float64) float64 { return adaRoundRef(float64(w[i]), a, d, z, levels) }
				left, right := (f(a)-f(a-h))/h, (f(a+h)-f(a))/h
				if math.Abs(left-right) > 1e-2*(math.Abs(left)+math.Abs(right)) {
					continue // a clamp's kink lies within the step
				}
				fd := (f(a+h) - f(a-h)) / (2 * h)
				want := fd * float64(dy[i])
				checkClose(t, "dAlpha", i, float64(dAlpha[i]), want, math.Abs(float64(dy[i]))*float64(d), 1e-5)
			}

			// Hard rounding: up where alpha >= 0.
			AdaRoundHard(dst, w, alpha, rows, delta, zp, levels)
			for i := range w {
				d, z := delta[i/cols], zp[i/cols]
				u := math.Floor(float64(w[i] / d))
				if alpha[i] >= 0 {
					u++
				}
				want := (math.Min(math.Max(u+float64(z), 0), levels-1) - float64(z)) * float64(d)
				checkClose(t, "AdaRoundHard", i, float64(dst[i]), want, math.Abs(want), 2*u32)
			}

			// Initialisation: h(alpha) is the fractional part of w/delta.
			AdaRoundInitAlpha(alpha, w, rows, delta)
			for i := range w {
				v := w[i] / delta[i/cols]
				rest := float64(v) - math.Floor(float64(v))
				h := 1/(1+math.Exp(-float64(alpha[i])))*1.2 - 0.1
				checkClose(t, "h(init alpha)", i, h, rest, 1, 1e-6)
			}
		}
	})
}

func TestAdaRoundRegularizer(t *testing.T) {
	// term is one weight's share of the rounding term and m its 2h-1; the
	// gradient of the sum with respect to alpha[i] is that of its term.
	term := func(a, beta float64) (v, m float64) {
		h := math.Min(math.Max(1/(1+math.Exp(-a))*1.2-0.1, 0), 1)
		m = 2*h - 1
		return 1 - math.Pow(math.Abs(m), beta), m
	}
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(53, 54))
		for _, beta := range []float32{20, 7.3, 2} {
			for _, n := range []int{1, 3, 7, 17, 33, 2*blockFloats + 1} {
				alpha := randSlice(r, n, 2)
				const weight = 0.01
				dAlpha := randSlice(r, n, 1)
				d0 := append([]float32(nil), dAlpha...)
				got := AdaRoundRegularizer(alpha, beta, dAlpha, weight)
				var want, sumTol float64
				for i, v := range alpha {
					a, b := float64(v), float64(beta)
					tv, m := term(a, b)
					want += weight * tv
					const h = 1e-6
					up, _ := term(a+h, b)
					down, _ := term(a-h, b)
					fd := weight * (up - down) / (2 * h)
					// Float32 evaluation (as torch) carries m = 2h-1 to
					// about 16u absolutely: |m|^(b-1) then moves by
					// (b-1)*16u/|m| relatively, |m|^b by b*|m|^(b-1)*16u.
					am := math.Abs(m)
					tol := math.Abs(fd)*((b-1)*16*u32/am+16*u32) + 2*u32*math.Abs(float64(d0[i]))
					sumTol += weight * (b*math.Pow(am, b-1)*16*u32 + 2*u32)
					if d := math.Abs(float64(dAlpha[i]) - (float64(d0[i]) + fd)); !(d <= tol+1e-12) {
						t.Fatalf("beta=%g n=%d dAlpha[%d] = %g, want %g (diff %g > %g)", beta, n, i, dAlpha[i], float64(d0[i])+fd, d, tol)
					}
				}
				if d := math.Abs(float64(got) - want); !(d <= sumTol+2*u32*want) {
					t.Fatalf("beta=%g n=%d: sum %g, want %g (diff %g > %g)", beta, n, got, want, d, sumTol+2*u32*want)
				}
				if AdaRoundRegularizer(alpha, beta, nil, weight) != got {
					t.Fatal("result depends on dAlpha being nil")
				}
			}
		}
	})
}

// TestPowerAccuracy checks |e|^p element by element over the float32
// range: with delta far above |x|, q(x) = 0 and QuantErrorLp(x) = |x|^p.
func TestPowerAccuracy(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(55, 56))
		for _, p := range []float32{2.4, 2, 1, 0.5, 3.7} {
			worst := 0.0
			for range 20000 {
				x := float32(math.Exp2(r.Float64()*240 - 120))
				if r.IntN(2) == 0 {
					x = -x
				}
				xs := []float32{x}
				got := QuantErrorLp(xs, 3e38, 0, 256, p)
				want := math.Pow(math.Abs(float64(x)), float64(p))
				rel := math.Abs(got-want) / want
				worst = math.Max(worst, rel)
				if !(rel <= 1e-6) {
					t.Fatalf("p=%g |%g|^p = %g, want %g (rel %g)", p, x, got, want, rel)
				}
			}
			t.Logf("p=%g: worst relative error %.2g", p, worst)
		}
	})
}
