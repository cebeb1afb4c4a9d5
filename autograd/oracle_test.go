package autograd

// Comparison with PyTorch (docs/DESIGN.md, "Testing and numerics"): testdata/<case>/ holds inputs,
// an upstream gradient dy, PyTorch's output y and the gradients d<input>
// of sum(y*dy), written by tools/torchref/ops.py.

import (
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// Agreement with PyTorch: relative 1e-4 with an absolute floor of 1e-5.
const (
	torchRelTol = 1e-4
	torchAbsTol = 1e-5
)

type oracleCase struct {
	name   string
	inputs []string // .npy names passed to f in order; gradients where d<name>.npy exists
	consts []string // .npy names read as plain tensors
	f      func(in []*Var, c map[string]*tensor.Tensor) *Var
}

func convCase(name string, stride, pad, dil, groups int, bias bool) oracleCase {
	in := []string{"x", "w"}
	if bias {
		in = append(in, "b")
	}
	return oracleCase{name: name, inputs: in, f: func(v []*Var, _ map[string]*tensor.Tensor) *Var {
		var b *Var
		if bias {
			b = v[2]
		}
		return Conv2d(v[0], v[1], b, [2]int{stride, stride}, [2]int{pad, pad}, [2]int{dil, dil}, groups)
	}}
}

func oneInput(name string, f func(*Var) *Var) oracleCase {
	return oracleCase{name: name, inputs: []string{"x"}, f: func(v []*Var, _ map[string]*tensor.Tensor) *Var { return f(v[0]) }}
}

func twoInputs(name, a, b string, f func(a, b *Var) *Var) oracleCase {
	return oracleCase{name: name, inputs: []string{a, b}, f: func(v []*Var, _ map[string]*tensor.Tensor) *Var { return f(v[0], v[1]) }}
}

func oracleCases() []oracleCase {
	return []oracleCase{
		convCase("conv_3x3", 1, 1, 1, 1, true),
		convCase("conv_3x3_s2_nonsquare_b5", 2, 1, 1, 1, false),
		convCase("conv_depthwise", 1, 1, 1, 8, true),
		convCase("conv_depthwise_s2", 2, 1, 1, 6, false),
		convCase("conv_groups2", 1, 0, 1, 2, true),
		convCase("conv_1x1", 1, 0, 1, 1, false),
		convCase("conv_1x1_s2", 2, 0, 1, 1, false),
		convCase("conv_7x7_s2_stem", 2, 3, 1, 1, false),
		convCase("conv_dilation2", 1, 2, 2, 1, true),
		convCase("conv_5x5_p2_s2", 2, 2, 1, 1, true),
		{name: "linear", inputs: []string{"x", "w", "b"}, f: func(v []*Var, _ map[string]*tensor.Tensor) *Var { return Linear(v[0], v[1], v[2]) }},
		{name: "linear_nobias_b1", inputs: []string{"x", "w"}, f: func(v []*Var, _ map[string]*tensor.Tensor) *Var { return Linear(v[0], v[1], nil) }},
		{name: "batchnorm", inputs: []string{"x", "gamma", "beta"}, consts: []string{"rm", "rv"},
			f: func(v []*Var, c map[string]*tensor.Tensor) *Var {
				return BatchNorm(v[0], c["rm"], c["rv"], v[1], v[2], 1e-5)
			}},
		oneInput("relu", ReLU),
		oneInput("relu6", ReLU6),
		twoInputs("add", "a", "b", Add),
		twoInputs("sub", "a", "b", Sub),
		twoInputs("mul", "a", "b", Mul),
		oneInput("scale", func(x *Var) *Var { return Scale(x, 0.37) }),
		oneInput("add_scalar", func(x *Var) *Var { return AddScalar(x, 1.25) }),
		oneInput("max_scalar", func(x *Var) *Var { return MaxScalar(x, 0.2) }),
		oneInput("sqrt", Sqrt),
		oneInput("pow", func(x *Var) *Var { return Pow(x, 2.4) }),
		oneInput("sum", Sum),
		oneInput("sum_squares", SumSquares),
		oneInput("mean_0_2_3", func(x *Var) *Var { return Mean(x, 0, 2, 3) }),
		oneInput("mean_2_3", func(x *Var) *Var { return Mean(x, 2, 3) }),
		oneInput("mean_square_0_2_3", func(x *Var) *Var { return MeanSquare(x, 0, 2, 3) }),
		oneInput("std_2_3_unbiased", func(x *Var) *Var { return Std(x, []int{2, 3}, true) }),
		oneInput("std_1_biased", func(x *Var) *Var { return Std(x, []int{1}, false) }),
		oneInput("max_1", func(x *Var) *Var { return Max(x, 1) }),
		oneInput("min_1", func(x *Var) *Var { return Min(x, 1) }),
		oneInput("max_0_inner", func(x *Var) *Var { return Max(x, 0) }),
		twoInputs("lp_loss_2.4", "pred", "target", func(a, b *Var) *Var { return LpLoss(a, b, 2.4) }),
		twoInputs("lp_loss_2_linear", "pred", "target", func(a, b *Var) *Var { return LpLoss(a, b, 2) }),
		oneInput("global_avg_pool", GlobalAvgPool),
		oneInput("maxpool_3x3_s2_p1", func(x *Var) *Var { return MaxPool2d(x, [2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1}) }),
		oneInput("maxpool_2x2", func(x *Var) *Var { return MaxPool2d(x, [2]int{2, 2}, [2]int{2, 2}, [2]int{0, 0}) }),
		oneInput("flatten", Flatten),
		oneInput("flip_w", FlipW),
		oneInput("crop", func(x *Var) *Var { return Crop(x, 2, 1, 4, 3) }),
		oneInput("pad", func(x *Var) *Var { return Pad(x, 1, 3, 2, 1) }),
		oneInput("clamp_st", func(x *Var) *Var { return ClampST(x, []float32{-1, -0.5, 0}, []float32{1, 0.5, 2}) }),
		twoInputs("fake_quant", "x", "delta", func(x, d *Var) *Var { return FakeQuant(x, d, 3, 4) }),
		{name: "fake_quant_per_channel", inputs: []string{"x"}, consts: []string{"delta", "zp"},
			f: func(v []*Var, c map[string]*tensor.Tensor) *Var {
				return FakeQuantPerChannel(v[0], c["delta"].Data, c["zp"].Data, 4)
			}},
		{name: "ada_round", inputs: []string{"alpha"}, consts: []string{"w", "delta", "zp"},
			f: func(v []*Var, c map[string]*tensor.Tensor) *Var {
				return AdaRound(c["w"], v[0], c["delta"].Data, c["zp"].Data, 3)
			}},
		oneInputNamed("ada_round_regularizer", "alpha", func(a *Var) *Var { return AdaRoundRegularizer(a, 4, 0.01) }),
	}
}

func oneInputNamed(name, input string, f func(*Var) *Var) oracleCase {
	c := oneInput(name, f)
	c.inputs = []string{input}
	return c
}

func TestAgainstPyTorch(t *testing.T) {
	cases := oracleCases()
	dirs, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(cases) {
		t.Errorf("%d fixture folders, %d cases: every fixture needs a case and back", len(dirs), len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join("testdata", c.name)
			load := func(name string) *tensor.Tensor {
				x, err := tensor.ReadNPY(filepath.Join(dir, name+".npy"))
				if err != nil {
					t.Fatal(err)
				}
				return x
			}
			vars := make([]*Var, len(c.inputs))
			wantGrad := make([]*tensor.Tensor, len(c.inputs))
			for i, name := range c.inputs {
				g, err := tensor.ReadNPY(filepath.Join(dir, "d"+name+".npy"))
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
				wantGrad[i] = g
				vars[i] = NewVar(load(name), g != nil)
			}
			consts := map[string]*tensor.Tensor{}
			for _, name := range c.consts {
				consts[name] = load(name)
			}
			y := c.f(vars, consts)
			compare(t, "y", y.Value, load("y"))
			if err := Sum(Mul(y, Const(load("dy")))).Backward(); err != nil {
				t.Fatal(err)
			}
			for i, name := range c.inputs {
				if wantGrad[i] == nil {
					continue
				}
				if vars[i].Grad == nil {
					t.Errorf("d%s: no gradient", name)
					continue
				}
				compare(t, "d"+name, vars[i].Grad, wantGrad[i])
			}
		})
	}
}

// compare checks got against PyTorch's want element by element, reporting
// the first few misses.
func compare(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if !tensor.SameShape(got, want) {
		t.Errorf("%s: shape %v, PyTorch %v", what, got.Shape, want.Shape)
		return
	}
	bad := 0
	for i, w := range want.Data {
		g := got.Data[i]
		if d := math.Abs(float64(g) - float64(w)); !(d <= torchAbsTol+torchRelTol*math.Abs(float64(w))) {
			if bad < 3 {
				t.Errorf("%s[%d] = %.7g, PyTorch %.7g", what, i, g, w)
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values differ", what, bad, want.Numel())
	}
}
