package zoo

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/tensor"
)

// randomize fills a model with He-scaled Gaussian weights and mildly
// perturbed BatchNorm statistics, so activations keep a sane range (no
// overflow or denormals skewing a benchmark).
func randomize(net layers.Module, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, e := range layers.StateDict(net) {
		d := e.Tensor.Data
		switch {
		case strings.HasSuffix(e.Name, "running_var"):
			for i := range d {
				d[i] = 0.5 + rng.Float32()
			}
		case len(e.Tensor.Shape) == 1:
			for i := range d {
				d[i] = 0.1 * float32(rng.NormFloat64())
			}
			if strings.HasSuffix(e.Name, "weight") {
				for i := range d {
					d[i] += 1
				}
			}
		default:
			std := math.Sqrt(2 / float64(len(d)/e.Tensor.Shape[0]))
			for i := range d {
				d[i] = float32(std * rng.NormFloat64())
			}
		}
	}
}

// BenchmarkForward times inference on a batch of 8 images at 224x224 with
// random weights; run it beside tools/torchref/bench_forward.py at the same
// thread count.
func BenchmarkForward(b *testing.B) {
	const batch = 8
	for _, name := range []string{"resnet18", "resnet50", "mobilenet_v2"} {
		b.Run(name, func(b *testing.B) {
			m, err := New(name, 3, 1000)
			if err != nil {
				b.Fatal(err)
			}
			randomize(m.Net, 1)
			x := tensor.New(batch, 3, 224, 224)
			rng := rand.New(rand.NewPCG(2, 2))
			for i := range x.Data {
				x.Data[i] = float32(rng.NormFloat64())
			}
			in := autograd.Const(x)
			m.Forward(in) // warm the kernels' scratch pools
			b.ReportAllocs()
			runs := 0
			for b.Loop() {
				m.Forward(in)
				runs++
			}
			b.ReportMetric(float64(batch*runs)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
