package autograd

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// one-input and two-input adaptors for the case table.
func unary(f func(*Var) *Var) func([]*Var) *Var { return func(in []*Var) *Var { return f(in[0]) } }
func binary(f func(a, b *Var) *Var) func([]*Var) *Var {
	return func(in []*Var) *Var { return f(in[0], in[1]) }
}

func conv(stride, pad, dil [2]int, groups int, bias bool) func([]*Var) *Var {
	return func(in []*Var) *Var {
		var b *Var
		if bias {
			b = in[2]
		}
		return Conv2d(in[0], in[1], b, stride, pad, dil, groups)
	}
}

func TestGradients(t *testing.T) {
	r := tensor.NewRNG(1)
	s1, s2 := [2]int{1, 1}, [2]int{2, 2}
	p0, p1 := [2]int{0, 0}, [2]int{1, 1}
	relu6Kinks := []float64{0, 6}

	bnMean, bnVar := randn(r, 3), uniform(r, 0.5, 2, 3)
	unitMean, unitVar := tensor.New(3), tensor.FromSlice([]float32{1, 1, 1}, 3)

	// Fake-quant inputs: step 0.25, zero point 3, 4 bits. Values sit at
	// level k + frac (|frac| < 0.4) for k well inside [0, 15], plus some
	// far below and above, so no perturbation crosses a rounding or clamp
	// boundary.
	const fqDelta, fqZP, fqBits = 0.25, 3, 4
	fqX := tensor.New(2, 3, 4)
	for i := range fqX.Data {
		k := float64(1 + r.Intn(13))
		switch i % 7 {
		case 0:
			k = -4
		case 3:
			k = 19
		}
		fqX.Data[i] = float32((k - fqZP + r.Uniform(-0.4, 0.4)) * fqDelta)
	}
	fqRowDelta, fqRowZP := []float32{0.25, 0.2}, []float32{3, 5}
	fqRows := tensor.New(2, 6)
	for i := range fqRows.Data {
		row := i / 6
		k := float64(1 + r.Intn(13))
		if i%5 == 0 {
			k = 20
		}
		d, z := float64(fqRowDelta[row]), float64(fqRowZP[row])
		fqRows.Data[i] = float32((k - z + r.Uniform(-0.4, 0.4)) * d)
	}

	// AdaRound: alpha where h is strictly inside (0,1) and weights whose
	// floor level keeps the soft value inside [0, levels-1].
	arDelta, arZP := []float32{0.1, 0.3}, []float32{2, 4}
	arW := tensor.New(2, 5)
	for i := range arW.Data {
		row := i / 5
		lvl := float64(1 + r.Intn(10))
		arW.Data[i] = float32((lvl - float64(arZP[row]) + r.Uniform(0.1, 0.9)) * float64(arDelta[row]))
	}

	lo, hi := []float32{-1, -0.5, 0}, []float32{1, 0.5, 2}

	cases := []gradCase{
		{name: "Add", inputs: []*tensor.Tensor{randn(r, 2, 3, 4), randn(r, 2, 3, 4)}, f: binary(Add)},
		{name: "Sub", inputs: []*tensor.Tensor{randn(r, 2, 3), randn(r, 2, 3)}, f: binary(Sub)},
		{name: "Mul", inputs: []*tensor.Tensor{randn(r, 2, 3, 4), randn(r, 2, 3, 4)}, f: binary(Mul)},
		{name: "Mul/self", inputs: []*tensor.Tensor{randn(r, 5)}, f: func(in []*Var) *Var { return Mul(in[0], in[0]) }},
		{name: "Mul/const", inputs: []*tensor.Tensor{randn(r, 5), randn(r, 5)}, noGrad: []bool{false, true}, f: binary(Mul)},
		{name: "Scale", inputs: []*tensor.Tensor{randn(r, 7)}, f: unary(func(x *Var) *Var { return Scale(x, -0.7) })},
		{name: "AddScalar", inputs: []*tensor.Tensor{randn(r, 7)}, f: unary(func(x *Var) *Var { return AddScalar(x, 1.5) })},
		{name: "ReLU", inputs: []*tensor.Tensor{awayFrom(r, 1, 0.05, []float64{0}, 3, 8)}, f: unary(ReLU)},
		{name: "ReLU6", inputs: []*tensor.Tensor{awayFrom(r, 4, 0.05, relu6Kinks, 3, 8)}, f: unary(ReLU6)},
		// Two ReLUs of one input: the first contribution is stored, the
		// second added.
		{name: "ReLU/two-sources", inputs: []*tensor.Tensor{awayFrom(r, 1, 0.05, []float64{0}, 3, 8)}, f: unary(func(x *Var) *Var {
			return Add(ReLU(x), Scale(ReLU(x), -0.5))
		})},
		{name: "ReLU6/two-sources", inputs: []*tensor.Tensor{awayFrom(r, 4, 0.05, relu6Kinks, 3, 8)}, f: unary(func(x *Var) *Var {
			return Add(ReLU6(x), Scale(ReLU6(x), 0.25))
		})},
		{name: "MaxScalar", inputs: []*tensor.Tensor{awayFrom(r, 1, 0.05, []float64{0.3}, 12)}, f: unary(func(x *Var) *Var { return MaxScalar(x, 0.3) })},
		{name: "Sqrt", inputs: []*tensor.Tensor{uniform(r, 0.5, 3, 10)}, f: unary(Sqrt)},
		{name: "Pow/2.4", inputs: []*tensor.Tensor{uniform(r, 0.2, 2, 10)}, f: unary(func(x *Var) *Var { return Pow(x, 2.4) })},
		{name: "Pow/3", inputs: []*tensor.Tensor{randn(r, 10)}, f: unary(func(x *Var) *Var { return Pow(x, 3) })},

		{name: "Sum", inputs: []*tensor.Tensor{randn(r, 3, 4)}, f: unary(Sum)},
		{name: "SumSquares", inputs: []*tensor.Tensor{randn(r, 3, 4)}, f: unary(SumSquares)},
		{name: "Mean/0,2,3", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 3)}, f: unary(func(x *Var) *Var { return Mean(x, 0, 2, 3) })},
		{name: "Mean/2,3", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 3)}, f: unary(func(x *Var) *Var { return Mean(x, 2, 3) })},
		{name: "Mean/-1", inputs: []*tensor.Tensor{randn(r, 3, 4)}, f: unary(func(x *Var) *Var { return Mean(x, -1) })},
		{name: "Mean/all", inputs: []*tensor.Tensor{randn(r, 3, 4)}, f: unary(func(x *Var) *Var { return Mean(x) })},
		{name: "Mean/1-generic", inputs: []*tensor.Tensor{randn(r, 2, 3, 4)}, f: unary(func(x *Var) *Var { return Mean(x, 1) })},
		{name: "MeanSquare/0-generic", inputs: []*tensor.Tensor{randn(r, 3, 4, 2)}, f: unary(func(x *Var) *Var { return MeanSquare(x, 0) })},
		{name: "MeanSquare/2,3", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 2)}, f: unary(func(x *Var) *Var { return MeanSquare(x, 2, 3) })},
		{name: "Mean/2d-channel", inputs: []*tensor.Tensor{randn(r, 4, 3)}, f: unary(func(x *Var) *Var { return Mean(x, 0) })},
		{name: "MeanSquare/0,2,3", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 2)}, f: unary(func(x *Var) *Var { return MeanSquare(x, 0, 2, 3) })},
		{name: "ChannelMoments/both", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 3)}, f: unary(func(x *Var) *Var {
			m, ms := ChannelMoments(x)
			return Add(Mul(m, m), Scale(ms, 0.7))
		})},
		{name: "ChannelMoments/mean-only", inputs: []*tensor.Tensor{randn(r, 3, 2, 4)}, f: unary(func(x *Var) *Var {
			m, _ := ChannelMoments(x)
			return m
		})},
		{name: "ChannelMoments/square-only", inputs: []*tensor.Tensor{randn(r, 4, 3)}, f: unary(func(x *Var) *Var {
			_, ms := ChannelMoments(x)
			return ms
		})},
		{name: "Std/unbiased", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 3)}, f: unary(func(x *Var) *Var { return Std(x, []int{2, 3}, true) })},
		{name: "Std/biased", inputs: []*tensor.Tensor{randn(r, 2, 3, 4)}, f: unary(func(x *Var) *Var { return Std(x, []int{0, 2}, false) })},
		{name: "Max/last", inputs: []*tensor.Tensor{distinct(r, 3, 5)}, f: unary(func(x *Var) *Var { return Max(x, 1) })},
		{name: "Max/inner", inputs: []*tensor.Tensor{distinct(r, 4, 3, 2)}, f: unary(func(x *Var) *Var { return Max(x, 0) })},
		{name: "Min/last", inputs: []*tensor.Tensor{distinct(r, 3, 5)}, f: unary(func(x *Var) *Var { return Min(x, -1) })},
		{name: "Min/inner", inputs: []*tensor.Tensor{distinct(r, 2, 4, 3)}, f: unary(func(x *Var) *Var { return Min(x, 1) })},
		{name: "LpLoss/2.4", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 2), randn(r, 2, 3, 2, 2)}, f: binary(func(a, b *Var) *Var { return LpLoss(a, b, 2.4) })},
		{name: "LpLoss/2", inputs: []*tensor.Tensor{randn(r, 4, 5), randn(r, 4, 5)}, f: binary(func(a, b *Var) *Var { return LpLoss(a, b, 2) })},

		{name: "Conv2d/3x3", inputs: []*tensor.Tensor{randn(r, 1, 3, 5, 5), randn(r, 4, 3, 3, 3), randn(r, 4)}, f: conv(s1, p1, s1, 1, true)},
		{name: "Conv2d/stride2-nonsquare", inputs: []*tensor.Tensor{randn(r, 2, 2, 7, 5), randn(r, 3, 2, 3, 3)}, f: conv(s2, p1, s1, 1, false)},
		{name: "Conv2d/depthwise", inputs: []*tensor.Tensor{randn(r, 2, 4, 5, 5), randn(r, 4, 1, 3, 3), randn(r, 4)}, f: conv(s1, p1, s1, 4, true)},
		{name: "Conv2d/depthwise-s2", inputs: []*tensor.Tensor{randn(r, 1, 3, 6, 6), randn(r, 3, 1, 3, 3)}, f: conv(s2, p1, s1, 3, false)},
		{name: "Conv2d/groups2", inputs: []*tensor.Tensor{randn(r, 1, 4, 4, 4), randn(r, 6, 2, 3, 3), randn(r, 6)}, f: conv(s1, p0, s1, 2, true)},
		{name: "Conv2d/1x1", inputs: []*tensor.Tensor{randn(r, 2, 5, 3, 3), randn(r, 4, 5, 1, 1)}, f: conv(s1, p0, s1, 1, false)},
		{name: "Conv2d/1x1-s2", inputs: []*tensor.Tensor{randn(r, 1, 3, 5, 5), randn(r, 2, 3, 1, 1)}, f: conv(s2, p0, s1, 1, false)},
		{name: "Conv2d/7x7-s2-stem", inputs: []*tensor.Tensor{randn(r, 1, 3, 9, 9), randn(r, 2, 3, 7, 7)}, f: conv(s2, [2]int{3, 3}, s1, 1, false)},
		{name: "Conv2d/dilation2", inputs: []*tensor.Tensor{randn(r, 1, 2, 6, 7), randn(r, 3, 2, 3, 3), randn(r, 3)}, f: conv(s1, s2, s2, 1, true)},
		{name: "Conv2d/weight-only", inputs: []*tensor.Tensor{randn(r, 1, 2, 4, 4), randn(r, 2, 2, 3, 3)}, noGrad: []bool{true}, f: conv(s1, p1, s1, 1, false)},

		{name: "Linear", inputs: []*tensor.Tensor{randn(r, 3, 5), randn(r, 4, 5), randn(r, 4)}, f: func(in []*Var) *Var { return Linear(in[0], in[1], in[2]) }},
		{name: "Linear/nobias", inputs: []*tensor.Tensor{randn(r, 1, 6), randn(r, 2, 6)}, f: func(in []*Var) *Var { return Linear(in[0], in[1], nil) }},
		{name: "BatchNorm", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 2), randn(r, 3), randn(r, 3)}, f: func(in []*Var) *Var {
			return BatchNorm(in[0], bnMean, bnVar, in[1], in[2], 1e-5)
		}},
		// Unit statistics and eps 0 make the batch norm the identity, so
		// inputs kept away from the kinks keep its output away from them.
		{name: "BatchNormAct/relu", inputs: []*tensor.Tensor{awayFrom(r, 1, 0.05, []float64{0}, 2, 3, 2, 2)}, f: unary(func(x *Var) *Var {
			return BatchNormAct(x, unitMean, unitVar, nil, nil, 0, kernels.ActReLU)
		})},
		{name: "BatchNormAct/relu6", inputs: []*tensor.Tensor{awayFrom(r, 4, 0.05, relu6Kinks, 2, 3, 2, 2)}, f: unary(func(x *Var) *Var {
			return BatchNormAct(x, unitMean, unitVar, nil, nil, 0, kernels.ActReLU6)
		})},
		{name: "BatchNorm/2d-noaffine", inputs: []*tensor.Tensor{randn(r, 4, 3)}, f: unary(func(x *Var) *Var { return BatchNorm(x, bnMean, bnVar, nil, nil, 1e-3) })},
		{name: "GlobalAvgPool", inputs: []*tensor.Tensor{randn(r, 2, 3, 3, 2)}, f: unary(GlobalAvgPool)},
		{name: "MaxPool2d/3x3-s2-p1", inputs: []*tensor.Tensor{distinct(r, 2, 2, 5, 6)}, f: unary(func(x *Var) *Var { return MaxPool2d(x, [2]int{3, 3}, s2, p1) })},
		{name: "MaxPool2d/2x2", inputs: []*tensor.Tensor{distinct(r, 1, 2, 4, 4)}, f: unary(func(x *Var) *Var { return MaxPool2d(x, s2, s2, p0) })},

		{name: "Reshape", inputs: []*tensor.Tensor{randn(r, 2, 6)}, f: unary(func(x *Var) *Var { return Mul(Reshape(x, 3, -1), Reshape(x, 3, 4)) })},
		{name: "Flatten", inputs: []*tensor.Tensor{randn(r, 2, 2, 2, 3)}, f: unary(Flatten)},
		{name: "FlipW", inputs: []*tensor.Tensor{randn(r, 2, 2, 3, 4)}, f: unary(FlipW)},
		{name: "Crop", inputs: []*tensor.Tensor{randn(r, 2, 2, 5, 6)}, f: unary(func(x *Var) *Var { return Crop(x, 1, 2, 3, 3) })},
		{name: "Pad", inputs: []*tensor.Tensor{randn(r, 1, 2, 3, 2)}, f: unary(func(x *Var) *Var { return Pad(x, 1, 0, 2, 1) })},

		{name: "ClampST", inputs: []*tensor.Tensor{randn(r, 2, 3, 2, 2)}, f: unary(func(x *Var) *Var { return ClampST(x, lo, hi) }),
			// straight through: the gradient is that of the identity
			surrogate: func(in []*tensor.Tensor) []float64 { return float64s(in[0].Data) }},
		{name: "FakeQuant", inputs: []*tensor.Tensor{fqX, tensor.FromSlice([]float32{fqDelta}, 1)}, eps: 1e-3,
			f:         func(in []*Var) *Var { return FakeQuant(in[0], in[1], fqZP, fqBits) },
			surrogate: fakeQuantSurrogate(fqX, []float32{fqDelta}, []float32{fqZP}, fqBits, false)},
		{name: "FakeQuantPerChannel", inputs: []*tensor.Tensor{fqRows},
			f:         unary(func(x *Var) *Var { return FakeQuantPerChannel(x, fqRowDelta, fqRowZP, fqBits) }),
			surrogate: fakeQuantSurrogate(fqRows, fqRowDelta, fqRowZP, fqBits, true)},
		{name: "AdaRound", inputs: []*tensor.Tensor{uniform(r, -2, 2, 2, 5)},
			f: unary(func(a *Var) *Var { return AdaRound(arW, a, arDelta, arZP, 3) })},
		{name: "AdaRoundRegularizer", inputs: []*tensor.Tensor{uniform(r, -2, 2, 2, 5)},
			f: unary(func(a *Var) *Var { return AdaRoundRegularizer(a, 3, 0.5) })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkGrad(t, c) })
	}
}

