package optim

import (
	"math"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
)

// RAdamConfig holds torch.optim.RAdam's hyper-parameters (decoupled weight
// decay is not offered).
type RAdamConfig struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64 // L2 penalty added to the gradient
}

// DefaultRAdamConfig is torch's default: lr 1e-3, betas (0.9, 0.999),
// eps 1e-8, no weight decay. DGH uses it with lr 16 (docs/DESIGN.md, "DGH").
func DefaultRAdamConfig() RAdamConfig {
	return RAdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// RAdam is torch.optim.RAdam (Liu et al., "On the Variance of the Adaptive
// Learning Rate and Beyond"): Adam whose adaptive step is scaled by a
// variance rectification term, and which falls back to bias-corrected
// momentum SGD while too few steps have been seen for that term to exist.
type RAdam struct {
	params
	cfg RAdamConfig
	mom Moments
}

// RAdamState is an RAdam's resumable state.
type RAdamState struct {
	LR float64
	Moments
}

// NewRAdam returns an RAdam over vars; its checks are torch's.
func NewRAdam(vars []*autograd.Var, cfg RAdamConfig) (*RAdam, error) {
	p, err := newParams("RAdam", vars, cfg.LR)
	if err != nil {
		return nil, err
	}
	if err := checkBetas("RAdam", cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay); err != nil {
		return nil, err
	}
	return &RAdam{params: p, cfg: cfg, mom: newMoments(&p)}, nil
}

// Step applies one RAdam update to every parameter that has a gradient.
// With rho_inf = 2/(1-b2) - 1 and rho_t = rho_inf - 2 t b2^t/(1-b2^t), the
// update is lr * mhat * r * sqrt(1-b2^t)/(sqrt(v)+eps) when rho_t > 5
// (r the rectification term) and plain lr * mhat otherwise.
func (r *RAdam) Step() error {
	if err := r.checkGrads("RAdam"); err != nil {
		return err
	}
	b1, b2 := float32(r.cfg.Beta1), float32(r.cfg.Beta2)
	keep1, keep2 := float32(1-r.cfg.Beta1), float32(1-r.cfg.Beta2)
	wd, eps, lr := float32(r.cfg.WeightDecay), float32(r.cfg.Eps), float32(r.lr)
	rhoInf := 2/(1-r.cfg.Beta2) - 1
	for i, v := range r.vars {
		if v.Grad == nil {
			continue
		}
		r.mom.Steps[i]++
		t := float64(r.mom.Steps[i])
		bc1 := float32(1 - math.Pow(r.cfg.Beta1, t))
		pow2 := math.Pow(r.cfg.Beta2, t)
		bc2 := 1 - pow2
		rhoT := rhoInf - 2*t*pow2/bc2
		rectified := rhoT > 5
		var rect, bc2Sqrt float32
		if rectified {
			rect = float32(math.Sqrt((rhoT - 4) * (rhoT - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rhoT)))
			bc2Sqrt = float32(math.Sqrt(bc2))
		}
		kernels.RAdamUpdate(v.Value.Data, v.Grad.Data, r.mom.ExpAvg[i], r.mom.ExpAvgSq[i], kernels.RAdamRule{
			B1: b1, B2: b2, Keep1: keep1, Keep2: keep2, WD: wd, Eps: eps,
			LR: lr, BC1: bc1, BC2Sqrt: bc2Sqrt, Rect: rect, Rectified: rectified,
		})
	}
	return nil
}

// State returns a deep copy of the optimizer's state.
func (r *RAdam) State() RAdamState {
	return RAdamState{LR: r.lr, Moments: r.mom.clone()}
}

// SetState restores a state taken from an RAdam over parameters of the
// same sizes.
func (r *RAdam) SetState(st RAdamState) error {
	if err := checkLR("RAdam", st.LR); err != nil {
		return err
	}
	if err := st.Moments.check("RAdam", &r.params); err != nil {
		return err
	}
	r.lr = st.LR
	r.mom.load(st.Moments)
	return nil
}
