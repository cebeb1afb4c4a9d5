package dgh

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// randomModel is a zoo architecture with He-initialised random weights,
// BN affine parameters near identity and random running statistics,
// drawn differently from zootest.RandomModel's (the BN-loss tests here
// are tuned to these).
func randomModel(t testing.TB, name string, inCh, classes int, seed uint64) *zoo.Model {
	t.Helper()
	return zootest.RandomModelWith(t, name, inCh, classes, seed, func(rng *tensor.RNG, name string, x *tensor.Tensor) bool {
		switch {
		case strings.HasSuffix(name, "running_mean"):
			rng.FillNormal(x, 0, 0.1)
		case strings.HasSuffix(name, "running_var"):
			rng.FillUniform(x, 0.5, 1.5)
		case x.Dims() == 1 && strings.HasSuffix(name, "weight"):
			rng.FillUniform(x, 0.8, 1.2)
		case x.Dims() == 1:
			rng.FillNormal(x, 0, 0.05)
		default:
			return false
		}
		return true
	})
}

// calibrateBN sets every BN layer's running statistics to those of its
// input on x, so the targets are statistics some data really produces, as
// in a trained network. Pass k fixes layer k for good (a layer's input
// depends only on earlier layers), so one pass per layer settles all.
func calibrateBN(t testing.TB, net layers.Module, x *tensor.Tensor) {
	t.Helper()
	r, err := newRecorder(net)
	if err != nil {
		t.Fatal(err)
	}
	defer r.remove()
	for range r.layers {
		if _, err := r.forward(net, autograd.Const(x)); err != nil {
			t.Fatal(err)
		}
		for i, l := range r.layers {
			a := r.inputs[i]
			mean := autograd.Mean(a, 0, 2, 3).Value.Data
			meanSq := autograd.MeanSquare(a, 0, 2, 3).Value.Data
			for c := range mean {
				l.bn.RunningMean.Data[c] = mean[c]
				l.bn.RunningVar.Data[c] = max(meanSq[c]-mean[c]*mean[c], 1e-4)
			}
		}
	}
}

// trainedLikeResNet20 is a random resnet20 on 3-channel 8x8 images whose
// BN statistics come from smooth random "data" standardised per channel,
// so that, as for a trained network and normalised real images, one set
// of images can meet every target at once.
func trainedLikeResNet20(t testing.TB) *zoo.Model {
	m := randomModel(t, "resnet20", 3, 10, 11)
	m.Spec.InputSize = 8
	s := settings{imageSize: 8, smoothSize: 3, smoothSigma: 1.25, mean: m.Spec.Mean, std: m.Spec.Std}
	data := tensor.New(16, 3, 8, 8)
	tensor.NewRNG(12).FillNormal(data, 0, 1)
	smooth := newPipeline(&s).smooth(autograd.Const(data)).Value
	standardise(smooth)
	calibrateBN(t, m.Net, smooth)
	return m
}

func TestResNet20SameSeedSameImages(t *testing.T) {
	m := trainedLikeResNet20(t)
	run := func(seed uint64) *tensor.Tensor {
		imgs, err := Generate(context.Background(), m, Config{NImages: 16, BatchSize: 8, Iterations: 3, Padding: 4, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return imgs
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a.Data, b.Data) {
		t.Error("the same seed gave different images")
	}
	if slices.Equal(a.Data, c.Data) {
		t.Error("different seeds gave the same images")
	}
}

// TestResNet20BNLossDrops is the long convergence check: 200 iterations
// on 64 images must cut the BN loss at least tenfold. It is skipped with
// -short.
func TestResNet20BNLossDrops(t *testing.T) {
	if testing.Short() {
		t.Skip("200 DGH iterations on resnet20; run without -short")
	}
	m := trainedLikeResNet20(t)
	var first, last float64
	cfg := Config{NImages: 64, BatchSize: 32, Iterations: 200, Padding: 4, Seed: 5,
		Progress: func(p Progress) {
			if p.Iteration == 1 {
				first = p.BNLoss
			}
			last = p.BNLoss
		}}
	if _, err := Generate(context.Background(), m, cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("BN loss: iteration 1 %.5g, iteration 200 %.5g (%.1fx lower)", first, last, first/last)
	if !(last*10 <= first) {
		t.Fatalf("BN loss went from %.5g to %.5g, want at least 10x lower", first, last)
	}
}

// standardise gives every channel of x mean 0 and variance 1 over
// (N, H, W), the statistics DGH's image layer targets.
func standardise(x *tensor.Tensor) {
	n, c, hw := x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3]
	for ch := range c {
		var s, s2 float64
		for i := range n {
			for _, v := range x.Data[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += float64(v)
				s2 += float64(v) * float64(v)
			}
		}
		cnt := float64(n * hw)
		m := s / cnt
		sd := math.Sqrt(s2/cnt - m*m)
		for i := range n {
			row := x.Data[(i*c+ch)*hw : (i*c+ch+1)*hw]
			for j := range row {
				row[j] = float32((float64(row[j]) - m) / sd)
			}
		}
	}
}
