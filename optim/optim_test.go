package optim

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// sizes are the fixture problem's parameter sizes (tools/torchref/optim.py).
var sizes = []int{6, 4, 3}

type optimCase struct {
	name   string
	newOpt func([]*autograd.Var) (Optimizer, error)
}

// transfer moves from's state into to through gob, as a resumed run would.
func transfer(from, to Optimizer) error {
	switch f := from.(type) {
	case *SGD:
		st, err := viaGob(f.State())
		if err != nil {
			return err
		}
		return to.(*SGD).SetState(st)
	case *Adam:
		st, err := viaGob(f.State())
		if err != nil {
			return err
		}
		return to.(*Adam).SetState(st)
	case *RAdam:
		st, err := viaGob(f.State())
		if err != nil {
			return err
		}
		return to.(*RAdam).SetState(st)
	}
	return fmt.Errorf("no state transfer for %T", from)
}

// optimCases mirror optimizer_cases() in tools/torchref/optim.py.
func optimCases() []optimCase {
	sgd := func(cfg SGDConfig) func([]*autograd.Var) (Optimizer, error) {
		return func(v []*autograd.Var) (Optimizer, error) { return NewSGD(v, cfg) }
	}
	adam := func(cfg AdamConfig) func([]*autograd.Var) (Optimizer, error) {
		return func(v []*autograd.Var) (Optimizer, error) { return NewAdam(v, cfg) }
	}
	radam := func(cfg RAdamConfig) func([]*autograd.Var) (Optimizer, error) {
		return func(v []*autograd.Var) (Optimizer, error) { return NewRAdam(v, cfg) }
	}
	return []optimCase{
		{"sgd_plain", sgd(SGDConfig{LR: 0.05})},
		{"sgd_momentum", sgd(SGDConfig{LR: 0.02, Momentum: 0.9, Dampening: 0.1, WeightDecay: 0.01})},
		{"sgd_nesterov", sgd(SGDConfig{LR: 0.02, Momentum: 0.8, Nesterov: true, WeightDecay: 0.05})},
		{"adam", adam(AdamConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})},
		{"adam_wd", adam(AdamConfig{LR: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1})},
		{"adam_amsgrad", adam(AdamConfig{LR: 0.03, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, AMSGrad: true})},
		{"radam_lr16", radam(RAdamConfig{LR: 16, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})},
		{"radam_lr1e-3", radam(DefaultRAdamConfig())},
		{"radam_wd", radam(RAdamConfig{LR: 0.05, Beta1: 0.85, Beta2: 0.995, Eps: 1e-6, WeightDecay: 0.02})},
	}
}

// TestOptimizersMatchTorch replays torch's gradients step by step (so
// float32 rounding differences cannot compound through the problem) and
// compares every parameter after every step; resumeAt > 0 swaps in a fresh
// optimizer restored from the old one's gob-encoded state at that step.
func TestOptimizersMatchTorch(t *testing.T) {
	for _, tc := range optimCases() {
		for _, resumeAt := range []int{0, 20} {
			t.Run(fmt.Sprintf("%s/resume%d", tc.name, resumeAt), func(t *testing.T) {
				want, wshape := fixture(t, "opt_"+tc.name+"_params")
				grads, _ := fixture(t, "opt_"+tc.name+"_grads")
				mask, _ := fixture(t, "opt_"+tc.name+"_mask")
				steps, n := wshape[0]-1, wshape[1]
				vars := make([]*autograd.Var, len(sizes))
				offsets := make([]int, len(sizes))
				off := 0
				for i, s := range sizes {
					vals := make([]float32, s)
					for j := range vals {
						vals[j] = float32(want[off+j])
					}
					vars[i] = autograd.NewVar(tensor.FromSlice(vals, s), true)
					offsets[i] = off
					off += s
				}
				opt, err := tc.newOpt(vars)
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0 // largest |diff| / (1e-5 + 1e-4 |want|), logged
				for step := range steps {
					if step == resumeAt && resumeAt > 0 {
						fresh, err := tc.newOpt(vars)
						if err != nil {
							t.Fatal(err)
						}
						if err := transfer(opt, fresh); err != nil {
							t.Fatal(err)
						}
						opt = fresh
					}
					for i, v := range vars {
						if mask[step*len(sizes)+i] == 0 {
							v.Grad = nil
							continue
						}
						g := make([]float32, sizes[i])
						for j := range g {
							g[j] = float32(grads[step*n+offsets[i]+j])
						}
						v.Grad = tensor.FromSlice(g, sizes[i])
					}
					if err := opt.Step(); err != nil {
						t.Fatal(err)
					}
					for i, v := range vars {
						for j, got := range v.Value.Data {
							w := want[(step+1)*n+offsets[i]+j]
							if !withinTol(float64(got), w) {
								t.Fatalf("step %d: param %d[%d] = %v, torch %v", step+1, i, j, got, w)
							}
							worst = max(worst, math.Abs(float64(got)-w)/(1e-5+1e-4*math.Abs(w)))
						}
					}
				}
				t.Logf("worst error %.3g of the tolerance", worst)
			})
		}
	}
}

