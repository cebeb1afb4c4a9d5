package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestPoolParamsValidate(t *testing.T) {
	ok := PoolParams{N: 1, C: 2, H: 7, W: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid params: %v", err)
	}
	if ok.OutH() != 4 || ok.OutW() != 3 {
		t.Fatalf("out %dx%d, want 4x3", ok.OutH(), ok.OutW())
	}
	bad := []func(p *PoolParams){
		func(p *PoolParams) { p.N = 0 },
		func(p *PoolParams) { p.KW = 0 },
		func(p *PoolParams) { p.StrideH = 0 },
		func(p *PoolParams) { p.PadH = 2 },
		func(p *PoolParams) { p.PadW = -1 },
		func(p *PoolParams) { p.H, p.PadH = 1, 0 },
	}
	for i, f := range bad {
		p := ok
		f(&p)
		if p.Validate() == nil {
			t.Errorf("case %d: %+v accepted", i, p)
		}
	}
}

func TestMaxPool2d(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, p := range []PoolParams{
		{N: 2, C: 3, H: 7, W: 9, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 1, C: 2, H: 8, W: 8, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		{N: 1, C: 1, H: 5, W: 6, KH: 3, KW: 2, StrideH: 1, StrideW: 3, PadH: 1, PadW: 1},
		{N: 1, C: 1, H: 4, W: 4, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
		// ResNet's stem pooling, with interior rows and columns.
		{N: 2, C: 2, H: 12, W: 11, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 1, C: 2, H: 9, W: 10, KH: 3, KW: 3, StrideH: 1, StrideW: 1},
		// Rows with groups of eight interior windows (the vector path).
		{N: 2, C: 2, H: 9, W: 40, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 1, C: 1, H: 7, W: 37, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
	} {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		x := randSlice(r, p.N*p.C*p.H*p.W, 1)
		x[3] = x[4] // a tie inside a window
		for i := range x {
			switch i % 6 {
			case 0:
				x[i] = 0 // ReLU zeros: ties across rows and columns
			case 3:
				x[i] = float32(math.Copysign(0, -1)) // the first of -0 and +0 wins
			}
			if i%97 == 50 {
				x[i] = float32(math.NaN()) // propagates; the last NaN is the index
			}
		}
		oh, ow := p.OutH(), p.OutW()
		y := make([]float32, p.N*p.C*oh*ow)
		arg := make([]int32, len(y))
		MaxPool2dForward(p, x, y, arg)
		for pl := range p.N * p.C {
			for i := range oh {
				for j := range ow {
					best, at := math.Inf(-1), -1
					for kh := range p.KH {
						for kw := range p.KW {
							h, w := i*p.StrideH-p.PadH+kh, j*p.StrideW-p.PadW+kw
							if h < 0 || h >= p.H || w < 0 || w >= p.W {
								continue
							}
							if v := float64(x[pl*p.H*p.W+h*p.W+w]); v > best || v != v || at < 0 {
								best, at = v, h*p.W+w
							}
						}
					}
					o := pl*oh*ow + i*ow + j
					same := float64(y[o]) == best || math.IsNaN(float64(y[o])) && math.IsNaN(best)
					if !same || int(arg[o]) != at || math.Signbit(float64(y[o])) != math.Signbit(float64(x[pl*p.H*p.W+at])) {
						t.Fatalf("%+v out %d = %g@%d, want %g@%d", p, o, y[o], arg[o], best, at)
					}
				}
			}
		}
		dy := randSlice(r, len(y), 1)
		dx := randSlice(r, len(x), 1)
		want := make([]float64, len(dx))
		for i, v := range dx {
			want[i] = float64(v)
		}
		for o := range y {
			pl := o / (oh * ow)
			want[pl*p.H*p.W+int(arg[o])] += float64(dy[o])
		}
		MaxPool2dBackward(p, dy, arg, dx)
		for i := range dx {
			checkClose(t, "dx", i, float64(dx[i]), want[i], math.Abs(want[i])+4, 4*u32)
		}
		// The storing form: dx holds NaNs that must not leak.
		wantSet := make([]float64, len(dx))
		for o := range y {
			pl := o / (oh * ow)
			wantSet[pl*p.H*p.W+int(arg[o])] += float64(dy[o])
		}
		for i := range dx {
			dx[i] = float32(math.NaN())
		}
		MaxPool2dBackwardSet(p, dy, arg, dx)
		for i := range dx {
			checkClose(t, "dx (set)", i, float64(dx[i]), wantSet[i], math.Abs(wantSet[i])+4, 4*u32)
		}
	}
}

func TestAvgPoolGlobal(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(33, 34))
		for _, s := range bnShapes {
			n, c, hw := s[0], s[1], s[2]
			x := randSlice(r, n*c*hw, 1)
			y := make([]float32, n*c)
			AvgPoolGlobalForward(n, c, hw, x, y)
			for pl := range y {
				var s, mag float64
				for _, v := range x[pl*hw : (pl+1)*hw] {
					s += float64(v)
					mag += math.Abs(float64(v))
				}
				checkClose(t, "y", pl, float64(y[pl]), s/float64(hw), mag/float64(hw), u32)
			}
			dy := randSlice(r, n*c, 1)
			dx := randSlice(r, len(x), 1)
			dx0 := append([]float32(nil), dx...)
			AvgPoolGlobalBackward(n, c, hw, dy, dx)
			for i := range dx {
				g := float64(dy[i/hw]) / float64(hw)
				checkClose(t, "dx", i, float64(dx[i]), float64(dx0[i])+g, math.Abs(float64(dx0[i]))+math.Abs(g), 2*u32)
			}
		}
	})
}