func float64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// fakeQuantSurrogate is the function whose derivative the fake quantizer's
// straight-through / LSQ gradient is: rounding replaced by adding the
// rounding offset frozen at the unperturbed inputs (BRECQ's round_ste),
// u = x/delta + (round(x0/delta0) - x0/delta0) + zp, q = (clamp(u) - zp)*delta.
// Per tensor, in[1] holds delta; per channel (axis 0 rows) delta is fixed.
func fakeQuantSurrogate(x0 *tensor.Tensor, delta0, zp []float32, bits int, perChannel bool) func([]*tensor.Tensor) []float64 {
	rows := len(delta0)
	cols := x0.Numel() / rows
	frozen := make([]float64, x0.Numel())
	for i, v := range x0.Data {
		s := float64(v) / float64(delta0[i/cols])
		frozen[i] = math.RoundToEven(s) - s
	}
	qmax := float64(int(1)<<bits - 1)
	return func(in []*tensor.Tensor) []float64 {
		out := make([]float64, len(frozen))
		for i, v := range in[0].Data {
			d := float64(delta0[i/cols])
			if !perChannel {
				d = float64(in[1].Data[0])
			}
			z := float64(zp[i/cols])
			u := float64(v)/d + frozen[i] + z
			out[i] = (min(max(u, 0), qmax) - z) * d
		}
		return out
	}
}