func TestOptimizerConfigErrors(t *testing.T) {
	vars := []*autograd.Var{autograd.NewVar(tensor.New(3), true)}
	cases := []struct {
		name string
		make func() error
		want string
	}{
		{"sgd negative lr", func() error { _, err := NewSGD(vars, SGDConfig{LR: -1}); return err }, "learning rate"},
		{"sgd nesterov without momentum", func() error {
			_, err := NewSGD(vars, SGDConfig{LR: 1, Nesterov: true})
			return err
		}, "Nesterov"},
		{"sgd nesterov with dampening", func() error {
			_, err := NewSGD(vars, SGDConfig{LR: 1, Momentum: 0.9, Dampening: 0.1, Nesterov: true})
			return err
		}, "Nesterov"},
		{"sgd negative momentum", func() error { _, err := NewSGD(vars, SGDConfig{LR: 1, Momentum: -0.1}); return err }, "momentum"},
		{"adam beta1 = 1", func() error {
			cfg := DefaultAdamConfig()
			cfg.Beta1 = 1
			_, err := NewAdam(vars, cfg)
			return err
		}, "beta1"},
		{"adam NaN lr", func() error {
			cfg := DefaultAdamConfig()
			cfg.LR = math.NaN()
			_, err := NewAdam(vars, cfg)
			return err
		}, "learning rate"},
		{"radam negative eps", func() error {
			cfg := DefaultRAdamConfig()
			cfg.Eps = -1
			_, err := NewRAdam(vars, cfg)
			return err
		}, "epsilon"},
		{"radam negative weight decay", func() error {
			cfg := DefaultRAdamConfig()
			cfg.WeightDecay = -1
			_, err := NewRAdam(vars, cfg)
			return err
		}, "weight decay"},
		{"nil parameter", func() error { _, err := NewRAdam([]*autograd.Var{nil}, DefaultRAdamConfig()); return err }, "no value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.make()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestStepRejectsBadGradient checks that a gradient of the wrong size is an
// error and leaves parameters and state untouched.
func TestStepRejectsBadGradient(t *testing.T) {
	for _, tc := range optimCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := autograd.NewVar(tensor.FromSlice([]float32{1, 2, 3}, 3), true)
			b := autograd.NewVar(tensor.FromSlice([]float32{4, 5}, 2), true)
			opt, err := tc.newOpt([]*autograd.Var{a, b})
			if err != nil {
				t.Fatal(err)
			}
			a.Grad = tensor.FromSlice([]float32{1, 1, 1}, 3)
			b.Grad = tensor.FromSlice([]float32{1, 1, 1}, 3)
			if err := opt.Step(); err == nil || !strings.Contains(err.Error(), "parameter 1") {
				t.Fatalf("error %v, want one naming parameter 1", err)
			}
			if a.Value.Data[0] != 1 || b.Value.Data[0] != 4 {
				t.Fatalf("parameters changed by a failed step: %v %v", a.Value.Data, b.Value.Data)
			}
		})
	}
}

