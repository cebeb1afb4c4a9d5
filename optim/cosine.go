package optim

import (
	"fmt"
	"math"
)

// CosineAnnealingLR is torch.optim.lr_scheduler.CosineAnnealingLR, used by
// BRECQ's activation-step learning (docs/DESIGN.md, "BRECQ"). Like torch it updates
// the rate recursively from the optimizer's current rate, so its values
// match torch's step by step (they differ from the closed form in the last
// bits, and keep following the cosine back up after TMax steps).
type CosineAnnealingLR struct {
	opt       LRSetter
	tMax      int
	etaMin    float64
	baseLR    float64
	lastEpoch int
}

// CosineState is a CosineAnnealingLR's resumable state.
type CosineState struct {
	BaseLR    float64 // the optimizer's rate when the schedule started
	LastEpoch int     // number of Step calls so far
}

// NewCosineAnnealingLR starts a schedule from opt's current rate down to
// etaMin over tMax steps. Like torch's constructor, it leaves the rate as
// it is: the first Step moves it.
func NewCosineAnnealingLR(opt LRSetter, tMax int, etaMin float64) (*CosineAnnealingLR, error) {
	if tMax <= 0 {
		return nil, fmt.Errorf("optim: CosineAnnealingLR: T_max %d, want > 0", tMax)
	}
	return &CosineAnnealingLR{opt: opt, tMax: tMax, etaMin: etaMin, baseLR: opt.LR()}, nil
}

// Step advances one epoch and sets the optimizer's rate.
func (c *CosineAnnealingLR) Step() {
	c.lastEpoch++
	e, tMax := float64(c.lastEpoch), float64(c.tMax)
	lr := c.opt.LR()
	// float64(...) around products stops the compiler fusing them with the
	// following addition (arm64), which would change the last bits.
	if (c.lastEpoch-1-c.tMax)%(2*c.tMax) == 0 {
		// One step past a minimum the ratio below would divide by zero;
		// torch adds the first step of the next half-period instead.
		lr += (c.baseLR - c.etaMin) * (1 - math.Cos(math.Pi/tMax)) / 2
	} else {
		ratio := (1 + math.Cos(math.Pi*e/tMax)) / (1 + math.Cos(math.Pi*(e-1)/tMax))
		lr = float64(ratio*(lr-c.etaMin)) + c.etaMin
	}
	c.opt.SetLR(lr)
}

// State returns the schedule's state.
func (c *CosineAnnealingLR) State() CosineState {
	return CosineState{BaseLR: c.baseLR, LastEpoch: c.lastEpoch}
}

// SetState restores a state; the optimizer's rate is restored with the
// optimizer's own state.
func (c *CosineAnnealingLR) SetState(st CosineState) error {
	if st.LastEpoch < 0 {
		return fmt.Errorf("optim: CosineAnnealingLR: state has last epoch %d", st.LastEpoch)
	}
	c.baseLR, c.lastEpoch = st.BaseLR, st.LastEpoch
	return nil
}
