package brecq

import (
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// benchBlocks are the first residual block of each network's first
// stage at ImageNet resolution (tools/torchref/bench_brecq.py builds the
// same ones).
var benchBlocks = []struct {
	name  string
	make  func() layers.Module
	input []int
}{
	{"resnet18_basicblock", func() layers.Module {
		return &zoo.BasicBlock{
			Conv1: layers.NewConv2d(64, 64, 3, 1, 1, 1, false), BN1: layers.NewBatchNorm2d(64),
			Conv2: layers.NewConv2d(64, 64, 3, 1, 1, 1, false), BN2: layers.NewBatchNorm2d(64),
		}
	}, []int{32, 64, 56, 56}},
	{"resnet50_bottleneck", func() layers.Module {
		return &zoo.Bottleneck{
			Conv1: layers.NewConv2d(64, 64, 1, 1, 0, 1, false), BN1: layers.NewBatchNorm2d(64),
			Conv2: layers.NewConv2d(64, 64, 3, 1, 1, 1, false), BN2: layers.NewBatchNorm2d(64),
			Conv3: layers.NewConv2d(64, 256, 1, 1, 0, 1, false), BN3: layers.NewBatchNorm2d(256),
			Downsample: layers.NewSequential(layers.NewConv2d(64, 256, 1, 1, 0, 1, false), layers.NewBatchNorm2d(256)),
		}
	}, []int{32, 64, 56, 56}},
	{"mobilenet_v2_invres", func() layers.Module { // features.3: 24 -> 144 -> 24 at 56x56
		return &zoo.InvertedResidual{UseResidual: true, Conv: layers.NewSequential(
			layers.NewConv2d(24, 144, 1, 1, 0, 1, false), layers.NewBatchNorm2d(144), &layers.ReLU6{},
			layers.NewConv2d(144, 144, 3, 1, 1, 144, false), layers.NewBatchNorm2d(144), &layers.ReLU6{},
			layers.NewConv2d(144, 24, 1, 1, 0, 1, false), layers.NewBatchNorm2d(24),
		)}
	}, []int{32, 24, 56, 56}},
}

// BenchmarkReconstructionStep times one AdaRound step of docs/DESIGN.md, "BRECQ", step 4 on a
// batch of 32: forward with soft rounding, loss with the rounding term,
// backward, Adam.
func BenchmarkReconstructionStep(b *testing.B) {
	for _, bb := range benchBlocks {
		b.Run(bb.name, func(b *testing.B) {
			m := bb.make()
			rng := tensor.NewRNG(1)
			for _, e := range layers.StateDict(m) {
				switch d := e.Tensor; {
				case d.Dims() > 1:
					rng.FillNormal(d, 0, 0.1)
				default:
					rng.FillUniform(d, 0.5, 1.5)
				}
			}
			bl := builder{wBits: 4, aBits: 4, q: &QuantModel{}}
			blk, err := bl.block(bb.name, m)
			if err != nil {
				b.Fatal(err)
			}
			var params []*autograd.Var
			for _, qm := range blk.Modules() {
				qm.WQ.startAdaRound(qm.Weight)
				params = append(params, qm.WQ.Alpha)
			}
			opt, err := optim.NewAdam(params, optim.DefaultAdamConfig())
			if err != nil {
				b.Fatal(err)
			}
			x := rng.Randn(bb.input...)
			target := blk.Forward(autograd.Const(rng.Randn(bb.input...)), Mode{}).Value
			// The first step fills the arena; time the steady state the
			// thousands of steps of a unit see.
			arena := autograd.NewArena()
			if _, _, err := reconstructionStep(blk, Mode{Weights: true}, x, target, weightP, opt, params, 10, DefaultWeight, arena); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, _, err := reconstructionStep(blk, Mode{Weights: true}, x, target, weightP, opt, params, 10, DefaultWeight, arena); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/step")
			b.ReportMetric(float64(bb.input[0]*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
