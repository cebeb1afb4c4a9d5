package optim

import (
	"fmt"
	"math"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
)

// AdamConfig holds torch.optim.Adam's hyper-parameters (maximize,
// capturable and the fused paths are not offered).
type AdamConfig struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64 // L2 penalty added to the gradient (not AdamW's decoupled decay)
	AMSGrad     bool
}

// DefaultAdamConfig is torch's default: lr 1e-3, betas (0.9, 0.999),
// eps 1e-8, no weight decay.
func DefaultAdamConfig() AdamConfig {
	return AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Adam is torch.optim.Adam; BRECQ uses it for rounding and activation
// step sizes (docs/DESIGN.md, "BRECQ").
type Adam struct {
	params
	cfg   AdamConfig
	mom   Moments
	maxSq [][]float32 // AMSGrad's running maximum of ExpAvgSq; nil without it
}

// AdamState is an Adam's resumable state; MaxExpAvgSq is set only with
// AMSGrad.
type AdamState struct {
	LR float64
	Moments
	MaxExpAvgSq [][]float32
}

// NewAdam returns an Adam over vars; its checks are torch's.
func NewAdam(vars []*autograd.Var, cfg AdamConfig) (*Adam, error) {
	p, err := newParams("Adam", vars, cfg.LR)
	if err != nil {
		return nil, err
	}
	if err := checkBetas("Adam", cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay); err != nil {
		return nil, err
	}
	a := &Adam{params: p, cfg: cfg, mom: newMoments(&p)}
	if cfg.AMSGrad {
		a.maxSq = p.zeroBuffers()
	}
	return a, nil
}

// Step applies one Adam update to every parameter that has a gradient:
// m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2 and
// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), with v replaced by
// its running maximum under AMSGrad.
func (a *Adam) Step() error {
	if err := a.checkGrads("Adam"); err != nil {
		return err
	}
	b1, b2 := float32(a.cfg.Beta1), float32(a.cfg.Beta2)
	keep1, keep2 := float32(1-a.cfg.Beta1), float32(1-a.cfg.Beta2)
	wd, eps := float32(a.cfg.WeightDecay), float32(a.cfg.Eps)
	for i, v := range a.vars {
		if v.Grad == nil {
			continue
		}
		a.mom.Steps[i]++
		t := float64(a.mom.Steps[i])
		stepSize := float32(a.lr / (1 - math.Pow(a.cfg.Beta1, t)))
		bc2Sqrt := float32(math.Sqrt(1 - math.Pow(a.cfg.Beta2, t)))
		var maxSq []float32
		if a.maxSq != nil {
			maxSq = a.maxSq[i]
		}
		kernels.AdamUpdate(v.Value.Data, v.Grad.Data, a.mom.ExpAvg[i], a.mom.ExpAvgSq[i], maxSq, kernels.AdamRule{
			B1: b1, B2: b2, Keep1: keep1, Keep2: keep2, WD: wd, Eps: eps, StepSize: stepSize, BC2Sqrt: bc2Sqrt,
		})
	}
	return nil
}

// State returns a deep copy of the optimizer's state.
func (a *Adam) State() AdamState {
	st := AdamState{LR: a.lr, Moments: a.mom.clone()}
	if a.maxSq != nil {
		st.MaxExpAvgSq = cloneBuffers(a.maxSq)
	}
	return st
}

// SetState restores a state taken from an Adam over parameters of the
// same sizes and configuration.
func (a *Adam) SetState(st AdamState) error {
	if err := checkLR("Adam", st.LR); err != nil {
		return err
	}
	if err := st.Moments.check("Adam", &a.params); err != nil {
		return err
	}
	if a.maxSq != nil {
		if err := a.checkBuffers("Adam", "MaxExpAvgSq", st.MaxExpAvgSq); err != nil {
			return err
		}
	} else if len(st.MaxExpAvgSq) > 0 {
		return fmt.Errorf("optim: Adam: state has AMSGrad maxima but AMSGrad is off")
	}
	a.lr = st.LR
	a.mom.load(st.Moments)
	if a.maxSq != nil {
		copyBuffers(a.maxSq, st.MaxExpAvgSq)
	}
	return nil
}
