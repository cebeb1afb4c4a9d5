package zoo

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/tensor"
)

// TestResidualTailWithGradients: with gradients wanted, a block's last
// batch norm, the residual sum and the ReLU run as one node
// (convBNResidual), which must give bit for bit the output and gradients
// of
//   - the same block with that tail unfused (the batch norm with its
//     moments as one node, then Add and ReLU) in the same order, the way
//     DGH runs it: every batch norm input's moments taken in the
//     normalising pass and in the loss;
//   - the module-by-module chain (an output hook on that batch norm
//     forces it), without moments in the loss: the chain adds a batch
//     norm input's moment gradient before the batch norm's, the fused
//     passes after it, which moves the last bit.
//
// Parameters frozen or not.
func TestResidualTailWithGradients(t *testing.T) {
	basic, bottle, regnet := newBasicBlock(8, 16, 2), newBottleneck(16, 4, 16, 1, 1), newResBottleneckBlock(8, 12, 2, 3)
	tail := func(conv *layers.Conv2d, bn *layers.BatchNorm2d, ds *layers.Sequential, x, h *autograd.Var) *autograd.Var {
		c := layers.Apply(conv, h)
		sc := shortcut(ds, x)
		y, ok := layers.ApplyBNAct(bn, nil, c)
		if !ok {
			t.Fatal("ApplyBNAct refused the batch norm")
		}
		return autograd.ReLU(autograd.Add(y, sc))
	}
	for _, c := range []struct {
		name    string
		block   layers.Module
		last    *layers.BatchNorm2d
		shape   []int
		unfused func(x *autograd.Var) *autograd.Var
	}{
		{"BasicBlock/downsample", basic, basic.BN2, []int{2, 8, 9, 9}, func(x *autograd.Var) *autograd.Var {
			h, _ := convBN(basic.Conv1, basic.BN1, true, x)
			return tail(basic.Conv2, basic.BN2, basic.Downsample, x, h)
		}},
		{"Bottleneck/identity", bottle, bottle.BN3, []int{2, 16, 6, 7}, func(x *autograd.Var) *autograd.Var {
			h1, _ := convBN(bottle.Conv1, bottle.BN1, true, x)
			h2, _ := convBN(bottle.Conv2, bottle.BN2, true, h1)
			return tail(bottle.Conv3, bottle.BN3, nil, x, h2)
		}},
		{"ResBottleneckBlock/proj", regnet, regnet.CBN, []int{2, 8, 9, 8}, func(x *autograd.Var) *autograd.Var {
			h1, _ := convBN(regnet.A, regnet.ABN, true, x)
			h2, _ := convBN(regnet.B, regnet.BBN, true, h1)
			return tail(regnet.C, regnet.CBN, regnet.Proj, x, h2)
		}},
	} {
		for _, params := range []bool{false, true} {
			randomize(c.block, 7)
			layers.SetRequiresGrad(c.block, params)
			rng := rand.New(rand.NewPCG(3, 4))
			x0 := tensor.New(c.shape...)
			for i := range x0.Data {
				x0.Data[i] = float32(rng.NormFloat64())
			}
			var w *autograd.Var
			run := func(ref string, moments bool) (out []float32, grads [][]float32) {
				var ins []*autograd.Var
				var removes []func()
				for _, m := range layers.NamedModules(c.block) {
					if bn, ok := m.Module.(*layers.BatchNorm2d); ok {
						bn.InputMoments = moments
						removes = append(removes, bn.AddInputHook(func(_ layers.Module, in *autograd.Var) { ins = append(ins, in) }))
					}
				}
				if ref == "chain" {
					removes = append(removes, c.last.AddHook(func(layers.Module, *autograd.Var, *autograd.Var) {}))
				}
				defer func() {
					for _, r := range removes {
						r()
					}
				}()
				x := autograd.NewVar(x0.Clone(), true)
				var y *autograd.Var
				if ref == "unfused" {
					y = c.unfused(x)
				} else {
					y = layers.Apply(c.block, x)
				}
				if w == nil {
					wv := tensor.New(y.Shape()...)
					for i := range wv.Data {
						wv.Data[i] = float32(rng.NormFloat64())
					}
					w = autograd.Const(wv)
				}
				loss := autograd.Sum(autograd.Mul(y, w))
				if moments {
					for _, in := range ins {
						m, sq := autograd.ChannelMoments(in)
						loss = autograd.Add(loss, autograd.Add(autograd.Sum(m), autograd.Scale(autograd.Sum(sq), 0.5)))
					}
				}
				for _, p := range layers.Parameters(c.block) {
					p.ZeroGrad()
				}
				if err := loss.Backward(); err != nil {
					t.Fatal(err)
				}
				grads = append(grads, slices.Clone(x.Grad.Data))
				if params {
					for _, p := range layers.Parameters(c.block) {
						grads = append(grads, slices.Clone(p.Grad.Data))
					}
				}
				return slices.Clone(y.Value.Data), grads
			}
			for _, ref := range []string{"unfused", "chain"} {
				moments := ref == "unfused"
				wantOut, wantGrads := run(ref, moments)
				gotOut, gotGrads := run("fused", moments)
				if !slices.Equal(gotOut, wantOut) {
					t.Fatalf("%s params=%v: output differs from the %s tail", c.name, params, ref)
				}
				for k := range wantGrads {
					if !slices.Equal(gotGrads[k], wantGrads[k]) {
						t.Fatalf("%s params=%v: gradient %d differs from the %s tail", c.name, params, k, ref)
					}
				}
			}
		}
	}
}

