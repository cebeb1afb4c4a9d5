package zoo

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
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
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, err = inflate(data); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// inflate decompresses one gzip member into a buffer sized by its
// trailer (the size mod 2^32), sparing io.ReadAll's regrowth of the
// hundreds of megabytes the largest fixtures hold.
func inflate(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var size int
	if n := len(data); n >= 4 {
		size = int(binary.LittleEndian.Uint32(data[n-4:]))
	}
	out := make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(zr) // empty unless the size wrapped
	if err != nil {
		return nil, err
	}
	return append(out, rest...), nil
}

func loadFixture(t testing.TB, file string) *torchload.StateDict {
	t.Helper()
	data := gunzip(t, filepath.Join("testdata", file))
	if strings.HasSuffix(file, ".gz.gz") { // the compact fixtures: gzip twice
		var err error
		if data, err = inflate(data); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	sd, err := torchload.LoadBytes(data)
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

// fixture is a checkpoint of tools/torchref/zoo.py with its input and
// PyTorch's logits.
type fixture struct {
	name, arch string
	layout     Layout
	inputSize  int
	compact    bool // gzip twice, input compact_x (the architectures added in issue 18)
}

func (f fixture) checkpoint(ser string) string {
	if f.compact {
		return f.name + "." + ser + ".pth.gz.gz"
	}
	return f.name + "." + ser + ".pth.gz"
}

func (f fixture) input() string {
	if f.compact {
		return "compact_x.npy.gz"
	}
	return f.name + "_x.npy.gz"
}

var fixtures = []fixture{
	{"resnet18", "resnet18", LayoutTorchvision, 224, false},
	{"resnet50", "resnet50", LayoutTorchvision, 224, false},
	{"mobilenet_v2", "mobilenet_v2", LayoutBRECQ, 224, false},
	{"resnet20_fmnist", "resnet20", LayoutTorchvision, 28, false},
	{"resnet20_cifar", "resnet20", LayoutTorchvision, 32, false},
	{"resnet34", "resnet34", LayoutTorchvision, 224, true},
	{"resnet101", "resnet101", LayoutTorchvision, 224, true},
	{"resnet152", "resnet152", LayoutTorchvision, 224, true},
	{"wide_resnet50_2", "wide_resnet50_2", LayoutTorchvision, 224, true},
	{"resnext50_32x4d", "resnext50_32x4d", LayoutTorchvision, 224, true},
	{"mobilenet_v2_torchvision", "mobilenet_v2", LayoutTorchvision, 224, true},
	{"mnasnet", "mnasnet", LayoutTorchvision, 224, true},
	{"mnasnet1_0", "mnasnet", LayoutTorchvision, 224, true},
	{"regnetx_600m", "regnetx_600m", LayoutBRECQ, 224, true},
	{"regnetx_3200m", "regnetx_3200m", LayoutBRECQ, 224, true},
}

// TestLogitsAgainstPyTorch loads every fixture of tools/torchref/zoo.py in
// both serialisations, recognises its architecture from the keys and
// shapes alone, and compares the logits with PyTorch's within 1e-3 of
// their scale (docs/DESIGN.md, "Testing and numerics").
func TestLogitsAgainstPyTorch(t *testing.T) {
	for _, f := range fixtures {
		x := readNPY(t, f.input())
		want := readNPY(t, f.name+"_logits.npy")
		for _, ser := range []string{"zip", "legacy"} {
			t.Run(f.name+"/"+ser, func(t *testing.T) {
				m, err := Recognize(loadFixture(t, f.checkpoint(ser)))
				if err != nil {
					t.Fatal(err)
				}
				if m.Name != f.arch || m.Layout != f.layout {
					t.Fatalf("recognised %s (%s layout), want %s (%s)", m.Name, m.Layout, f.arch, f.layout)
				}
				if m.Spec.InputSize != f.inputSize || len(m.Spec.Mean) != x.Shape[1] || len(m.Spec.Std) != x.Shape[1] {
					t.Errorf("spec %+v for %d-channel input, want size %d", m.Spec, x.Shape[1], f.inputSize)
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

// TestSpecs checks each architecture at its published widths: the
// parameter count PyTorch gives the same network (torchvision's
// definitions, tools/torchref/zoo.py's RegNetX and resnet20), its LastBN
// being its last BatchNorm2d in definition order, and the per-model
// constants.
func TestSpecs(t *testing.T) {
	tests := []struct {
		name          string
		in, size, cls int
		params        int
		lastBN        string
		factor        float32
		weight        float64
	}{
		{"mnasnet", 3, 224, 1000, 12469944, "layers.15", 3e-5, 0.2},
		{"mobilenet_v2", 3, 224, 1000, 3504872, "features.18.1", 3e-5, 0.1},
		{"regnetx_3200m", 3, 224, 1000, 15296552, "s4.b2.f.c_bn", 1e-7, 0.01},
		{"regnetx_600m", 3, 224, 1000, 6196040, "s4.b7.f.c_bn", 1e-7, 0.01},
		{"resnet101", 3, 224, 1000, 44549160, "layer4.2.bn3", 1e-7, 0.01},
		{"resnet152", 3, 224, 1000, 60192808, "layer4.2.bn3", 1e-7, 0.01},
		{"resnet18", 3, 224, 1000, 11689512, "layer4.1.bn2", 3e-7, 0.01},
		{"resnet20", 1, 28, 10, 272186, "layer3.2.bn2", 3e-7, 0.01},
		{"resnet34", 3, 224, 1000, 21797672, "layer4.2.bn2", 3e-7, 0.01},
		{"resnet50", 3, 224, 1000, 25557032, "layer4.2.bn3", 1e-7, 0.01},
		{"resnext50_32x4d", 3, 224, 1000, 25028904, "layer4.2.bn3", 1e-7, 0.01},
		{"wide_resnet50_2", 3, 224, 1000, 68883240, "layer4.2.bn3", 1e-7, 0.01},
	}
	var names []string
	for _, tc := range tests {
		names = append(names, tc.name)
		for _, layout := range Layouts(tc.name) {
			t.Run(tc.name+"/"+string(layout), func(t *testing.T) {
				m, err := NewNarrow(tc.name, layout, tc.in, tc.cls, 1)
				if err != nil {
					t.Fatal(err)
				}
				if m.Spec.LastBN != tc.lastBN || m.Spec.OutputLossFactor != tc.factor || m.Spec.RoundingWeight != tc.weight ||
					m.Spec.InputSize != tc.size || m.Layout != layout {
					t.Errorf("spec %+v, layout %s", m.Spec, m.Layout)
				}
				var last string
				params := 0
				for _, nm := range layers.NamedModules(m.Net) {
					if _, ok := nm.Module.(*layers.BatchNorm2d); ok {
						last = nm.Name
					}
				}
				for _, p := range layers.Parameters(m.Net) {
					params += p.Value.Numel()
				}
				if last != tc.lastBN {
					t.Errorf("last BatchNorm2d is %s, want %s", last, tc.lastBN)
				}
				if params != tc.params {
					t.Errorf("%d parameters, PyTorch's %s has %d", params, tc.name, tc.params)
				}
			})
		}
	}
	if got := Names(); !slices.Equal(got, names) {
		t.Errorf("Names() = %v, want %v", got, names)
	}
	if got := Layouts("mobilenet_v2"); !slices.Equal(got, []Layout{LayoutBRECQ, LayoutTorchvision}) {
		t.Errorf("mobilenet_v2 layouts %v, want BRECQ's first, then torchvision's", got)
	}
}

// firstBlock is the dotted name of an architecture's first block.
func firstBlock(name string) string {
	switch name {
	case "mobilenet_v2":
		return "features.1"
	case "mnasnet":
		return "layers.8.0"
	case "regnetx_600m", "regnetx_3200m":
		return "s1.b1"
	}
	return "layer1.0"
}

// TestBNHooksByIdentity: a hook on every BatchNorm2d fires exactly once
// per forward pass, downsample branches included, which is how DGH
// records BN inputs by layer.
func TestBNHooksByIdentity(t *testing.T) {
	for _, name := range Names() {
		for _, layout := range Layouts(name) {
			t.Run(name+"/"+string(layout), func(t *testing.T) {
				m, err := NewNarrow(name, layout, 3, 7, 4)
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
				blockName := firstBlock(name)
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
	for _, tc := range []struct {
		name  string
		block string // a block whose input or output another block updates in place
	}{
		{"mobilenet_v2", "features.3"}, {"resnet18", "layer2.0"}, {"mnasnet", "layers.9.1"}, {"regnetx_600m", "s2.b2"},
	} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			m, err := NewNarrow(name, "", 3, 7, 4)
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
			block, _ := layers.Find(m, tc.block)
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
