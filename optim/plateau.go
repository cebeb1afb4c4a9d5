package optim

import (
	"fmt"
	"math"
)

// Mode says whether a plateau schedule watches a quantity that should go
// down (Min, a loss) or up (Max, an accuracy).
type Mode int

// Plateau modes.
const (
	Min Mode = iota
	Max
)

// ThresholdMode says how a new value must beat the best one to count as
// an improvement: by a fraction of it (Rel) or by a fixed amount (Abs).
type ThresholdMode int

// Threshold modes.
const (
	Rel ThresholdMode = iota
	Abs
)

// PlateauConfig holds torch.optim.lr_scheduler.ReduceLROnPlateau's
// arguments, plus ForgetBest for DGH's variant.
type PlateauConfig struct {
	Mode          Mode
	Factor        float64 // new rate = rate * Factor, Factor < 1
	Patience      int     // bad steps tolerated before lowering the rate
	Threshold     float64
	ThresholdMode ThresholdMode
	Cooldown      int     // steps after a reduction during which bad steps are not counted
	MinLR         float64 // the rate never goes below this
	Eps           float64 // reductions smaller than this are skipped
	// ForgetBest resets the best value (and the bad-step count) whenever
	// the schedule decides to lower the rate, so the next value becomes the
	// new reference: PlateauWithReset (docs/DESIGN.md, "DGH").
	ForgetBest bool
}

// DefaultPlateauConfig is torch's default: mode min, factor 0.1,
// patience 10, threshold 1e-4 relative, no cooldown, min lr 0, eps 1e-8.
func DefaultPlateauConfig() PlateauConfig {
	return PlateauConfig{Mode: Min, Factor: 0.1, Patience: 10, Threshold: 1e-4, ThresholdMode: Rel, Eps: 1e-8}
}

// PlateauWithResetConfig is DGH's per-batch schedule for a run of the
// given number of iterations (docs/DESIGN.md, "DGH"): mode min, factor 0.5,
// patience floor(iterations/50), threshold 1e-4 relative, no cooldown,
// min lr 1e-4, forgetting the best value on every reduction.
func PlateauWithResetConfig(iterations int) PlateauConfig {
	return PlateauConfig{Mode: Min, Factor: 0.5, Patience: iterations / 50, Threshold: 1e-4,
		ThresholdMode: Rel, MinLR: 1e-4, Eps: 1e-8, ForgetBest: true}
}

// ReduceLROnPlateau lowers an optimizer's rate when a watched quantity
// stops improving, exactly as torch's scheduler of that name; with
// ForgetBest it is DGH's PlateauWithReset.
type ReduceLROnPlateau struct {
	opt             LRSetter
	cfg             PlateauConfig
	best            float64
	numBadEpochs    int
	cooldownCounter int
	lastEpoch       int
}

// PlateauState is a ReduceLROnPlateau's resumable state. Best is ±Inf
// until the first step (and after each reset), so encode it with a format
// that keeps infinities (gob, npy; not JSON).
type PlateauState struct {
	Best            float64
	NumBadEpochs    int
	CooldownCounter int
	LastEpoch       int
}

// NewReduceLROnPlateau returns a schedule driving opt.
func NewReduceLROnPlateau(opt LRSetter, cfg PlateauConfig) (*ReduceLROnPlateau, error) {
	switch {
	case cfg.Mode != Min && cfg.Mode != Max:
		return nil, fmt.Errorf("optim: ReduceLROnPlateau: unknown mode %d", cfg.Mode)
	case cfg.ThresholdMode != Rel && cfg.ThresholdMode != Abs:
		return nil, fmt.Errorf("optim: ReduceLROnPlateau: unknown threshold mode %d", cfg.ThresholdMode)
	case !(cfg.Factor < 1):
		return nil, fmt.Errorf("optim: ReduceLROnPlateau: factor %v, want < 1", cfg.Factor)
	case cfg.Patience < 0 || cfg.Cooldown < 0:
		return nil, fmt.Errorf("optim: ReduceLROnPlateau: patience %d and cooldown %d must not be negative",
			cfg.Patience, cfg.Cooldown)
	}
	s := &ReduceLROnPlateau{opt: opt, cfg: cfg}
	s.best = s.worst()
	return s, nil
}

// NewPlateauWithReset returns DGH's schedule (PlateauWithResetConfig)
// for a run of the given number of iterations.
func NewPlateauWithReset(opt LRSetter, iterations int) (*ReduceLROnPlateau, error) {
	if iterations < 0 {
		return nil, fmt.Errorf("optim: PlateauWithReset: %d iterations", iterations)
	}
	return NewReduceLROnPlateau(opt, PlateauWithResetConfig(iterations))
}

// worst is the starting best value: +Inf when minimising, -Inf otherwise.
func (s *ReduceLROnPlateau) worst() float64 {
	if s.cfg.Mode == Min {
		return math.Inf(1)
	}
	return math.Inf(-1)
}

// isBetter reports whether a beats best by the threshold. A NaN is never
// better, so it counts as a bad step, as in torch.
func (s *ReduceLROnPlateau) isBetter(a, best float64) bool {
	thr := s.cfg.Threshold
	switch {
	case s.cfg.Mode == Min && s.cfg.ThresholdMode == Rel:
		return a < best*(1-thr)
	case s.cfg.Mode == Min:
		return a < best-thr
	case s.cfg.ThresholdMode == Rel:
		return a > best*(thr+1)
	default:
		return a > best+thr
	}
}

// Step records one value of the watched quantity and lowers the rate after
// more than Patience bad steps in a row.
func (s *ReduceLROnPlateau) Step(metric float64) {
	s.lastEpoch++
	if s.isBetter(metric, s.best) {
		s.best = metric
		s.numBadEpochs = 0
	} else {
		s.numBadEpochs++
	}
	if s.cooldownCounter > 0 {
		s.cooldownCounter--
		s.numBadEpochs = 0
	}
	if s.numBadEpochs > s.cfg.Patience {
		s.reduce()
		s.cooldownCounter = s.cfg.Cooldown
		s.numBadEpochs = 0
		if s.cfg.ForgetBest {
			s.best = s.worst()
		}
	}
}

// reduce multiplies the rate by Factor, not below MinLR, and skips changes
// of at most Eps.
func (s *ReduceLROnPlateau) reduce() {
	old := s.opt.LR()
	lr := old * s.cfg.Factor
	if s.cfg.MinLR > lr {
		lr = s.cfg.MinLR
	}
	if old-lr > s.cfg.Eps {
		s.opt.SetLR(lr)
	}
}

// State returns the schedule's state.
func (s *ReduceLROnPlateau) State() PlateauState {
	return PlateauState{Best: s.best, NumBadEpochs: s.numBadEpochs, CooldownCounter: s.cooldownCounter, LastEpoch: s.lastEpoch}
}

// SetState restores a state; the optimizer's rate is restored with the
// optimizer's own state.
func (s *ReduceLROnPlateau) SetState(st PlateauState) error {
	if st.NumBadEpochs < 0 || st.CooldownCounter < 0 || st.LastEpoch < 0 {
		return fmt.Errorf("optim: ReduceLROnPlateau: invalid state %+v", st)
	}
	s.best, s.numBadEpochs, s.cooldownCounter, s.lastEpoch = st.Best, st.NumBadEpochs, st.CooldownCounter, st.LastEpoch
	return nil
}