// TestChannelMomentsMatchesMeans checks the fused moments against Mean and
// MeanSquare over the same axes, bit for bit.
func TestChannelMomentsMatchesMeans(t *testing.T) {
	r := tensor.NewRNG(3)
	x := Const(r.Randn(3, 5, 4, 6))
	m, ms := ChannelMoments(x)
	wm, wms := Mean(x, 0, 2, 3), MeanSquare(x, 0, 2, 3)
	for c := range 5 {
		if m.Value.Data[c] != wm.Value.Data[c] || ms.Value.Data[c] != wms.Value.Data[c] {
			t.Fatalf("channel %d: moments %v %v, want %v %v", c, m.Value.Data[c], ms.Value.Data[c], wm.Value.Data[c], wms.Value.Data[c])
		}
	}
	if m.RequiresGrad() || ms.RequiresGrad() {
		t.Error("moments of a constant require a gradient")
	}
}

// TestBatchNormActMoments checks that the moments BatchNormActMoments
// leaves with its input are those ChannelMoments computes itself, bit for
// bit, its output is BatchNormAct's, and gradients still flow through the
// moments (their backward reads x, not the cache).
func TestBatchNormActMoments(t *testing.T) {
	r := tensor.NewRNG(5)
	mean, variance := r.Randn(4), r.Randn(4)
	for i, v := range variance.Data {
		variance.Data[i] = v*v + 0.1
	}
	gamma, beta := Const(r.Randn(4)), Const(r.Randn(4))
	for _, arena := range []bool{false, true} {
		xv := r.Randn(3, 4, 5, 7)
		plain := NewVar(xv.Clone(), true)
		cached := NewVar(xv.Clone(), true)
		if arena {
			a := NewArena()
			plain.SetArena(a)
			cached.SetArena(a)
		}
		want := BatchNormAct(plain, mean, variance, gamma, beta, 1e-5, kernels.ActReLU)
		got := BatchNormActMoments(cached, mean, variance, gamma, beta, 1e-5, kernels.ActReLU)
		if len(cached.moments) != 8 {
			t.Fatalf("arena %v: %d cached moments, want 8", arena, len(cached.moments))
		}
		// Poison the input after the fact: only the cache can now give
		// the right moments.
		saved := slices.Clone(cached.Value.Data)
		clear(cached.Value.Data)
		gm, gsq := ChannelMoments(cached)
		copy(cached.Value.Data, saved)
		wm, wsq := ChannelMoments(plain)
		for i := range want.Value.Data {
			if math.Float32bits(got.Value.Data[i]) != math.Float32bits(want.Value.Data[i]) {
				t.Fatalf("arena %v: output[%d] = %g, want %g", arena, i, got.Value.Data[i], want.Value.Data[i])
			}
		}
		for c := range 4 {
			if gm.Value.Data[c] != wm.Value.Data[c] || gsq.Value.Data[c] != wsq.Value.Data[c] {
				t.Fatalf("arena %v: channel %d moments %g %g, want %g %g", arena, c, gm.Value.Data[c], gsq.Value.Data[c], wm.Value.Data[c], wsq.Value.Data[c])
			}
		}
		Sum(Add(Add(Sum(want), Sum(wm)), Sum(wsq))).Backward()
		Sum(Add(Add(Sum(got), Sum(gm)), Sum(gsq))).Backward()
		for i := range plain.Grad.Data {
			if math.Float32bits(cached.Grad.Data[i]) != math.Float32bits(plain.Grad.Data[i]) {
				t.Fatalf("arena %v: grad[%d] = %g, want %g", arena, i, cached.Grad.Data[i], plain.Grad.Data[i])
			}
		}
	}
}

