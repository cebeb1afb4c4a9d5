package layers

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// randomizeState fills every parameter and buffer of m with random values
// (running variances positive), so BN folds are not the identity.
func randomizeState(m Module, rng *rand.Rand) {
	for _, e := range StateDict(m) {
		for i := range e.Tensor.Data {
			e.Tensor.Data[i] = float32(rng.NormFloat64())
		}
		if len(e.Tensor.Shape) == 1 && len(e.Name) >= 11 && e.Name[len(e.Name)-11:] == "running_var" {
			for i := range e.Tensor.Data {
				e.Tensor.Data[i] = 0.2 + rng.Float32()
			}
		}
	}
}

func randomInput(rng *rand.Rand, shape ...int) *autograd.Var {
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = 3 * float32(rng.NormFloat64())
	}
	return autograd.Const(x)
}

// unfused runs s's modules one by one through their own Forward: the
// reference the fused Sequential must reproduce.
func unfused(s *Sequential, x *autograd.Var) *autograd.Var {
	for _, m := range s.Modules {
		if inner, ok := m.(*Sequential); ok {
			x = unfused(inner, x)
			continue
		}
		x = m.Forward(x)
	}
	return x
}

func fusedCases() []struct {
	name  string
	net   func() *Sequential
	shape []int
} {
	return []struct {
		name  string
		net   func() *Sequential
		shape []int
	}{
		{"conv3x3-bn-relu6", func() *Sequential {
			return NewSequential(NewConv2d(3, 5, 3, 2, 1, 1, false), NewBatchNorm2d(5), &ReLU6{})
		}, []int{2, 3, 9, 9}},
		{"depthwise-bn-relu", func() *Sequential {
			return NewSequential(NewConv2d(4, 4, 3, 1, 1, 4, false), NewBatchNorm2d(4), &ReLU{})
		}, []int{2, 4, 7, 6}},
		{"bias-conv-bn-no-act", func() *Sequential {
			return NewSequential(NewConv2d(4, 6, 1, 1, 0, 1, true), NewBatchNorm2d(6))
		}, []int{3, 4, 5, 5}},
		{"inverted-residual-branch", func() *Sequential {
			return NewSequential(
				NewConv2d(4, 12, 1, 1, 0, 1, false), NewBatchNorm2d(12), &ReLU6{},
				NewConv2d(12, 12, 3, 1, 1, 12, false), NewBatchNorm2d(12), &ReLU6{},
				NewConv2d(12, 4, 1, 1, 0, 1, false), NewBatchNorm2d(4))
		}, []int{2, 4, 8, 8}},
		{"wide-stride1-bias-conv-bn-relu", func() *Sequential {
			return NewSequential(NewConv2d(3, 5, 3, 1, 1, 1, true), NewBatchNorm2d(5), &ReLU{})
		}, []int{2, 3, 6, 31}},
		{"pointwise-bias-conv-bn-relu6", func() *Sequential {
			return NewSequential(NewConv2d(5, 7, 1, 1, 0, 1, true), NewBatchNorm2d(7), &ReLU6{})
		}, []int{2, 5, 6, 7}},
		{"chain-then-unfusable", func() *Sequential {
			return NewSequential(NewConv2d(3, 4, 3, 1, 1, 1, false), NewBatchNorm2d(4), &Dropout{},
				&ReLU{}, NewConv2d(4, 4, 3, 1, 1, 1, false), NewBatchNorm2d(4), &Flatten{})
		}, []int{2, 3, 6, 6}},
	}
}

// TestFusedMatchesUnfused: the fused inference path computes what the
// modules compute one by one, and a retained output is not overwritten
// by a later call reusing buffers.
func TestFusedMatchesUnfused(t *testing.T) {
	for i, c := range fusedCases() {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			net := c.net()
			randomizeState(net, rng)
			x := randomInput(rng, c.shape...)
			want := unfused(net, x)
			got := Apply(net, x)
			if !slices.Equal(got.Shape(), want.Shape()) {
				t.Fatalf("shape %v, want %v", got.Shape(), want.Shape())
			}
			if !slices.Equal(got.Value.Data, want.Value.Data) {
				t.Fatalf("fused output differs from the unfused chain")
			}
			kept := slices.Clone(got.Value.Data)
			for range 3 {
				again := Apply(net, randomInput(rng, c.shape...))
				if SameData(again, got) {
					t.Fatal("a later call returned the buffer of a retained output")
				}
			}
			if !slices.Equal(got.Value.Data, kept) {
				t.Fatal("a retained output changed under later calls")
			}
		})
	}
}