// TestConvBNFusedWithGradients: with gradients wanted and every batch
// norm taking its input's moments (DGH's forward), each conv + BN (+
// activation, + residual) runs as one fused forward pass (ApplyConvBNAct,
// ApplyConvBNAddAct), which must give bit for bit the logits, the batch
// norm inputs and their moments, and the gradients of the unfused pass, a
// no-op output hook on every convolution forcing that one (the
// convolution through Apply, then the batch norm node), parameters frozen
// or not.
func TestConvBNFusedWithGradients(t *testing.T) {
	for _, name := range []string{"resnet18", "mobilenet_v2", "mnasnet", "regnetx_600m"} {
		m, err := NewNarrow(name, "", 3, 7, 4)
		if err != nil {
			t.Fatal(err)
		}
		randomize(m.Net, 5)
		rng := rand.New(rand.NewPCG(5, 6))
		x0 := tensor.New(2, 3, 32, 32)
		for i := range x0.Data {
			x0.Data[i] = float32(rng.NormFloat64())
		}
		for _, params := range []bool{false, true} {
			layers.SetRequiresGrad(m.Net, params)
			run := func(hookConvs bool) (vals [][]float32) {
				var ins []*autograd.Var
				defer takeBNInputs(m.Net, hookConvs, &ins)()
				x := autograd.NewVar(x0.Clone(), true)
				y := m.Forward(x)
				loss := autograd.Sum(autograd.Mul(y, y))
				for _, in := range ins {
					mean, sq := autograd.ChannelMoments(in)
					vals = append(vals, slices.Clone(in.Value.Data), slices.Clone(mean.Value.Data), slices.Clone(sq.Value.Data))
					loss = autograd.Add(loss, autograd.Add(autograd.Sum(mean), autograd.Scale(autograd.Sum(sq), 0.5)))
				}
				for _, p := range layers.Parameters(m.Net) {
					p.ZeroGrad()
				}
				if err := loss.Backward(); err != nil {
					t.Fatal(err)
				}
				vals = append(vals, slices.Clone(y.Value.Data), slices.Clone(x.Grad.Data))
				if params {
					for _, p := range layers.Parameters(m.Net) {
						vals = append(vals, slices.Clone(p.Grad.Data))
					}
				}
				return vals
			}
			want, got := run(true), run(false)
			if len(got) != len(want) {
				t.Fatalf("%s params=%v: %d values, want %d", name, params, len(got), len(want))
			}
			for k := range want {
				if !slices.Equal(got[k], want[k]) {
					t.Fatalf("%s params=%v: value %d of %d differs from the unfused pass", name, params, k, len(want))
				}
			}
		}
	}
}

// takeBNInputs sets every batch norm of net to take its input's moments,
// as DGH does, and appends each batch norm's input to *ins as it runs;
// with hookConvs, a no-op hook on every convolution forces the unfused
// path. The returned func undoes it all.
func takeBNInputs(net layers.Module, hookConvs bool, ins *[]*autograd.Var) (undo func()) {
	var removes []func()
	for _, nm := range layers.NamedModules(net) {
		switch mod := nm.Module.(type) {
		case *layers.BatchNorm2d:
			mod.InputMoments = true
			removes = append(removes, func() { mod.InputMoments = false },
				mod.AddInputHook(func(_ layers.Module, in *autograd.Var) { *ins = append(*ins, in) }))
		case *layers.Conv2d:
			if hookConvs {
				removes = append(removes, mod.AddHook(func(layers.Module, *autograd.Var, *autograd.Var) {}))
			}
		}
	}
	return func() {
		for _, r := range removes {
			r()
		}
	}
}
