package autograd

import (
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// convBNReLU is a ResNet-style unit: 3x3 conv, eval BatchNorm, ReLU.
type convBNReLU struct {
	w, gamma, beta *Var
	mean, vari     *tensor.Tensor
}

func newConvBNReLU(r *tensor.RNG, c, k int, grad bool) *convBNReLU {
	vari := tensor.New(k)
	r.FillUniform(vari, 0.5, 2)
	return &convBNReLU{
		w:     NewVar(r.Randn(k, c, 3, 3), grad),
		gamma: NewVar(r.Randn(k), grad),
		beta:  NewVar(r.Randn(k), grad),
		mean:  r.Randn(k),
		vari:  vari,
	}
}

func (u *convBNReLU) forward(x *Var) *Var {
	y := Conv2d(x, u.w, nil, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1}, 1)
	return ReLU(BatchNorm(y, u.mean, u.vari, u.gamma, u.beta, 1e-5))
}

// allocsPerOutput is what an op without a graph allocates: its output's
// Var, Tensor, shape and data. Everything else (im2col, packing, per-
// channel scale/shift) comes from pools.
const allocsPerOutput = 4

// TestInferenceAllocatesOnlyActivations checks "no tape in
// inference" (docs/DESIGN.md, "Packages and the flow of a run"): a forward without gradients allocates its three
// activations and nothing else.
func TestInferenceAllocatesOnlyActivations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	r := tensor.NewRNG(1)
	u := newConvBNReLU(r, 8, 8, false)
	x := Const(r.Randn(2, 8, 10, 10))
	u.forward(x) // warm the pools
	got := testing.AllocsPerRun(20, func() { u.forward(x) })
	if want := float64(3 * allocsPerOutput); got > want {
		t.Errorf("conv-bn-relu forward: %.1f allocs, want at most %.0f", got, want)
	}
}

// BenchmarkConvBNReLUForward measures an inference forward of a 3x3
// 64->64 conv + BN + ReLU on 8 images of 28x28 (allocs/op: activations
// only).
func BenchmarkConvBNReLUForward(b *testing.B) {
	const n, c, hw = 8, 64, 28
	r := tensor.NewRNG(1)
	u := newConvBNReLU(r, c, c, false)
	x := Const(r.Randn(n, c, hw, hw))
	b.ReportAllocs()
	for b.Loop() {
		u.forward(x)
	}
	flops := 2.0 * n * c * c * 9 * hw * hw
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkConvBNReLUTrainStep adds the backward pass to the weights and
// the input, as one DGH / BRECQ step does.
func BenchmarkConvBNReLUTrainStep(b *testing.B) {
	const n, c, hw = 8, 64, 28
	r := tensor.NewRNG(1)
	u := newConvBNReLU(r, c, c, true)
	x := NewVar(r.Randn(n, c, hw, hw), true)
	b.ReportAllocs()
	for b.Loop() {
		if err := Sum(u.forward(x)).Backward(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
