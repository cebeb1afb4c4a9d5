package zoo

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/tensor"
)

func gunzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

func loadFixture(t testing.TB, file string) *torchload.StateDict {
	t.Helper()
	sd, err := torchload.LoadBytes(gunzip(t, filepath.Join("testdata", file)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return sd
}

func readNPY(t testing.TB, file string) *tensor.Tensor {
	t.Helper()
	var r io.Reader
	if filepath.Ext(file) == ".gz" {
		r = bytes.NewReader(gunzip(t, filepath.Join("testdata", file)))
	} else {
		f, err := os.Open(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r = f
	}
	x, err := tensor.ReadNPYFrom(r)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return x
}

// TestLogitsAgainstPyTorch loads every fixture of tools/torchref/zoo.py in
// both serialisations and compares the logits with PyTorch's within 1e-3
// of their scale (docs/DESIGN.md, "Testing and numerics").
func TestLogitsAgainstPyTorch(t *testing.T) {
	tests := []struct {
		fixture, arch string
		inputSize     int
	}{
		{"resnet18", "resnet18", 224},
		{"resnet50", "resnet50", 224},
		{"mobilenet_v2", "mobilenet_v2", 224},
		{"resnet20_fmnist", "resnet20", 28},
		{"resnet20_cifar", "resnet20", 32},
	}
	for _, tc := range tests {
		x := readNPY(t, tc.fixture+"_x.npy.gz")
		want := readNPY(t, tc.fixture+"_logits.npy")
		for _, ser := range []string{"zip", "legacy"} {
			t.Run(tc.fixture+"/"+ser, func(t *testing.T) {
				m, err := Build(tc.arch, loadFixture(t, tc.fixture+"."+ser+".pth.gz"))
				if err != nil {
					t.Fatal(err)
				}
				if m.Spec.InputSize != tc.inputSize || len(m.Spec.Mean) != x.Shape[1] || len(m.Spec.Std) != x.Shape[1] {
					t.Errorf("spec %+v for %d-channel input, want size %d", m.Spec, x.Shape[1], tc.inputSize)
				}
				got := m.Logits(x)
				if !slices.Equal(got.Shape, want.Shape) {
					t.Fatalf("logits shape %v, PyTorch %v", got.Shape, want.Shape)
				}
				var scale, worst float64
				for i, w := range want.Data {
					scale = math.Max(scale, math.Abs(float64(w)))
					worst = math.Max(worst, math.Abs(float64(got.Data[i]-w)))
				}
				t.Logf("max |logit - PyTorch| = %.3g (scale %.3g)", worst, scale)
				if !(worst <= 1e-3*scale) {
					t.Errorf("max |logit - PyTorch| = %.3g, more than 1e-3 of the scale %.3g", worst, scale)
				}
			})
		}
	}
}

// TestWrongArchitecture: a checkpoint of another architecture is refused
// with an error that names the offending keys.
func TestWrongArchitecture(t *testing.T) {
	r20 := loadFixture(t, "resnet20_cifar.zip.pth.gz")
	r18 := loadFixture(t, "resnet18.zip.pth.gz")
	tests := []struct {
		arch string
		sd   *torchload.StateDict
		keys []string // some of the keys the error must name
	}{
		{"resnet18", r20, []string{"conv1.weight", "layer4.1.bn2.running_var", "layer3.2.conv1.weight", "fc.weight"}},
		{"resnet50", r18, []string{"layer1.0.conv3.weight", "layer1.0.conv1.weight", "layer4.2.bn3.weight"}},
		{"mobilenet_v2", r18, []string{"features.0.0.weight", "conv1.weight", "classifier.1.weight"}},
		{"resnet20", r18, []string{"conv1.weight", "layer4.0.conv1.weight"}},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			_, err := Build(tc.arch, tc.sd)
			var me *torchload.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Build: %v, want a *torchload.MismatchError", err)
			}
			for _, k := range tc.keys {
				if !strings.Contains(err.Error(), strconv.Quote(k)) {
					t.Errorf("error does not name %s", k)
				}
			}
		})
	}
	if _, err := Build("vgg16", r18); err == nil {
		t.Error("Build accepted an unknown architecture")
	}
}