// TestConv2dBatchNormActMoments: the fused convolution and batch norm
// give Conv2d then BatchNormActMoments (BatchNormAddActMoments with a
// residual) bit for bit: the convolution's output, the result, the
// moments ChannelMoments reads from the cache, and the gradients of the
// input, the weights, the bias, gamma, beta and the residual, with
// ChannelMoments in the loss (DGH) or not, on a pointwise, a padded and a
// depthwise convolution, in an arena or not.
func TestConv2dBatchNormActMoments(t *testing.T) {
	r := tensor.NewRNG(13)
	for _, cv := range []struct {
		name              string
		c, k, size, group int
		stride, pad       int
	}{{"1x1", 6, 8, 1, 1, 1, 0}, {"3x3 s2", 6, 8, 3, 1, 2, 1}, {"depthwise", 8, 8, 3, 8, 1, 1}} {
		xv, wv := r.Randn(3, cv.c, 10, 12), r.Randn(cv.k, cv.c/cv.group, cv.size, cv.size)
		bv, gv, betav := r.Randn(cv.k), r.Randn(cv.k), r.Randn(cv.k)
		mean, variance := r.Randn(cv.k), r.Randn(cv.k)
		for i, v := range variance.Data {
			variance.Data[i] = v*v + 0.1
		}
		oh := (10+2*cv.pad-cv.size)/cv.stride + 1
		ow := (12+2*cv.pad-cv.size)/cv.stride + 1
		rv, wt := r.Randn(3, cv.k, oh, ow), Const(r.Randn(3, cv.k, oh, ow))
		u, v := Const(r.Randn(cv.k)), Const(r.Randn(cv.k))
		stride, pad, dil := [2]int{cv.stride, cv.stride}, [2]int{cv.pad, cv.pad}, [2]int{1, 1}
		type run struct{ x, w, b, gamma, beta, res, conv, out, m, sq *Var }
		build := func(fused, residual, moments, arena bool, act kernels.Activation) run {
			x, w, b := NewVar(xv.Clone(), true), NewVar(wv.Clone(), true), NewVar(bv.Clone(), true)
			gamma, beta := NewVar(gv.Clone(), true), NewVar(betav.Clone(), true)
			var res *Var
			if residual {
				res = NewVar(rv.Clone(), true)
			}
			if arena {
				x.SetArena(NewArena())
			}
			var c, out *Var
			switch {
			case fused && residual:
				c, out = Conv2dBatchNormAddActMoments(x, w, b, res, stride, pad, dil, cv.group, mean, variance, gamma, beta, 1e-5, act)
			case fused:
				c, out = Conv2dBatchNormActMoments(x, w, b, stride, pad, dil, cv.group, mean, variance, gamma, beta, 1e-5, act)
			case residual:
				c = Conv2d(x, w, b, stride, pad, dil, cv.group)
				out = BatchNormAddActMoments(c, res, mean, variance, gamma, beta, 1e-5, act)
			default:
				c = Conv2d(x, w, b, stride, pad, dil, cv.group)
				out = BatchNormActMoments(c, mean, variance, gamma, beta, 1e-5, act)
			}
			m, sq := ChannelMoments(c)
			loss := Sum(Mul(out, wt))
			if moments {
				loss = Add(loss, Add(Sum(Mul(m, u)), Sum(Mul(sq, v))))
			}
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			return run{x, w, b, gamma, beta, res, c, out, m, sq}
		}
		for _, act := range []kernels.Activation{kernels.ActNone, kernels.ActReLU, kernels.ActReLU6} {
			for _, residual := range []bool{false, true} {
				for _, moments := range []bool{false, true} {
					for _, arena := range []bool{false, true} {
						want, got := build(false, residual, moments, arena, act), build(true, residual, moments, arena, act)
						cmps := []namedValues{
							{"conv", got.conv.Value.Data, want.conv.Value.Data},
							{"output", got.out.Value.Data, want.out.Value.Data},
							{"mean", got.m.Value.Data, want.m.Value.Data},
							{"mean of squares", got.sq.Value.Data, want.sq.Value.Data},
							{"x grad", got.x.Grad.Data, want.x.Grad.Data},
							{"w grad", got.w.Grad.Data, want.w.Grad.Data},
							{"b grad", got.b.Grad.Data, want.b.Grad.Data},
							{"gamma grad", got.gamma.Grad.Data, want.gamma.Grad.Data},
							{"beta grad", got.beta.Grad.Data, want.beta.Grad.Data},
						}
						if residual {
							cmps = append(cmps, namedValues{"residual grad", got.res.Grad.Data, want.res.Grad.Data})
						}
						sameValueBits(t, fmt.Sprintf("%s %v residual %v moments %v arena %v", cv.name, act, residual, moments, arena), cmps)
					}
				}
			}
		}
	}
}

