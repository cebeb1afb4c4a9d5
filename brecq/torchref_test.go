package brecq

// Comparisons with PyTorch fixtures written by tools/torchref/brecq.py.

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

func fixture(t *testing.T, name string) *tensor.Tensor {
	t.Helper()
	x, err := tensor.ReadNPY(filepath.Join("testdata", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// assertClose checks got against PyTorch's want element by element:
// |got - want| <= max(1e-4 |want|, 1e-5) (docs/DESIGN.md, "Testing and numerics").
func assertClose(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, PyTorch %d", what, len(got), len(want))
		return
	}
	bad := 0
	for i, w := range want {
		g := got[i]
		tol := math.Max(1e-4*math.Abs(float64(w)), 1e-5)
		if d := math.Abs(float64(g) - float64(w)); !(d <= tol) {
			if bad < 3 {
				t.Errorf("%s[%d] = %g, PyTorch %g (diff %.3g > %.3g)", what, i, g, w, d, tol)
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values off", what, bad, len(want))
	}
}

// onEveryPath runs check once per kernel path this machine has (docs/DESIGN.md,
// "Testing and numerics": every path passes the same tests), restoring the active one.
func onEveryPath(t *testing.T, check func(t *testing.T)) {
	active := kernels.Active()
	defer func() {
		if err := kernels.Use(active); err != nil {
			t.Fatal(err)
		}
	}()
	for _, p := range kernels.Available() {
		if err := kernels.Use(p); err != nil {
			t.Fatal(err)
		}
		t.Run(string(p), check)
	}
}

func TestFoldBNMatchesTorch(t *testing.T) {
	conv := layers.NewConv2d(4, 6, 3, 1, 0, 1, true)
	conv.Weight.Value.CopyFrom(fixture(t, "fold_conv_weight"))
	conv.Bias.Value.CopyFrom(fixture(t, "fold_conv_bias"))
	bn := layers.NewBatchNorm2d(6)
	bn.Weight.Value.CopyFrom(fixture(t, "fold_bn_weight"))
	bn.Bias.Value.CopyFrom(fixture(t, "fold_bn_bias"))
	bn.RunningMean.CopyFrom(fixture(t, "fold_bn_running_mean"))
	bn.RunningVar.CopyFrom(fixture(t, "fold_bn_running_var"))
	for _, tc := range []struct {
		name string
		bias bool
	}{{"fold_b_bias", true}, {"fold_b_nobias", false}} {
		c := *conv
		if !tc.bias {
			c.Bias = nil
		}
		w, b, err := FoldBN(&c, bn)
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, tc.name+" weight", w.Data, fixture(t, "fold_w").Data)
		assertClose(t, tc.name, b.Data, fixture(t, tc.name).Data)
	}
	if _, _, err := FoldBN(conv, layers.NewBatchNorm2d(5)); err == nil {
		t.Error("FoldBN accepted a BN of 5 channels for a conv of 6")
	}
}

func TestScaleSearchMatchesTorch(t *testing.T) {
	onEveryPath(t, func(t *testing.T) {
		for _, bits := range []int{2, 4, 8} {
			for _, tag := range []string{"t", "s"} {
				x := fixture(t, "search_"+tag+"_x")
				want := fixture(t, fmt.Sprintf("search_%s_b%d", tag, bits))
				d, z, err := ScaleSearch(x.Data, bits)
				if err != nil {
					t.Fatal(err)
				}
				assertClose(t, fmt.Sprintf("per-tensor %s %d bits [delta zp]", tag, bits), []float32{d, z}, want.Data)
			}
			x := fixture(t, "search_c_x")
			want := fixture(t, fmt.Sprintf("search_c_b%d", bits))
			d, z, err := ScaleSearchPerChannel(x.Data, x.Shape[0], bits)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, 0, 2*len(d))
			for r := range d {
				got = append(got, d[r], z[r])
			}
			assertClose(t, fmt.Sprintf("per-channel %d bits [delta zp]", bits), got, want.Data)
		}
	})
}

func TestScaleSearchRejectsBits(t *testing.T) {
	for _, bits := range []int{0, 1, 9, 16} {
		if _, _, err := ScaleSearch([]float32{1, 2}, bits); err == nil {
			t.Errorf("ScaleSearch accepted %d bits", bits)
		}
		if _, _, err := ScaleSearchPerChannel([]float32{1, 2}, 1, bits); err == nil {
			t.Errorf("ScaleSearchPerChannel accepted %d bits", bits)
		}
	}
}

func TestAdaRoundMatchesTorch(t *testing.T) {
	onEveryPath(t, func(t *testing.T) {
		w := fixture(t, "ada_w")
		q := WeightQuantizer{Bits: 4, Delta: fixture(t, "ada_delta").Data, ZP: fixture(t, "ada_zp").Data}
		q.startAdaRound(w)
		assertClose(t, "initial alpha", q.Alpha.Value.Data, fixture(t, "ada_alpha0").Data)
		h := make([]float32, w.Numel())
		for i, a := range q.Alpha.Value.Data {
			s := 1 / (1 + math.Exp(-float64(a)))
			h[i] = float32(min(max(s*1.2-0.1, 0), 1))
		}
		assertClose(t, "initial soft targets", h, fixture(t, "ada_h0").Data)
		assertClose(t, "initial soft weights", q.quantize(w).Value.Data, fixture(t, "ada_soft0").Data)

		alpha := fixture(t, "ada_alpha")
		q.Alpha.Value.CopyFrom(alpha)
		assertClose(t, "soft weights", q.quantize(w).Value.Data, fixture(t, "ada_soft").Data)
		q.Soft = false
		assertClose(t, "hard weights", q.quantize(w).Value.Data, fixture(t, "ada_hard").Data)

		for _, beta := range []float32{20, 7.5, 2} {
			grad := make([]float32, alpha.Numel())
			reg := kernels.AdaRoundRegularizer(alpha.Data, beta, grad, 0.01)
			name := fmt.Sprintf("ada_reg_b%g", beta)
			assertClose(t, name, []float32{reg}, fixture(t, name).Data)
			assertClose(t, name+" gradient", grad, fixture(t, "ada_reg_grad_b"+fmt.Sprint(beta)).Data)
		}
	})
}

func TestTemperatureMatchesTorch(t *testing.T) {
	want := fixture(t, "temp")
	for r := range want.Shape[0] {
		row := want.Data[3*r : 3*r+3]
		beta, active := Temperature(int(row[0]), 50, 0.2, 20, 2)
		assertClose(t, fmt.Sprintf("beta at step %v", row[0]), []float32{float32(beta)}, row[1:2])
		if active != (row[2] == 1) {
			t.Errorf("step %v: rounding term active %t, PyTorch %v", row[0], active, row[2])
		}
	}
}

func TestLSQGradientMatchesTorch(t *testing.T) {
	onEveryPath(t, func(t *testing.T) {
		x := autograd.NewVar(fixture(t, "lsq_x"), true)
		dy := fixture(t, "lsq_dy")
		q := &ActQuantizer{Bits: 4}
		q.Set(0.3, 7)
		q.learn = true
		y := q.apply(x)
		assertClose(t, "fake-quantized x", y.Value.Data, fixture(t, "lsq_y").Data)
		if err := autograd.Sum(autograd.Mul(y, autograd.Const(dy))).Backward(); err != nil {
			t.Fatal(err)
		}
		assertClose(t, "dx", x.Grad.Data, fixture(t, "lsq_dx").Data)
		assertClose(t, "d delta", q.Delta.Grad.Data, fixture(t, "lsq_ddelta").Data)
	})
}

// fixtureBlocks are the zoo blocks tools/torchref/brecq.py builds.
var fixtureBlocks = map[string]func() layers.Module{
	"basic_ds": func() layers.Module {
		return &zoo.BasicBlock{
			Conv1: layers.NewConv2d(4, 8, 3, 2, 1, 1, false), BN1: layers.NewBatchNorm2d(8),
			Conv2: layers.NewConv2d(8, 8, 3, 1, 1, 1, false), BN2: layers.NewBatchNorm2d(8),
			Downsample: layers.NewSequential(layers.NewConv2d(4, 8, 1, 2, 0, 1, false), layers.NewBatchNorm2d(8)),
		}
	},
	"basic_id": func() layers.Module {
		return &zoo.BasicBlock{
			Conv1: layers.NewConv2d(8, 8, 3, 1, 1, 1, false), BN1: layers.NewBatchNorm2d(8),
			Conv2: layers.NewConv2d(8, 8, 3, 1, 1, 1, false), BN2: layers.NewBatchNorm2d(8),
		}
	},
	"bottleneck_ds": func() layers.Module {
		return &zoo.Bottleneck{
			Conv1: layers.NewConv2d(8, 4, 1, 1, 0, 1, false), BN1: layers.NewBatchNorm2d(4),
			Conv2: layers.NewConv2d(4, 4, 3, 2, 1, 1, false), BN2: layers.NewBatchNorm2d(4),
			Conv3: layers.NewConv2d(4, 16, 1, 1, 0, 1, false), BN3: layers.NewBatchNorm2d(16),
			Downsample: layers.NewSequential(layers.NewConv2d(8, 16, 1, 2, 0, 1, false), layers.NewBatchNorm2d(16)),
		}
	},
	"invres_res": func() layers.Module {
		return &zoo.InvertedResidual{UseResidual: true, Conv: layers.NewSequential(
			layers.NewConv2d(8, 48, 1, 1, 0, 1, false), layers.NewBatchNorm2d(48), &layers.ReLU6{},
			layers.NewConv2d(48, 48, 3, 1, 1, 48, false), layers.NewBatchNorm2d(48), &layers.ReLU6{},
			layers.NewConv2d(48, 8, 1, 1, 0, 1, false), layers.NewBatchNorm2d(8),
		)}
	},
	"invres_e1": func() layers.Module {
		return &zoo.InvertedResidual{UseResidual: false, Conv: layers.NewSequential(
			layers.NewConv2d(8, 8, 3, 1, 1, 8, false), layers.NewBatchNorm2d(8), &layers.ReLU6{},
			layers.NewConv2d(8, 4, 1, 1, 0, 1, false), layers.NewBatchNorm2d(4),
		)}
	},
}

// TestBlocksMatchTorch checks each quant block type (docs/DESIGN.md, "BRECQ", step 2) float,
// weight-only and fully quantized against PyTorch, the weight steps the
// Go scale search finds for its folded weights, and the loss and
// gradients of one reconstruction step of either phase.
func TestBlocksMatchTorch(t *testing.T) {
	onEveryPath(t, func(t *testing.T) {
		names := make([]string, 0, len(fixtureBlocks))
		for n := range fixtureBlocks {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, name := range names {
			t.Run(name, func(t *testing.T) {
				dir := "block_" + name + "/"
				blk := fixtureBlock(t, name)
				for _, qm := range blk.Modules() {
					want := fixture(t, dir+"wq_"+strings.TrimPrefix(qm.Name, "b."))
					got := make([]float32, 0, want.Numel())
					for r := range qm.WQ.Delta {
						got = append(got, qm.WQ.Delta[r], qm.WQ.ZP[r])
					}
					assertClose(t, qm.Name+" weight steps [delta zp]", got, want.Data)
				}
				useTorchSteps(t, name, blk)
				acts := blk.ActQuantizers()
				x := autograd.Const(fixture(t, dir+"x"))
				for _, tc := range []struct {
					file string
					mode Mode
				}{{"y_float", Mode{}}, {"y_weights", Mode{Weights: true}}, {"y_quant", Mode{Weights: true, Acts: true}}} {
					want := fixture(t, dir+tc.file)
					got := blk.Forward(x, tc.mode).Value
					if !slices.Equal(got.Shape, want.Shape) {
						t.Fatalf("%s: shape %v, PyTorch %v", tc.file, got.Shape, want.Shape)
					}
					assertClose(t, tc.file, got.Data, want.Data)
				}
				yFloat := autograd.Const(fixture(t, dir+"y_float"))

				// One AdaRound step's loss and alpha gradients (docs/DESIGN.md, "BRECQ", step 4).
				for _, qm := range blk.Modules() {
					qm.WQ.Alpha = autograd.NewVar(fixture(t, dir+"alpha_"+strings.TrimPrefix(qm.Name, "b.")), true)
					qm.WQ.Soft = true
				}
				loss := autograd.LpLoss(blk.Forward(x, Mode{Weights: true}), yFloat, weightP)
				assertClose(t, "AdaRound loss", loss.Value.Data, fixture(t, dir+"ada_loss").Data)
				if err := loss.Backward(); err != nil {
					t.Fatal(err)
				}
				for _, qm := range blk.Modules() {
					want := fixture(t, dir+"alpha_grad_"+strings.TrimPrefix(qm.Name, "b."))
					assertClose(t, qm.Name+" alpha gradient", qm.WQ.Alpha.Grad.Data, want.Data)
					qm.WQ.Alpha, qm.WQ.Soft = nil, false
				}

				// One LSQ step's loss and step gradients (docs/DESIGN.md, "BRECQ", step 6).
				for _, a := range acts {
					a.learn = true
				}
				loss = autograd.LpLoss(blk.Forward(x, Mode{Weights: true, Acts: true}), yFloat, DefaultP)
				assertClose(t, "LSQ loss", loss.Value.Data, fixture(t, dir+"lsq_loss").Data)
				if err := loss.Backward(); err != nil {
					t.Fatal(err)
				}
				var grads []float32
				for _, a := range acts {
					grads = append(grads, a.Delta.Grad.Data[0])
				}
				assertClose(t, "activation step gradients", grads, fixture(t, dir+"lsq_grad").Data)
			})
		}
	})
}

// fixtureBlock builds the quant block of fixture block name from its
// PyTorch parameters, with the steps the Go scale search finds.
func fixtureBlock(t *testing.T, name string) *Block {
	t.Helper()
	m := fixtureBlocks[name]()
	for _, e := range layers.StateDict(m) {
		e.Tensor.CopyFrom(fixture(t, "block_"+name+"/"+e.Name))
	}
	b := builder{wBits: 4, aBits: 4, q: &QuantModel{}}
	blk, err := b.block("b", m)
	if err != nil {
		t.Fatal(err)
	}
	return blk
}

// useTorchSteps gives blk PyTorch's weight steps and initial activation
// steps, so a float difference in the searches cannot move a level.
func useTorchSteps(t *testing.T, name string, blk *Block) {
	t.Helper()
	dir := "block_" + name + "/"
	for _, qm := range blk.Modules() {
		want := fixture(t, dir+"wq_"+strings.TrimPrefix(qm.Name, "b."))
		for r := range qm.WQ.Delta {
			qm.WQ.Delta[r], qm.WQ.ZP[r] = want.Data[2*r], want.Data[2*r+1]
		}
	}
	aq := fixture(t, dir+"aq")
	acts := blk.ActQuantizers()
	if len(acts) != aq.Shape[0] {
		t.Fatalf("%d activation quantizers, PyTorch %d", len(acts), aq.Shape[0])
	}
	for i, a := range acts {
		a.Set(aq.Data[2*i], aq.Data[2*i+1])
	}
}

// TestActivationPhaseMatchesTorch runs the activation phase of docs/DESIGN.md, "BRECQ", step 6
// on a whole block for 40 steps, the block's input being the mini-batch,
// and follows PyTorch step by step: the loss with every quantizer of the
// block on (round-to-nearest weights) against the float output, Adam at
// lr 4e-4 on the activation steps, the cosine schedule to 0. The steps
// must also move: a phase that learns nothing would match a flat curve
// only by accident.
func TestActivationPhaseMatchesTorch(t *testing.T) {
	onEveryPath(t, func(t *testing.T) {
		for _, name := range []string{"basic_ds", "basic_id"} {
			t.Run(name, func(t *testing.T) {
				dir := "block_" + name + "/"
				blk := fixtureBlock(t, name)
				useTorchSteps(t, name, blk)
				wantLoss, wantSteps := fixture(t, dir+"lsq_steps_loss"), fixture(t, dir+"lsq_steps_delta")
				acts := blk.ActQuantizers()
				start := make([]float32, len(acts))
				for i, a := range acts {
					start[i] = a.Delta.Value.Data[0]
				}
				x, target := fixture(t, dir+"x"), fixture(t, dir+"y_float")
				cfg := Config{ActQuant: true, ItersA: wantLoss.Numel()}
				s, err := cfg.resolve(x)
				if err != nil {
					t.Fatal(err)
				}
				var losses []float32
				s.progress = func(p Progress) { losses = append(losses, float32(p.RecLoss)) }
				r := &run{s: s}
				if err := r.reconstruct(t.Context(), PhaseActivations, 0, blk, x, target); err != nil {
					t.Fatal(err)
				}
				assertClose(t, "loss per step", losses, wantLoss.Data)
				got := make([]float32, len(acts))
				for i, a := range acts {
					got[i] = a.Delta.Value.Data[0]
					if math.Abs(float64(got[i]/start[i]-1)) < 1e-3 {
						t.Errorf("activation step %d moved from %g to %g only", i, start[i], got[i])
					}
				}
				assertClose(t, "learned steps", got, wantSteps.Data[len(wantSteps.Data)-len(acts):])
			})
		}
	})
}
