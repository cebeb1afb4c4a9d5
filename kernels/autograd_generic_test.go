package kernels

import (
	"math"
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

func TestLpDistance(t *testing.T) {
	a := []float32{1, -2, 0.5, 3, 0}
	b := []float32{0.5, 1, 0.5, -1, 2}
	for _, p := range []float32{2, 2.4, 1.5} {
		var want float64
		for i := range a {
			want += math.Pow(math.Abs(float64(a[i])-float64(b[i])), float64(p))
		}
		if got := LpDistance(a, b, p); math.Abs(got-want) > 1e-12*want {
			t.Errorf("p=%v: LpDistance %v, want %v", p, got, want)
		}

		const g = 0.5
		da, db := make([]float32, len(a)), []float32{1, 1, 1, 1, 1}
		LpDistanceBackward(a, b, p, g, da, db)
		for i := range a {
			d := float64(a[i]) - float64(b[i])
			w := 0.0
			if d != 0 {
				w = g * float64(p) * math.Pow(math.Abs(d), float64(p)-1) * math.Copysign(1, d)
			}
			if math.Abs(float64(da[i])-w) > 1e-6*math.Max(1, math.Abs(w)) || math.Abs(float64(db[i])-(1-w)) > 1e-6*math.Max(1, math.Abs(w)) {
				t.Errorf("p=%v: gradient %d: da %v db %v, want %v and %v", p, i, da[i], db[i], w, 1-w)
			}
		}
		LpDistanceBackward(a, b, p, g, nil, nil) // both gradients optional
	}
}