func TestSetStateRejectsMismatch(t *testing.T) {
	vars := []*autograd.Var{autograd.NewVar(tensor.New(3), true), autograd.NewVar(tensor.New(2), true)}
	other := []*autograd.Var{autograd.NewVar(tensor.New(3), true), autograd.NewVar(tensor.New(4), true)}
	sgdOn := SGDConfig{LR: 0.1, Momentum: 0.9}
	stepOnce := func(o Optimizer, vs []*autograd.Var) Optimizer {
		for _, v := range vs {
			v.Grad = tensor.New(v.Value.Shape...)
		}
		if err := o.Step(); err != nil {
			t.Fatal(err)
		}
		return o
	}
	mustSGD := func(v []*autograd.Var, c SGDConfig) *SGD {
		o, err := NewSGD(v, c)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	mustAdam := func(v []*autograd.Var, c AdamConfig) *Adam {
		o, err := NewAdam(v, c)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	mustRAdam := func(v []*autograd.Var) *RAdam {
		o, err := NewRAdam(v, DefaultRAdamConfig())
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	ams := DefaultAdamConfig()
	ams.AMSGrad = true
	cases := []struct {
		name string
		set  func() error
		want string
	}{
		{"sgd buffer size", func() error {
			return mustSGD(vars, sgdOn).SetState(stepOnce(mustSGD(other, sgdOn), other).(*SGD).State())
		}, "momentum buffer 1"},
		{"sgd momentum off", func() error {
			return mustSGD(vars, SGDConfig{LR: 0.1}).SetState(stepOnce(mustSGD(vars, sgdOn), vars).(*SGD).State())
		}, "momentum is off"},
		{"adam buffer size", func() error {
			return mustAdam(vars, DefaultAdamConfig()).SetState(mustAdam(other, DefaultAdamConfig()).State())
		}, "ExpAvg buffer 1"},
		{"adam amsgrad missing", func() error {
			return mustAdam(vars, ams).SetState(mustAdam(vars, DefaultAdamConfig()).State())
		}, "MaxExpAvgSq"},
		{"adam amsgrad off", func() error {
			return mustAdam(vars, DefaultAdamConfig()).SetState(mustAdam(vars, ams).State())
		}, "AMSGrad is off"},
		{"radam parameter count", func() error {
			return mustRAdam(vars).SetState(mustRAdam(vars[:1]).State())
		}, "step counters"},
		{"radam negative step", func() error {
			st := mustRAdam(vars).State()
			st.Steps[0] = -1
			return mustRAdam(vars).SetState(st)
		}, "step counter -1"},
		{"radam negative lr", func() error {
			st := mustRAdam(vars).State()
			st.LR = -1
			return mustRAdam(vars).SetState(st)
		}, "learning rate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.set()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestZeroGradAndSetLR(t *testing.T) {
	v := autograd.NewVar(tensor.FromSlice([]float32{1, 2}, 2), true)
	v.Grad = tensor.FromSlice([]float32{3, 4}, 2)
	opt, err := NewRAdam([]*autograd.Var{v}, DefaultRAdamConfig())
	if err != nil {
		t.Fatal(err)
	}
	opt.ZeroGrad()
	if v.Grad.Data[0] != 0 || v.Grad.Data[1] != 0 {
		t.Fatalf("ZeroGrad left %v", v.Grad.Data)
	}
	opt.SetLR(16)
	if opt.LR() != 16 || opt.State().LR != 16 {
		t.Fatalf("LR %v, state LR %v after SetLR(16)", opt.LR(), opt.State().LR)
	}
}

// TestStepDoesNotAllocate holds every optimizer to 0 allocations per
// step, since DGH steps one optimizer per batch per iteration.
func TestStepDoesNotAllocate(t *testing.T) {
	for _, tc := range optimCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := autograd.NewVar(tensor.FromSlice([]float32{1, -2, 3}, 3), true)
			b := autograd.NewVar(tensor.FromSlice([]float32{4, 5}, 2), true)
			a.Grad = tensor.FromSlice([]float32{0.5, -1, 2}, 3)
			b.Grad = tensor.FromSlice([]float32{1, 0.25}, 2)
			opt, err := tc.newOpt([]*autograd.Var{a, b})
			if err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(20, func() {
				if err := opt.Step(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per Step", allocs)
			}
		})
	}
}

func BenchmarkRAdamStep(b *testing.B) {
	const n = 1 << 20
	v := autograd.NewVar(tensor.New(n), true)
	v.Grad = tensor.New(n)
	for i := range v.Grad.Data {
		v.Grad.Data[i] = float32(i%7) - 3
	}
	opt, err := NewRAdam([]*autograd.Var{v}, RAdamConfig{LR: 16, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if err != nil {
		b.Fatal(err)
	}
	// Past the first 5 steps, so the benchmark times the rectified update.
	for range 6 {
		if err := opt.Step(); err != nil {
			b.Fatal(err)
		}
	}
	// Per element: read and write the parameter and both moments, read the gradient.
	b.SetBytes(n * 4 * 7)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := opt.Step(); err != nil {
			b.Fatal(err)
		}
	}
}