// TestSpecs checks each architecture's LastBN is its last BatchNorm2d in
// definition order, and the output sizes of fresh models.
func TestSpecs(t *testing.T) {
	tests := []struct {
		name          string
		in, size, cls int
		lastBN        string
		factor        float32
	}{
		{"mobilenet_v2", 3, 224, 1000, "features.18.1", 3e-5},
		{"resnet18", 3, 224, 1000, "layer4.1.bn2", 3e-7},
		{"resnet20", 1, 28, 10, "layer3.2.bn2", 3e-7},
		{"resnet50", 3, 224, 1000, "layer4.2.bn3", 1e-7},
	}
	var names []string
	for _, tc := range tests {
		names = append(names, tc.name)
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.name, tc.in, tc.cls)
			if err != nil {
				t.Fatal(err)
			}
			if m.Spec.LastBN != tc.lastBN || m.Spec.OutputLossFactor != tc.factor || m.Spec.InputSize != tc.size {
				t.Errorf("spec %+v", m.Spec)
			}
			var last string
			for _, nm := range layers.NamedModules(m.Net) {
				if _, ok := nm.Module.(*layers.BatchNorm2d); ok {
					last = nm.Name
				}
			}
			if last != m.Spec.LastBN {
				t.Errorf("last BatchNorm2d is %s, spec says %s", last, m.Spec.LastBN)
			}
		})
	}
	if got := Names(); !slices.Equal(got, names) {
		t.Errorf("Names() = %v, want %v", got, names)
	}
}