// TestBatchNormMomentsOnePass: a BatchNormActMoments node and
// ChannelMoments of the same input add their gradients in one pass,
// whichever backward runs first, and each alone (the other's output out
// of the loss) still adds its own: bit for bit the batch norm's kernel
// pass then the moments' one.
func TestBatchNormMomentsOnePass(t *testing.T) {
	r := tensor.NewRNG(9)
	const n, c, hw = 3, 4, 35
	mean, variance := r.Randn(c), r.Randn(c)
	for i, v := range variance.Data {
		variance.Data[i] = v*v + 0.1
	}
	gamma, beta := Const(r.Randn(c)), Const(r.Randn(c))
	xv := r.Randn(n, c, 5, 7)
	w, u, v := Const(r.Randn(n, c, 5, 7)), Const(r.Randn(c)), Const(r.Randn(c))
	scale := make([]float32, c)
	for ch := range c {
		scale[ch] = float32(float64(gamma.Value.Data[ch]) / math.Sqrt(float64(variance.Data[ch])+1e-5))
	}
	for _, act := range []kernels.Activation{kernels.ActNone, kernels.ActReLU6} {
		for _, tc := range []struct {
			name         string
			bn, moments  bool // terms in the loss
			bnTermsFirst bool
		}{{"bn+moments", true, true, true}, {"moments+bn", true, true, false}, {"bn only", true, false, true}, {"moments only", false, true, true}} {
			x := NewVar(xv.Clone(), true)
			y := BatchNormActMoments(x, mean, variance, gamma, beta, 1e-5, act)
			m, sq := ChannelMoments(x)
			var terms []*Var
			if tc.bn {
				terms = append(terms, Sum(Mul(y, w)))
			}
			if tc.moments {
				terms = append(terms, Add(Sum(Mul(m, u)), Sum(Mul(sq, v))))
			}
			if !tc.bnTermsFirst {
				slices.Reverse(terms)
			}
			loss := terms[0]
			if len(terms) == 2 {
				loss = Add(terms[0], terms[1])
			}
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, xv.Numel())
			if tc.bn {
				kernels.ScaleShiftBackward(n, c, hw, xv.Data, scale, y.Value.Data, w.Value.Data, want, nil, nil, act)
			}
			if tc.moments {
				kernels.ChannelMomentsBackward(n, c, hw, xv.Data, u.Value.Data, v.Value.Data, want)
			}
			for i := range want {
				if math.Float32bits(x.Grad.Data[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v %s: grad[%d] = %g, want %g", act, tc.name, i, x.Grad.Data[i], want[i])
				}
			}
			if x.bnDeferred != nil || x.momentsGrad != nil {
				t.Fatalf("%v %s: a deferred gradient was left behind", act, tc.name)
			}
		}
	}
}

