package layers

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/tensor"
)

// caseConfig is testdata/<case>/case.json, written by tools/torchref/layers.py.
type caseConfig struct {
	Kind     string   `json:"kind"`
	In       int      `json:"in"`
	Out      int      `json:"out"`
	Kernel   [2]int   `json:"kernel"`
	Stride   [2]int   `json:"stride"`
	Padding  [2]int   `json:"padding"`
	Dilation [2]int   `json:"dilation"`
	Groups   int      `json:"groups"`
	Bias     bool     `json:"bias"`
	Channels int      `json:"channels"`
	Eps      float32  `json:"eps"`
	P        float32  `json:"p"`
	Params   []string `json:"params"`
}

// build makes the module a case describes, with zero parameters.
func (c caseConfig) build(t *testing.T) Module {
	switch c.Kind {
	case "conv2d":
		m := &Conv2d{
			Weight: autograd.NewVar(tensor.New(c.Out, c.In/c.Groups, c.Kernel[0], c.Kernel[1]), false),
			Stride: c.Stride, Padding: c.Padding, Dilation: c.Dilation, Groups: c.Groups,
		}
		if c.Bias {
			m.Bias = autograd.NewVar(tensor.New(c.Out), false)
		}
		return m
	case "batchnorm2d":
		m := NewBatchNorm2d(c.Channels)
		m.Eps = c.Eps
		return m
	case "linear":
		return NewLinear(c.In, c.Out, c.Bias)
	case "relu":
		return &ReLU{}
	case "relu6":
		return &ReLU6{}
	case "maxpool2d":
		return &MaxPool2d{Kernel: c.Kernel, Stride: c.Stride, Padding: c.Padding}
	case "adaptiveavgpool2d":
		return &AdaptiveAvgPool2d{}
	case "flatten":
		return &Flatten{}
	case "dropout":
		return &Dropout{P: c.P}
	case "nested":
		return newNested()
	}
	t.Fatalf("unknown module kind %q", c.Kind)
	return nil
}

// newNested mirrors the nested Sequential of tools/torchref/layers.py.
func newNested() *Sequential {
	return NewSequential(
		NewConv2d(3, 4, 3, 1, 1, 1, false),
		NewBatchNorm2d(4),
		&ReLU6{},
		NewSequential(NewConv2d(4, 4, 3, 2, 1, 4, true), NewBatchNorm2d(4), &ReLU{}),
		NewMaxPool2d(2, 2, 0),
		&AdaptiveAvgPool2d{},
		&Flatten{},
		&Dropout{P: 0.1},
		NewLinear(4, 3, true),
	)
}

func readNPY(t *testing.T, path string) *tensor.Tensor {
	t.Helper()
	x, err := tensor.ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// assertClose checks got against PyTorch's want element by element:
// |got - want| <= max(1e-4 |want|, 1e-5) (docs/DESIGN.md, "Testing and numerics").
func assertClose(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if !slices.Equal(got.Shape, want.Shape) {
		t.Errorf("%s: shape %v, PyTorch %v", what, got.Shape, want.Shape)
		return
	}
	bad := 0
	for i, w := range want.Data {
		g := got.Data[i]
		tol := math.Max(1e-4*math.Abs(float64(w)), 1e-5)
		if d := math.Abs(float64(g) - float64(w)); !(d <= tol) {
			if bad < 3 {
				t.Errorf("%s[%d] = %g, PyTorch %g (diff %.3g > %.3g)", what, i, g, w, d, tol)
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values off", what, bad, len(want.Data))
	}
}

// TestAgainstPyTorch runs every case of testdata/ (written by
// tools/torchref/layers.py): forward output, input gradient and parameter
// gradients of loss = sum(y * dy).
func TestAgainstPyTorch(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/case.json")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata (%v)", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var cfg caseConfig
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			m := cfg.build(t)
			// The parameter files are named by PyTorch's state_dict keys, so
			// finding each of ours also checks the names.
			for _, e := range StateDict(m) {
				e.Tensor.CopyFrom(readNPY(t, filepath.Join(dir, "p_"+e.Name+".npy")))
			}
			var names []string
			for _, p := range NamedParameters(m) {
				names = append(names, p.Name)
			}
			if want := cfg.Params; !slices.Equal(names, want) && len(names)+len(want) > 0 {
				t.Fatalf("parameters %v, PyTorch %v", names, want)
			}
			SetRequiresGrad(m, true)
			x := autograd.NewVar(readNPY(t, filepath.Join(dir, "x.npy")), true)
			y := Apply(m, x)
			assertClose(t, "y", y.Value, readNPY(t, filepath.Join(dir, "y.npy")))
			// Gradients accumulate: start every buffer at a known offset
			// (as a second use of the same Var would) and take it off again.
			const offset = 0.5
			vars := []*autograd.Var{x}
			for _, p := range NamedParameters(m) {
				vars = append(vars, *p.Var)
			}
			for _, v := range vars {
				v.Grad = tensor.New(v.Shape()...)
				v.Grad.Fill(offset)
			}
			dy := autograd.Const(readNPY(t, filepath.Join(dir, "dy.npy")))
			if err := autograd.Sum(autograd.Mul(y, dy)).Backward(); err != nil {
				t.Fatal(err)
			}
			for _, v := range vars {
				for i := range v.Grad.Data {
					v.Grad.Data[i] -= offset
				}
			}
			assertClose(t, "dx", x.Grad, readNPY(t, filepath.Join(dir, "dx.npy")))
			for _, p := range NamedParameters(m) {
				assertClose(t, "d"+p.Name, (*p.Var).Grad, readNPY(t, filepath.Join(dir, "g_"+p.Name+".npy")))
			}
		})
	}
}

