package optim

import (
	"fmt"

	"github.com/dghcore/dghcore/autograd"
)

// SGDConfig holds torch.optim.SGD's hyper-parameters (maximize is not
// offered). The zero value is plain gradient descent at rate 0.
type SGDConfig struct {
	LR          float64
	Momentum    float64
	Dampening   float64
	WeightDecay float64
	Nesterov    bool
}

// SGD is stochastic gradient descent with optional momentum, dampening,
// Nesterov momentum and L2 weight decay, as torch.optim.SGD.
type SGD struct {
	params
	cfg SGDConfig
	// buf[i] is parameter i's momentum buffer, allocated up front so Step
	// does not allocate; hasBuf[i] says whether torch would have one yet
	// (its first step copies the gradient instead of decaying).
	buf    [][]float32
	hasBuf []bool
}

// SGDState is an SGD's resumable state. Momentum[i] is empty while
// parameter i has no momentum buffer yet (always empty without momentum);
// empty rather than nil, so that encodings which do not keep nil apart
// from empty (gob) round-trip.
type SGDState struct {
	LR       float64
	Momentum [][]float32
}

// NewSGD returns an SGD over vars; its checks are torch's.
func NewSGD(vars []*autograd.Var, cfg SGDConfig) (*SGD, error) {
	p, err := newParams("SGD", vars, cfg.LR)
	if err != nil {
		return nil, err
	}
	switch {
	case !(cfg.Momentum >= 0):
		return nil, fmt.Errorf("optim: SGD: invalid momentum %v", cfg.Momentum)
	case !(cfg.WeightDecay >= 0):
		return nil, fmt.Errorf("optim: SGD: invalid weight decay %v", cfg.WeightDecay)
	case cfg.Nesterov && (cfg.Momentum <= 0 || cfg.Dampening != 0):
		return nil, fmt.Errorf("optim: SGD: Nesterov momentum needs momentum > 0 and zero dampening")
	}
	s := &SGD{params: p, cfg: cfg, hasBuf: make([]bool, len(vars))}
	if cfg.Momentum != 0 {
		s.buf = p.zeroBuffers()
	}
	return s, nil
}

// Step applies p -= lr * d, where d is the gradient plus weight decay,
// replaced by the momentum buffer (or gradient + momentum * buffer with
// Nesterov) when momentum is on.
func (s *SGD) Step() error {
	if err := s.checkGrads("SGD"); err != nil {
		return err
	}
	lr := float32(s.lr)
	wd := float32(s.cfg.WeightDecay)
	mom := float32(s.cfg.Momentum)
	keep := float32(1 - s.cfg.Dampening)
	for i, v := range s.vars {
		if v.Grad == nil {
			continue
		}
		p, g := v.Value.Data, v.Grad.Data
		var buf []float32
		first := false
		if mom != 0 {
			buf = s.buf[i]
			first = !s.hasBuf[i]
			s.hasBuf[i] = true
		}
		for j := range p {
			d := g[j]
			if wd != 0 {
				d += wd * p[j]
			}
			if buf != nil {
				if first {
					buf[j] = d
				} else {
					buf[j] = buf[j]*mom + keep*d
				}
				if s.cfg.Nesterov {
					d += mom * buf[j]
				} else {
					d = buf[j]
				}
			}
			p[j] -= lr * d
		}
	}
	return nil
}

// State returns a deep copy of the optimizer's state.
func (s *SGD) State() SGDState {
	st := SGDState{LR: s.lr, Momentum: make([][]float32, len(s.vars))}
	for i := range s.vars {
		if s.hasBuf[i] {
			st.Momentum[i] = append([]float32(nil), s.buf[i]...)
		}
	}
	return st
}

// SetState restores a state taken from an SGD over parameters of the same
// sizes and configuration.
func (s *SGD) SetState(st SGDState) error {
	if err := checkLR("SGD", st.LR); err != nil {
		return err
	}
	if len(st.Momentum) != len(s.vars) {
		return fmt.Errorf("optim: SGD: state has %d momentum buffers for %d parameters", len(st.Momentum), len(s.vars))
	}
	for i, b := range st.Momentum {
		switch {
		case len(b) == 0:
		case s.buf == nil:
			return fmt.Errorf("optim: SGD: state has a momentum buffer for parameter %d but momentum is off", i)
		case len(b) != len(s.vars[i].Value.Data):
			return fmt.Errorf("optim: SGD: momentum buffer %d has %d values, parameter has %d",
				i, len(b), len(s.vars[i].Value.Data))
		}
	}
	s.lr = st.LR
	for i, b := range st.Momentum {
		s.hasBuf[i] = len(b) > 0
		if len(b) > 0 {
			copy(s.buf[i], b)
		}
	}
	return nil
}