// TestReLUTwoSources: an intermediate feeding two ReLUs (or ReLU6s) gets
// mask*(w1+w2) bit for bit, the first contribution stored over its
// uncleared arena buffer (poisoned with NaN between steps) and the second
// added, whichever of the two terms comes first in the loss.
func TestReLUTwoSources(t *testing.T) {
	r := tensor.NewRNG(12)
	xv := r.Randn(2, 3, 5, 7)
	for i := range xv.Data {
		switch i % 9 { // the bounds pass no gradient
		case 2:
			xv.Data[i] = 0
		case 5:
			xv.Data[i] = 3 // h = 2x = 6
		}
	}
	w1, w2 := Const(r.Randn(2, 3, 5, 7)), Const(r.Randn(2, 3, 5, 7))
	for _, six := range []bool{false, true} {
		act := ReLU
		if six {
			act = ReLU6
		}
		want := make([]float32, xv.Numel())
		for i, v := range xv.Data {
			if h := 2 * v; h > 0 && (!six || h < 6) {
				want[i] = 2 * (w1.Value.Data[i] + w2.Value.Data[i])
			}
		}
		a := NewArena()
		x := NewVar(xv.Clone(), true)
		x.SetArena(a)
		for step := range 4 {
			x.ZeroGrad()
			h := Scale(x, 2) // an intermediate, its gradient in the arena
			t1, t2 := Sum(Mul(act(h), w1)), Sum(Mul(act(h), w2))
			loss := Add(t1, t2)
			if step%2 == 1 {
				loss = Add(t2, t1)
			}
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(x.Grad.Data[i]) != math.Float32bits(want[i]) {
					t.Fatalf("relu6 %v step %d: grad[%d] = %g, want %g", six, step, i, x.Grad.Data[i], want[i])
				}
			}
			a.Reset()
			poison(a)
		}
	}
}