// TestFusionKeepsHooks: a hook on the conv, the BN or the activation turns
// fusion off for that chain, so it sees exactly the unfused values.
func TestFusionKeepsHooks(t *testing.T) {
	for pos := range 3 {
		rng := rand.New(rand.NewPCG(uint64(pos), 9))
		net := NewSequential(NewConv2d(3, 4, 3, 1, 1, 1, false), NewBatchNorm2d(4), &ReLU6{})
		randomizeState(net, rng)
		x := randomInput(rng, 2, 3, 6, 6)
		var seenIn, seenOut *autograd.Var
		calls := 0
		net.Modules[pos].(Hookable).AddHook(func(_ Module, in, out *autograd.Var) {
			seenIn, seenOut = in, out
			calls++
		})
		y := Apply(net, x)
		if calls != 1 {
			t.Fatalf("hook on module %d ran %d times, want 1", pos, calls)
		}
		wantIn := x
		for _, m := range net.Modules[:pos] {
			wantIn = m.Forward(wantIn)
		}
		if !slices.Equal(seenIn.Value.Data, wantIn.Value.Data) {
			t.Errorf("hook on module %d saw an input other than the unfused one", pos)
		}
		if !slices.Equal(seenOut.Value.Data, net.Modules[pos].Forward(wantIn).Value.Data) {
			t.Errorf("hook on module %d saw an output other than the unfused one", pos)
		}
		if !slices.Equal(y.Value.Data, unfused(net, x).Value.Data) {
			t.Errorf("hook on module %d: output differs from the unfused chain", pos)
		}
	}
}

// TestFusionOffWithGradients: with trainable parameters the chain records
// its tape (fusion would drop it).
func TestFusionOffWithGradients(t *testing.T) {
	net := NewSequential(NewConv2d(3, 4, 3, 1, 1, 1, false), NewBatchNorm2d(4), &ReLU{})
	SetRequiresGrad(net, true)
	if !Apply(net, autograd.Const(tensor.New(1, 3, 5, 5))).RequiresGrad() {
		t.Fatal("output does not require a gradient with trainable parameters")
	}
}

func TestExclusive(t *testing.T) {
	hooked := NewBatchNorm2d(2)
	hooked.AddHook(func(Module, *autograd.Var, *autograd.Var) {})
	hookedSeq := NewSequential(&ReLU{})
	hookedSeq.AddHook(func(Module, *autograd.Var, *autograd.Var) {})
	for _, c := range []struct {
		name string
		m    Module
		want bool
	}{
		{"conv", NewConv2d(2, 2, 1, 1, 0, 1, false), true},
		{"nested sequential", newNested(), false}, // holds a Flatten and a Dropout
		{"plain sequential", NewSequential(NewConv2d(2, 2, 1, 1, 0, 1, false), NewBatchNorm2d(2), NewSequential(&ReLU6{})), true},
		{"empty sequential", NewSequential(), false},
		{"dropout", &Dropout{}, false},
		{"hooked bn", hooked, false},
		{"sequential holding a hooked bn", NewSequential(NewConv2d(2, 2, 1, 1, 0, 1, false), hooked), false},
		{"hooked sequential", hookedSeq, false},
	} {
		if got := Exclusive(c.m); got != c.want {
			t.Errorf("%s: Exclusive %v, want %v", c.name, got, c.want)
		}
	}
}

