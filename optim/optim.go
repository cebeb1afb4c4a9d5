// Package optim holds dghcore's optimizers (SGD, Adam, RAdam) and
// learning-rate schedules (CosineAnnealingLR, ReduceLROnPlateau and DGH's
// PlateauWithReset), each following torch.optim step for step so a run
// here tracks the reference implementations (docs/DESIGN.md, "DGH" and "BRECQ").
//
// Optimizers update the Value of the *autograd.Var parameters they were
// given from their Grad; a parameter whose Grad is nil is skipped for that
// step, its state untouched, as PyTorch skips a parameter whose .grad is
// None. Every optimizer and schedule exports its state as a plain struct
// and accepts it back, so a long run can be saved and resumed.
package optim

import (
	"fmt"

	"github.com/dghcore/dghcore/autograd"
)

// LRSetter is the part of an optimizer that a schedule drives.
type LRSetter interface {
	LR() float64
	SetLR(lr float64)
}

// Optimizer is what every optimizer here offers.
type Optimizer interface {
	LRSetter
	// Step applies one update from the parameters' current gradients.
	Step() error
	// ZeroGrad clears every parameter's gradient (keeping its buffer).
	ZeroGrad()
}

// params is the parameter list and learning rate shared by the optimizers.
// Learning rates are float64 like PyTorch's Python floats, so schedules
// reproduce torch's values exactly; the update kernels run in float32.
type params struct {
	vars []*autograd.Var
	lr   float64
}

func newParams(name string, vars []*autograd.Var, lr float64) (params, error) {
	if err := checkLR(name, lr); err != nil {
		return params{}, err
	}
	for i, v := range vars {
		if v == nil || v.Value == nil {
			return params{}, fmt.Errorf("optim: %s: parameter %d has no value", name, i)
		}
	}
	return params{vars: vars, lr: lr}, nil
}

func checkLR(name string, lr float64) error {
	if !(lr >= 0) {
		return fmt.Errorf("optim: %s: invalid learning rate %v", name, lr)
	}
	return nil
}

// LR is the current learning rate.
func (p *params) LR() float64 { return p.lr }

// SetLR changes the learning rate used from the next Step on.
func (p *params) SetLR(lr float64) { p.lr = lr }

// ZeroGrad clears every parameter's accumulated gradient.
func (p *params) ZeroGrad() {
	for _, v := range p.vars {
		v.ZeroGrad()
	}
}

// checkGrads verifies every gradient matches its parameter before a step
// touches anything, so a bad gradient leaves the state as it was.
func (p *params) checkGrads(name string) error {
	for i, v := range p.vars {
		if v.Grad != nil && len(v.Grad.Data) != len(v.Value.Data) {
			return fmt.Errorf("optim: %s: parameter %d has %d values but a gradient of %d",
				name, i, len(v.Value.Data), len(v.Grad.Data))
		}
	}
	return nil
}

// checkBuffers verifies that an imported per-parameter state buffer list
// matches the parameters. what names the buffer in errors.
func (p *params) checkBuffers(name, what string, bufs [][]float32) error {
	if len(bufs) != len(p.vars) {
		return fmt.Errorf("optim: %s: state has %d %s buffers for %d parameters", name, len(bufs), what, len(p.vars))
	}
	for i, b := range bufs {
		if len(b) != len(p.vars[i].Value.Data) {
			return fmt.Errorf("optim: %s: %s buffer %d has %d values, parameter has %d",
				name, what, i, len(b), len(p.vars[i].Value.Data))
		}
	}
	return nil
}

// checkSteps verifies an imported per-parameter step counter list.
func (p *params) checkSteps(name string, steps []int64) error {
	if len(steps) != len(p.vars) {
		return fmt.Errorf("optim: %s: state has %d step counters for %d parameters", name, len(steps), len(p.vars))
	}
	for i, s := range steps {
		if s < 0 {
			return fmt.Errorf("optim: %s: parameter %d has step counter %d", name, i, s)
		}
	}
	return nil
}

// zeroBuffers allocates one zeroed buffer per parameter.
func (p *params) zeroBuffers() [][]float32 {
	bufs := make([][]float32, len(p.vars))
	for i, v := range p.vars {
		bufs[i] = make([]float32, len(v.Value.Data))
	}
	return bufs
}

// cloneBuffers deep-copies a buffer list (nil entries stay nil).
func cloneBuffers(bufs [][]float32) [][]float32 {
	out := make([][]float32, len(bufs))
	for i, b := range bufs {
		if b != nil {
			out[i] = append([]float32(nil), b...)
		}
	}
	return out
}

// copyBuffers copies src into dst element-wise; shapes already checked.
func copyBuffers(dst, src [][]float32) {
	for i := range dst {
		copy(dst[i], src[i])
	}
}

// checkBetas validates Adam-style hyper-parameters as torch does.
func checkBetas(name string, beta1, beta2, eps, weightDecay float64) error {
	switch {
	case !(eps >= 0):
		return fmt.Errorf("optim: %s: invalid epsilon %v", name, eps)
	case !(beta1 >= 0 && beta1 < 1):
		return fmt.Errorf("optim: %s: invalid beta1 %v, want [0, 1)", name, beta1)
	case !(beta2 >= 0 && beta2 < 1):
		return fmt.Errorf("optim: %s: invalid beta2 %v, want [0, 1)", name, beta2)
	case !(weightDecay >= 0):
		return fmt.Errorf("optim: %s: invalid weight decay %v", name, weightDecay)
	}
	return nil
}