// TestBatchNormAddActArena: a residual that is an intermediate gets its
// first gradient from the block's activation mask, stored over an
// uncleared arena buffer (poisoned with NaN between steps); the steps
// must match the same graph on the heap bit for bit.
func TestBatchNormAddActArena(t *testing.T) {
	r := tensor.NewRNG(13)
	const n, c = 2, 3
	mean, variance := r.Randn(c), r.Randn(c)
	for i, v := range variance.Data {
		variance.Data[i] = v*v + 0.1
	}
	gamma, beta := Const(r.Randn(c)), Const(r.Randn(c))
	xv, rv, w := r.Randn(n, c, 6, 5), r.Randn(n, c, 6, 5), Const(r.Randn(n, c, 6, 5))
	for _, act := range []kernels.Activation{kernels.ActReLU, kernels.ActReLU6} {
		x, res := NewVar(xv.Clone(), true), NewVar(rv.Clone(), true)
		step := func() (dx, dr []float32) {
			x.ZeroGrad()
			res.ZeroGrad()
			h := Scale(res, 4) // an intermediate residual
			out := BatchNormAddAct(x, h, mean, variance, gamma, beta, 1e-5, act)
			if err := Sum(Mul(out, w)).Backward(); err != nil {
				t.Fatal(err)
			}
			return slices.Clone(x.Grad.Data), slices.Clone(res.Grad.Data)
		}
		wantDx, wantDr := step()
		a := NewArena()
		x.SetArena(a)
		res.SetArena(a)
		for s := range 3 {
			dx, dr := step()
			a.Reset()
			poison(a)
			if !slices.Equal(dx, wantDx) || !slices.Equal(dr, wantDr) {
				t.Fatalf("%v step %d in the arena: the gradients differ from the heap's", act, s)
			}
		}
	}
}