// TestApplyBNActMatchesChain: the fused batch norm + activation gives the
// unfused chain's output and input gradient bit for bit, runs bn's input
// hooks with the input, and refuses when a hook needs bn's output.
func TestApplyBNActMatchesChain(t *testing.T) {
	for i, act := range []Module{nil, &ReLU{}, &ReLU6{}} {
		rng := rand.New(rand.NewPCG(uint64(i), 11))
		bn := NewBatchNorm2d(4)
		randomizeState(bn, rng)
		x0 := randomInput(rng, 2, 4, 3, 5)
		run := func(fused bool) (out, grad []float32) {
			x := autograd.NewVar(x0.Value.Clone(), true)
			var seen *autograd.Var
			remove := bn.AddInputHook(func(_ Module, in *autograd.Var) { seen = in })
			defer remove()
			var y *autograd.Var
			if fused {
				var ok bool
				if y, ok = ApplyBNAct(bn, act, x); !ok {
					t.Fatalf("act %T: not fused with an input hook only", act)
				}
			} else {
				y = Apply(bn, x)
				if act != nil {
					y = Apply(act, y)
				}
			}
			if seen != x {
				t.Fatalf("act %T fused=%v: the input hook saw %p, want the input %p", act, fused, seen, x)
			}
			// A weighted sum, so every element's gradient differs.
			w := randomInput(rand.New(rand.NewPCG(9, 9)), y.Shape()...)
			if err := autograd.Sum(autograd.Mul(y, w)).Backward(); err != nil {
				t.Fatal(err)
			}
			return slices.Clone(y.Value.Data), slices.Clone(x.Grad.Data)
		}
		wantOut, wantGrad := run(false)
		gotOut, gotGrad := run(true)
		if !slices.Equal(gotOut, wantOut) || !slices.Equal(gotGrad, wantGrad) {
			t.Fatalf("act %T: fused output or gradient differs from the chain", act)
		}
		remove := bn.AddHook(func(Module, *autograd.Var, *autograd.Var) {})
		if _, ok := ApplyBNAct(bn, act, x0); ok {
			t.Fatalf("act %T: fused although a hook reads the batch norm's output", act)
		}
		remove()
	}
}

// TestSequentialBNActWithGradients: when a gradient is wanted (no fused
// inference), a Sequential still runs each batch norm and the activation
// after it as one node (ApplyBNAct), with the values and gradients of the
// module-by-module chain, and takes the moments of an InputMoments batch
// norm's input in that pass.
func TestSequentialBNActWithGradients(t *testing.T) {
	for i, c := range fusedCases() {
		for _, params := range []bool{false, true} {
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			net := c.net()
			randomizeState(net, rng)
			SetRequiresGrad(net, params)
			x0 := randomInput(rng, c.shape...)
			w := randomInput(rng, unfused(net, x0).Shape()...)
			run := func(fused bool) (out []float32, grads [][]float32, bnIn []*autograd.Var) {
				x := autograd.NewVar(x0.Value.Clone(), true)
				var removes []func()
				for _, m := range NamedModules(net) {
					if bn, ok := m.Module.(*BatchNorm2d); ok {
						bn.InputMoments = fused
						removes = append(removes, bn.AddInputHook(func(_ Module, in *autograd.Var) { bnIn = append(bnIn, in) }))
					}
				}
				defer func() {
					for _, r := range removes {
						r()
					}
				}()
				var y *autograd.Var
				if fused {
					y = Apply(net, x)
				} else {
					y = unfused(net, x)
				}
				for _, p := range Parameters(net) {
					p.ZeroGrad()
				}
				if err := autograd.Sum(autograd.Mul(y, w)).Backward(); err != nil {
					t.Fatal(err)
				}
				grads = append(grads, slices.Clone(x.Grad.Data))
				if params {
					for _, p := range Parameters(net) {
						grads = append(grads, slices.Clone(p.Grad.Data))
					}
				}
				return slices.Clone(y.Value.Data), grads, bnIn
			}
			wantOut, wantGrads, _ := run(false)
			gotOut, gotGrads, bnIn := run(true)
			if !slices.Equal(gotOut, wantOut) {
				t.Fatalf("%s params=%v: output differs from the chain", c.name, params)
			}
			for k := range wantGrads {
				if !slices.Equal(gotGrads[k], wantGrads[k]) {
					t.Fatalf("%s params=%v: gradient %d differs from the chain", c.name, params, k)
				}
			}
			if len(bnIn) == 0 {
				t.Fatalf("%s: no batch norm input seen", c.name)
			}
			// Poison each batch norm input: only moments taken in the
			// normalising pass survive it.
			for k, in := range bnIn {
				want, _ := autograd.ChannelMoments(autograd.Const(in.Value.Clone()))
				saved := slices.Clone(in.Value.Data)
				clear(in.Value.Data)
				got, _ := autograd.ChannelMoments(in)
				copy(in.Value.Data, saved)
				if !slices.Equal(got.Value.Data, want.Value.Data) {
					t.Fatalf("%s params=%v: batch norm %d did not run as one node taking its input's moments", c.name, params, k)
				}
			}
		}
	}
}