// TestStateDictNames compares the nested Sequential's keys with torch's
// (minus num_batches_tracked, which dghcore does not keep).
func TestStateDictNames(t *testing.T) {
	raw, err := os.ReadFile("testdata/nested/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var torchKeys []string
	if err := json.Unmarshal(raw, &torchKeys); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range torchKeys {
		if !strings.HasSuffix(k, ".num_batches_tracked") {
			want = append(want, k)
		}
	}
	var got []string
	for _, e := range StateDict(newNested()) {
		got = append(got, e.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("state dict keys\n got %v\nwant %v", got, want)
	}
}

func TestNamedModules(t *testing.T) {
	var got []string
	for _, nm := range NamedModules(newNested()) {
		got = append(got, nm.Name)
	}
	want := []string{"", "0", "1", "2", "3", "3.0", "3.1", "3.2", "4", "5", "6", "7", "8"}
	if !slices.Equal(got, want) {
		t.Errorf("NamedModules = %q, want %q", got, want)
	}
	m, ok := Find(newNested(), "3.1")
	if _, isBN := m.(*BatchNorm2d); !ok || !isBN {
		t.Errorf("Find(3.1) = %T, %v; want the inner BatchNorm2d", m, ok)
	}
	if _, ok := Find(newNested(), "3.9"); ok {
		t.Error("Find(3.9) found a module")
	}
}

// TestHooks checks that hooks see every call of the module they are on,
// nested at any depth, with the right input and output, in registration
// order, and stop after removal.
func TestHooks(t *testing.T) {
	net := newNested()
	inner := net.Modules[3].(*Sequential)
	bn := inner.Modules[1].(*BatchNorm2d)
	var log []string
	var seenIn, seenOut *autograd.Var
	removeA := bn.AddHook(func(m Module, in, out *autograd.Var) {
		if m != Module(bn) {
			t.Errorf("hook got module %T, want the BN it is on", m)
		}
		seenIn, seenOut = in, out
		log = append(log, "a")
	})
	bn.AddHook(func(Module, *autograd.Var, *autograd.Var) { log = append(log, "b") })
	var innerOut *autograd.Var
	removeSelf := func() {}
	removeSelf = inner.AddHook(func(_ Module, _, out *autograd.Var) {
		innerOut = out
		log = append(log, "inner")
		removeSelf() // a hook may remove itself while hooks run
	})
	x := autograd.Const(tensor.New(2, 3, 8, 8))
	x.Value.Fill(0.5)
	Apply(net, x)
	if want := []string{"a", "b", "inner"}; !slices.Equal(log, want) {
		t.Fatalf("hook calls %v, want %v", log, want)
	}
	if got := seenIn.Shape(); !slices.Equal(got, []int{2, 4, 4, 4}) {
		t.Errorf("BN hook input shape %v, want [2 4 4 4]", got)
	}
	// The BN's output is the ReLU's input: recompute both and compare.
	want := bn.Forward(seenIn)
	if !slices.Equal(seenOut.Value.Data, want.Value.Data) {
		t.Error("BN hook output differs from the BN of its input")
	}
	if innerOut == nil || !slices.Equal(innerOut.Shape(), []int{2, 4, 4, 4}) {
		t.Errorf("inner Sequential hook output %v", innerOut)
	}
	removeA()
	removeA()
	log = nil
	Apply(net, x)
	if want := []string{"b"}; !slices.Equal(log, want) {
		t.Errorf("after removal: hook calls %v, want %v", log, want)
	}
}

// TestInferenceRecordsNoTape: with parameters and input not requiring a
// gradient, no op in a forward pass may keep a graph.
func TestInferenceRecordsNoTape(t *testing.T) {
	net := newNested()
	for _, p := range Parameters(net) {
		if p.RequiresGrad() {
			t.Fatal("a fresh module's parameter requires a gradient")
		}
	}
	var leaked []string
	for _, nm := range NamedModules(net) {
		if h, ok := nm.Module.(Hookable); ok && nm.Name != "" {
			name := nm.Name
			h.AddHook(func(_ Module, _, out *autograd.Var) {
				if out.RequiresGrad() {
					leaked = append(leaked, name)
				}
			})
		}
	}
	y := Apply(net, autograd.Const(tensor.New(1, 3, 8, 8)))
	if y.RequiresGrad() || len(leaked) > 0 {
		t.Errorf("inference recorded a tape at %v", leaked)
	}
	SetRequiresGrad(net, true)
	for _, p := range NamedParameters(net) {
		if !(*p.Var).RequiresGrad() {
			t.Errorf("%s: SetRequiresGrad(true) left it off", p.Name)
		}
	}
	if !Apply(net, autograd.Const(tensor.New(1, 3, 8, 8))).RequiresGrad() {
		t.Error("output does not require a gradient with trainable parameters")
	}
}

func TestLoadStateDict(t *testing.T) {
	full := func() map[string]*tensor.Tensor {
		sd := map[string]*tensor.Tensor{}
		for _, e := range StateDict(newNested()) {
			c := e.Tensor.Clone()
			c.Fill(0.25)
			sd[e.Name] = c
		}
		// A float counter (torchload skips the usual int64 ones) is accepted too.
		sd["3.1.num_batches_tracked"] = tensor.New()
		return sd
	}
	tests := []struct {
		name string
		edit func(sd map[string]*tensor.Tensor)
		want []string // substrings of the error, one per offending key
	}{
		{"fits", func(map[string]*tensor.Tensor) {}, nil},
		{"missing", func(sd map[string]*tensor.Tensor) { delete(sd, "3.1.running_var"); delete(sd, "0.weight") },
			[]string{`missing key "0.weight", model shape [4 3 3 3]`, `missing key "3.1.running_var", model shape [4]`}},
		{"unexpected", func(sd map[string]*tensor.Tensor) { sd["0.bias"] = tensor.New(4); sd["9.weight"] = tensor.New(2, 2) },
			[]string{`unexpected key "0.bias", checkpoint shape [4]`, `unexpected key "9.weight", checkpoint shape [2 2]`}},
		{"stray counter", func(sd map[string]*tensor.Tensor) { sd["0.num_batches_tracked"] = tensor.New() },
			[]string{`unexpected key "0.num_batches_tracked"`}},
		{"mis-shaped", func(sd map[string]*tensor.Tensor) { sd["8.weight"] = tensor.New(3, 5) },
			[]string{`key "8.weight": checkpoint shape [3 5], model shape [3 4]`}},
		{"all three", func(sd map[string]*tensor.Tensor) {
			delete(sd, "8.bias")
			sd["extra"] = tensor.New(1)
			sd["1.weight"] = tensor.New(5)
		}, []string{"1 missing, 1 unexpected, 1 mis-shaped", `"8.bias"`, `"extra"`, `"1.weight"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := full()
			tc.edit(m)
			sd := &torchload.StateDict{Tensors: m}
			for k := range m {
				sd.Keys = append(sd.Keys, k)
			}
			slices.Sort(sd.Keys)
			net := newNested()
			err := LoadStateDict(net, sd)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range StateDict(net) {
					if e.Tensor.Data[0] != 0.25 {
						t.Fatalf("%s not loaded", e.Name)
					}
				}
				return
			}
			var me *torchload.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T), want a *torchload.MismatchError", err, err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if w := net.Modules[0].(*Conv2d).Weight.Value.Data[0]; w != 0 {
				t.Errorf("a failed load changed the model (weight %g)", w)
			}
		})
	}
}