// TestBatchNormAddAct: the fused tail of a residual block gives the
// chain's output and the chain's gradients for x, the residual, gamma and
// beta, bit for bit, with and without the moments (and ChannelMoments of
// x in the loss), in an arena or not.
func TestBatchNormAddAct(t *testing.T) {
	r := tensor.NewRNG(11)
	const n, c = 3, 4
	mean, variance := r.Randn(c), r.Randn(c)
	for i, v := range variance.Data {
		variance.Data[i] = v*v + 0.1
	}
	gv, bv := r.Randn(c), r.Randn(c)
	xv, rv := r.Randn(n, c, 5, 7), r.Randn(n, c, 5, 7)
	w, u, v := Const(r.Randn(n, c, 5, 7)), Const(r.Randn(c)), Const(r.Randn(c))
	type run struct{ x, res, gamma, beta, out *Var }
	w2 := Const(r.Randn(n, c, 5, 7))
	// reuse 1 and 2 give the residual a second consumer, Sum(res*w2),
	// whose gradient reaches it before the block's (which then adds) or
	// after (the block stores).
	build := func(fused, moments, arena bool, act kernels.Activation, reuse int) run {
		x, res := NewVar(xv.Clone(), true), NewVar(rv.Clone(), true)
		gamma, beta := NewVar(gv.Clone(), true), NewVar(bv.Clone(), true)
		if arena {
			a := NewArena()
			x.SetArena(a)
			res.SetArena(a)
		}
		var out *Var
		switch {
		case fused && moments:
			out = BatchNormAddActMoments(x, res, mean, variance, gamma, beta, 1e-5, act)
		case fused:
			out = BatchNormAddAct(x, res, mean, variance, gamma, beta, 1e-5, act)
		default:
			bn := BatchNormAct
			if moments {
				bn = BatchNormActMoments
			}
			out = Add(bn(x, mean, variance, gamma, beta, 1e-5, kernels.ActNone), res)
			switch act {
			case kernels.ActReLU:
				out = ReLU(out)
			case kernels.ActReLU6:
				out = ReLU6(out)
			}
		}
		loss := Sum(Mul(out, w))
		switch reuse {
		case 1:
			loss = Add(loss, Sum(Mul(res, w2)))
		case 2:
			loss = Add(Sum(Mul(res, w2)), loss)
		}
		if moments {
			m, sq := ChannelMoments(x)
			loss = Add(loss, Add(Sum(Mul(m, u)), Sum(Mul(sq, v))))
		}
		if err := loss.Backward(); err != nil {
			t.Fatal(err)
		}
		return run{x, res, gamma, beta, out}
	}
	for _, act := range []kernels.Activation{kernels.ActNone, kernels.ActReLU, kernels.ActReLU6} {
		for _, moments := range []bool{false, true} {
			for _, arena := range []bool{false, true} {
				for reuse := range 3 {
					want, got := build(false, moments, arena, act, reuse), build(true, moments, arena, act, reuse)
					sameValueBits(t, fmt.Sprintf("%v moments %v arena %v reuse %d", act, moments, arena, reuse), []namedValues{
						{"output", got.out.Value.Data, want.out.Value.Data},
						{"x grad", got.x.Grad.Data, want.x.Grad.Data},
						{"residual grad", got.res.Grad.Data, want.res.Grad.Data},
						{"gamma grad", got.gamma.Grad.Data, want.gamma.Grad.Data},
						{"beta grad", got.beta.Grad.Data, want.beta.Grad.Data},
					})
				}
			}
		}
	}
}

// namedValues is one result of two computations that must agree.
type namedValues struct {
	what      string
	got, want []float32
}

// sameValueBits fails t at the first of cmps whose got differs from its
// want in length or in the bits of an element, saying where (ctx).
func sameValueBits(t *testing.T, ctx string, cmps []namedValues) {
	t.Helper()
	for _, cmp := range cmps {
		if len(cmp.got) != len(cmp.want) {
			t.Fatalf("%s: %s has %d values, want %d", ctx, cmp.what, len(cmp.got), len(cmp.want))
		}
		for i := range cmp.want {
			if math.Float32bits(cmp.got[i]) != math.Float32bits(cmp.want[i]) {
				t.Fatalf("%s: %s[%d] = %g, want %g", ctx, cmp.what, i, cmp.got[i], cmp.want[i])
			}
		}
	}
}
