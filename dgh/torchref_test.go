package dgh

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// Fixtures come from tools/torchref/dgh.py (PyTorch).

var imagenetMean, imagenetStd = []float32{0.485, 0.456, 0.406}, []float32{0.229, 0.224, 0.225}

func readFixture(t testing.TB, name string) *tensor.Tensor {
	t.Helper()
	x, err := tensor.ReadNPY(filepath.Join("testdata", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// assertClose fails unless max|got-want| <= rtol * max(|want|), the
// tolerance relative to the reference's scale.
func assertClose(t *testing.T, what string, got, want []float32, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale, worst, at := 0.0, 0.0, 0
	for i := range want {
		scale = max(scale, math.Abs(float64(want[i])))
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if !(worst <= rtol*max(scale, 1e-30)) {
		t.Errorf("%s: max error %.3g at %d (got %v, want %v), scale %.3g, rtol %g", what, worst, at, got[at], want[at], scale, rtol)
	}
}

func TestGaussianKernelMatchesTorch(t *testing.T) {
	for _, tc := range []struct {
		size  int
		sigma float64
	}{{1, 1.25}, {3, 1.25}, {5, 0.8}} {
		want := readFixture(t, "smooth_k"+strconv.Itoa(tc.size))
		got := GaussianKernel(tc.size, tc.sigma)
		assertClose(t, "kernel "+strconv.Itoa(tc.size), got, want.Data, 1e-6)
		sum := 0.0
		for _, v := range got {
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("kernel %d sums to %v, want 1", tc.size, sum)
		}
	}
}

func TestValidRange(t *testing.T) {
	for _, tc := range []struct {
		mean, std, lo, hi float32
	}{
		{0.485, 0.229, -0.485 / 0.229, 0.515 / 0.229},
		{0.5, 0.5, -1, 1},
		{0, 1, 0, 1},
	} {
		lo, hi := ValidRange([]float32{tc.mean}, []float32{tc.std})
		if math.Abs(float64(lo[0]-tc.lo)) > 1e-6 || math.Abs(float64(hi[0]-tc.hi)) > 1e-6 {
			t.Errorf("mean %v std %v: range [%v, %v], want [%v, %v]", tc.mean, tc.std, lo[0], hi[0], tc.lo, tc.hi)
		}
	}
}

func TestAugmentMatchesTorch(t *testing.T) {
	x := readFixture(t, "aug_x")
	w := readFixture(t, "aug_w")
	for _, tc := range []struct {
		name  string
		flip  bool
		size  int
		sigma float64
	}{
		{"flip_s3", true, 3, 1.25},
		{"noflip_s5", false, 5, 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := settings{imageSize: 4, padding: 3, smoothSize: tc.size, smoothSigma: tc.sigma, mean: imagenetMean, std: imagenetStd}
			p := newPipeline(&s)
			xv := autograd.NewVar(x.Clone(), true)
			y := p.augment(xv, augmentation{flip: tc.flip, top: 1, left: 2})
			if err := autograd.Sum(autograd.Mul(y, autograd.Const(w))).Backward(); err != nil {
				t.Fatal(err)
			}
			assertClose(t, "output", y.Value.Data, readFixture(t, "aug_"+tc.name+"_y").Data, 1e-5)
			assertClose(t, "gradient", xv.Grad.Data, readFixture(t, "aug_"+tc.name+"_grad").Data, 1e-5)
		})
	}
}

// smallModel is tools/torchref/dgh.py's BN CNN with its fixed weights.
func smallModel(t testing.TB) *zoo.Model {
	t.Helper()
	net := layers.NewSequential(
		layers.NewConv2d(3, 4, 3, 1, 1, 1, false),
		layers.NewBatchNorm2d(4),
		&layers.ReLU{},
		layers.NewConv2d(4, 6, 3, 2, 1, 1, true),
		layers.NewBatchNorm2d(6),
		&layers.ReLU{},
		&layers.AdaptiveAvgPool2d{},
		&layers.Flatten{},
		layers.NewLinear(6, 5, true),
	)
	for _, e := range layers.StateDict(net) {
		e.Tensor.CopyFrom(readFixture(t, "net_"+strings.ReplaceAll(e.Name, ".", "_")))
	}
	return &zoo.Model{Name: "small", Net: net, Spec: zoo.Spec{
		InputSize: 8, Mean: imagenetMean, Std: imagenetStd, LastBN: "4", OutputLossFactor: 0.05,
	}}
}

// TestStepMatchesTorch runs batch 0's step and batch 1's loss of one
// iteration with a fixed augmentation and compares every loss part, the
// image gradients and the images after RAdam's step with PyTorch.
func TestStepMatchesTorch(t *testing.T) {
	images0 := readFixture(t, "step_images0")
	for _, tc := range []struct {
		name string
		aug  augmentation
		size int
	}{
		{"plain", augmentation{top: 2, left: 2}, 1},
		{"aug", augmentation{flip: true, top: 1, left: 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := smallModel(t)
			s, err := Config{NImages: 6, BatchSize: 4, Padding: 4, SmoothingSize: tc.size}.resolve(model.Spec)
			if err != nil {
				t.Fatal(err)
			}
			g, err := newGenerator(model, s)
			if err != nil {
				t.Fatal(err)
			}
			defer g.close()
			g.images = images0.Clone()
			if err := g.makeBatches(); err != nil {
				t.Fatal(err)
			}
			if err := g.measureAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			for b := range 2 {
				bt := g.batches[b]
				bt.opt.ZeroGrad()
				r, err := g.lossAndGrad(b, tc.aug)
				if err != nil {
					t.Fatal(err)
				}
				pre := "batch " + strconv.Itoa(b) + " "
				want := readFixture(t, "step_"+tc.name+"_loss"+strconv.Itoa(b)).Data
				assertClose(t, pre+"total loss", []float32{float32(r.total)}, want[0:1], 1e-4)
				assertClose(t, pre+"BN loss", []float32{float32(r.bn)}, want[1:2], 1e-4)
				assertClose(t, pre+"output loss", []float32{float32(r.output)}, want[2:3], 1e-4)
				assertClose(t, pre+"gradient", bt.x.Grad.Data, readFixture(t, "step_"+tc.name+"_grad"+strconv.Itoa(b)).Data, 1e-4)
				if err := bt.opt.Step(); err != nil {
					t.Fatal(err)
				}
				assertClose(t, pre+"images after step", bt.x.Value.Data, readFixture(t, "step_"+tc.name+"_after"+strconv.Itoa(b)).Data, 1e-4)
				st, err := g.measure(bt.x.Value)
				if err != nil {
					t.Fatal(err)
				}
				g.stats[b] = st
			}
		})
	}
}