// TestBNHooksByIdentity: a hook on every BatchNorm2d fires exactly once
// per forward pass, downsample branches included, which is how DGH
// records BN inputs by layer.
func TestBNHooksByIdentity(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			m, err := New(name, 3, 7)
			if err != nil {
				t.Fatal(err)
			}
			calls := map[layers.Module]int{}
			bns := 0
			for _, nm := range layers.NamedModules(m) {
				if bn, ok := nm.Module.(*layers.BatchNorm2d); ok {
					bns++
					bn.AddHook(func(mod layers.Module, in, _ *autograd.Var) {
						if in.Shape()[1] != bn.RunningMean.Numel() {
							t.Errorf("%s: hook input %v", nm.Name, in.Shape())
						}
						calls[mod]++
					})
				}
			}
			// A block type of this package (embedding layers.Hooks) runs its
			// hooks too: BRECQ captures a unit's input and output this way.
			blockName := map[string]string{"mobilenet_v2": "features.1"}[name]
			if blockName == "" {
				blockName = "layer1.0"
			}
			block, ok := layers.Find(m, blockName)
			if !ok {
				t.Fatalf("no module %s", blockName)
			}
			blockCalls := 0
			block.(layers.Hookable).AddHook(func(layers.Module, *autograd.Var, *autograd.Var) { blockCalls++ })
			out := m.Forward(autograd.Const(tensor.New(2, 3, 32, 32)))
			if blockCalls != 1 {
				t.Errorf("%s (%T) hook fired %d times", blockName, block, blockCalls)
			}
			if !slices.Equal(out.Shape(), []int{2, 7}) {
				t.Errorf("logits shape %v, want [2 7]", out.Shape())
			}
			if out.RequiresGrad() {
				t.Error("inference recorded a tape")
			}
			if len(calls) != bns {
				t.Errorf("%d of %d BatchNorm2d hooks fired", len(calls), bns)
			}
			for mod, n := range calls {
				if n != 1 {
					t.Errorf("%T hook fired %d times", mod, n)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resnet20.pth")
	if err := os.WriteFile(path, gunzip(t, filepath.Join("testdata", "resnet20_fmnist.legacy.pth.gz")), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load("resnet20", path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "resnet20" || m.Spec.InputSize != 28 || m.Spec.Mean[0] != 0.2860 {
		t.Errorf("model %s, spec %+v", m.Name, m.Spec)
	}
	for _, tc := range []struct{ name, path string }{
		{"resnet21", path},
		{"resnet20", filepath.Join(t.TempDir(), "absent.pth")},
		{"resnet20", "testdata/resnet20_fmnist_logits.npy"},
	} {
		if _, err := Load(tc.name, tc.path); err == nil {
			t.Errorf("Load(%s, %s) succeeded", tc.name, tc.path)
		}
	}
}

// TestInputGradientAgainstPyTorch: the gradient of sum(logits * dlogits)
// with respect to the images, parameters frozen, the path DGH's image
// updates take through a whole network.
func TestInputGradientAgainstPyTorch(t *testing.T) {
	for _, fixture := range []string{"resnet20_fmnist", "resnet20_cifar"} {
		t.Run(fixture, func(t *testing.T) {
			m, err := Build("resnet20", loadFixture(t, fixture+".zip.pth.gz"))
			if err != nil {
				t.Fatal(err)
			}
			x := autograd.NewVar(readNPY(t, fixture+"_gx.npy.gz"), true)
			dlogits := autograd.Const(readNPY(t, fixture+"_dlogits.npy"))
			if err := autograd.Sum(autograd.Mul(m.Forward(x), dlogits)).Backward(); err != nil {
				t.Fatal(err)
			}
			for _, p := range layers.Parameters(m) {
				if p.Grad != nil {
					t.Fatal("a frozen parameter received a gradient")
				}
			}
			want := readNPY(t, fixture+"_dx.npy.gz")
			var scale, worst float64
			for i, w := range want.Data {
				scale = math.Max(scale, math.Abs(float64(w)))
				worst = math.Max(worst, math.Abs(float64(x.Grad.Data[i]-w)))
			}
			t.Logf("max |dx - PyTorch| = %.3g (scale %.3g)", worst, scale)
			if !(worst <= 1e-3*scale) {
				t.Errorf("max |dx - PyTorch| = %.3g, more than 1e-3 of the scale %.3g", worst, scale)
			}
		})
	}
}

// TestInferenceReuseKeepsHookedValues: the fused, buffer-reusing inference
// path gives the logits of the plain module-by-module pass, and a value a
// block hook holds on to is neither recycled nor overwritten by the rest
// of the pass (BRECQ keeps a unit's input and output this way).
func TestInferenceReuseKeepsHookedValues(t *testing.T) {
	for _, name := range []string{"mobilenet_v2", "resnet18"} {
		t.Run(name, func(t *testing.T) {
			m, err := New(name, 3, 7)
			if err != nil {
				t.Fatal(err)
			}
			randomize(m.Net, 3)
			x := tensor.New(2, 3, 32, 32)
			for i := range x.Data {
				x.Data[i] = float32(i%17) / 8
			}
			in := autograd.Const(x)
			want := slices.Clone(m.Forward(in).Value.Data)
			if got := m.Forward(in).Value.Data; !slices.Equal(got, want) {
				t.Fatal("a second pass gave other logits")
			}
			blockName := map[string]string{"mobilenet_v2": "features.3"}[name]
			if blockName == "" {
				blockName = "layer2.0"
			}
			block, _ := layers.Find(m, blockName)
			var keptIn, keptOut *autograd.Var
			var inCopy, outCopy []float32
			remove := block.(layers.Hookable).AddHook(func(_ layers.Module, in, out *autograd.Var) {
				keptIn, keptOut = in, out
				inCopy, outCopy = slices.Clone(in.Value.Data), slices.Clone(out.Value.Data)
			})
			got := m.Forward(in).Value.Data
			if !slices.Equal(got, want) {
				t.Error("hooked pass gave other logits")
			}
			// Another pass may reuse every recyclable buffer.
			remove()
			m.Forward(in)
			if !slices.Equal(keptIn.Value.Data, inCopy) || !slices.Equal(keptOut.Value.Data, outCopy) {
				t.Error("a value held by a block hook was overwritten")
			}
			if !slices.Equal(x.Data[:17], []float32{0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1, 1.125, 1.25, 1.375, 1.5, 1.625, 1.75, 1.875, 2}) {
				t.Error("the input was overwritten")
			}
		})
	}
}
