package optim

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// rateHolder is the smallest LRSetter: what a schedule sees of an optimizer.
type rateHolder struct{ lr float64 }

func (r *rateHolder) LR() float64      { return r.lr }
func (r *rateHolder) SetLR(lr float64) { r.lr = lr }

// TestCosineAnnealingMatchesTorch mirrors the cosine cases of
// schedule_cases() in tools/torchref/optim.py, including steps past TMax
// where torch's recursive form climbs back up.
func TestCosineAnnealingMatchesTorch(t *testing.T) {
	cases := []struct {
		name   string
		tMax   int
		etaMin float64
	}{
		{"cosine_t20", 20, 0},
		{"cosine_t7_min", 7, 0.05},
		{"cosine_t50", 50, 0},
	}
	for _, tc := range cases {
		for _, resumeAt := range []int{0, 9} {
			t.Run(fmt.Sprintf("%s/resume%d", tc.name, resumeAt), func(t *testing.T) {
				want, _ := fixture(t, "sched_"+tc.name+"_lr")
				opt := &rateHolder{lr: want[0]}
				s, err := NewCosineAnnealingLR(opt, tc.tMax, tc.etaMin)
				if err != nil {
					t.Fatal(err)
				}
				if opt.LR() != want[0] {
					t.Fatalf("constructor changed the rate to %v", opt.LR())
				}
				for step := 1; step < len(want); step++ {
					if step == resumeAt {
						st, err := viaGob(s.State())
						if err != nil {
							t.Fatal(err)
						}
						opt = &rateHolder{lr: opt.lr}
						if s, err = NewCosineAnnealingLR(opt, tc.tMax, tc.etaMin); err != nil {
							t.Fatal(err)
						}
						if err := s.SetState(st); err != nil {
							t.Fatal(err)
						}
					}
					s.Step()
					if got := opt.LR(); !cosineClose(got, want[step]) {
						t.Fatalf("step %d: lr %v, torch %v", step, got, want[step])
					}
				}
			})
		}
	}
}

// cosineClose allows the last bits of a cosine to differ: Go's math.Cos is
// not the C library's cos that Python calls, and the recursion carries a
// last-bit difference forward. Everything else in the formula is exact.
func cosineClose(got, want float64) bool {
	return math.Abs(got-want) <= 1e-12*math.Abs(want)+1e-300
}

// plateauCases mirror the plateau cases of schedule_cases() in
// tools/torchref/optim.py (PlateauWithReset written there as a subclass of
// torch's ReduceLROnPlateau).
func plateauCases() []struct {
	name string
	cfg  PlateauConfig
} {
	def := DefaultPlateauConfig()
	with := func(f func(*PlateauConfig)) PlateauConfig {
		c := def
		f(&c)
		return c
	}
	return []struct {
		name string
		cfg  PlateauConfig
	}{
		{"plateau_default", def},
		{"plateau_p2_cool", with(func(c *PlateauConfig) { c.Factor, c.Patience, c.Cooldown, c.MinLR = 0.5, 2, 3, 0.05 })},
		{"plateau_abs", with(func(c *PlateauConfig) {
			c.Factor, c.Patience, c.Threshold, c.ThresholdMode = 0.3, 1, 0.01, Abs
		})},
		{"plateau_eps", with(func(c *PlateauConfig) { c.Factor, c.Patience, c.Eps = 0.5, 0, 1e-7 })},
		{"plateau_max", with(func(c *PlateauConfig) { c.Mode, c.Factor, c.Patience, c.Threshold = Max, 0.2, 3, 1e-3 })},
		{"plateau_negative", with(func(c *PlateauConfig) { c.Factor, c.Patience = 0.5, 3 })},
		{"reset_t1000", PlateauWithResetConfig(1000)},
		{"reset_t100", PlateauWithResetConfig(100)},
		{"reset_t200_noisy", PlateauWithResetConfig(200)},
	}
}

// TestPlateauMatchesTorch compares the rate and the scheduler's best value,
// bad-step count and cooldown counter after every step, bit for bit: every
// value involved is a product, a max or a comparison, so exact agreement
// is the requirement.
func TestPlateauMatchesTorch(t *testing.T) {
	for _, tc := range plateauCases() {
		for _, resumeAt := range []int{0, 37} {
			t.Run(fmt.Sprintf("%s/resume%d", tc.name, resumeAt), func(t *testing.T) {
				losses, _ := fixture(t, "sched_"+tc.name+"_loss")
				lrs, _ := fixture(t, "sched_"+tc.name+"_lr")
				best, _ := fixture(t, "sched_"+tc.name+"_best")
				bad, _ := fixture(t, "sched_"+tc.name+"_bad")
				cool, _ := fixture(t, "sched_"+tc.name+"_cooldown")
				opt := &rateHolder{lr: lrs[0]}
				s, err := NewReduceLROnPlateau(opt, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				reductions := 0
				for i, loss := range losses {
					if i == resumeAt && resumeAt > 0 {
						st, err := viaGob(s.State())
						if err != nil {
							t.Fatal(err)
						}
						opt = &rateHolder{lr: opt.lr}
						if s, err = NewReduceLROnPlateau(opt, tc.cfg); err != nil {
							t.Fatal(err)
						}
						if err := s.SetState(st); err != nil {
							t.Fatal(err)
						}
					}
					before := opt.LR()
					s.Step(loss)
					if opt.LR() != before {
						reductions++
					}
					st := s.State()
					if !sameFloat(opt.LR(), lrs[i+1]) || !sameFloat(st.Best, best[i]) ||
						float64(st.NumBadEpochs) != bad[i] || float64(st.CooldownCounter) != cool[i] {
						t.Fatalf("step %d (loss %v): lr %v best %v bad %d cooldown %d; torch %v %v %v %v",
							i+1, loss, opt.LR(), st.Best, st.NumBadEpochs, st.CooldownCounter, lrs[i+1], best[i], bad[i], cool[i])
					}
					if st.LastEpoch != i+1 {
						t.Fatalf("step %d: last epoch %d", i+1, st.LastEpoch)
					}
				}
				if reductions == 0 {
					t.Fatalf("the loss sequence never lowers the rate; the case tests nothing")
				}
			})
		}
	}
}

// TestPlateauWithResetForgetsBest pins down what separates the schedule of
// docs/DESIGN.md, "DGH" from torch's on the same input: after a reduction the next value
// becomes the best even when it is no better than the old best.
func TestPlateauWithResetForgetsBest(t *testing.T) {
	const iterations = 100 // patience 2
	cfg := PlateauWithResetConfig(iterations)
	if cfg.Patience != 2 || cfg.Factor != 0.5 || cfg.MinLR != 1e-4 || cfg.Threshold != 1e-4 ||
		cfg.ThresholdMode != Rel || cfg.Mode != Min || cfg.Cooldown != 0 || !cfg.ForgetBest {
		t.Fatalf("PlateauWithResetConfig(%d) = %+v", iterations, cfg)
	}
	plain := cfg
	plain.ForgetBest = false
	losses := []float64{1, 2, 2, 2, 1.5, 1.5, 1.5, 1.5}
	cases := []struct {
		cfg      PlateauConfig
		wantLRs  []float64
		wantBest float64
	}{
		// Bad steps 2,2,2 lower the rate; with reset 1.5 becomes the best and
		// three more bad steps are needed.
		{cfg, []float64{16, 16, 16, 8, 8, 8, 8, 4}, math.Inf(1)},
		// Without reset 1.5 is still worse than 1: the rate falls after every
		// third bad step counted from the last reduction.
		{plain, []float64{16, 16, 16, 8, 8, 8, 4, 4}, 1},
	}
	for _, tc := range cases {
		opt := &rateHolder{lr: 16}
		s, err := NewReduceLROnPlateau(opt, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i, loss := range losses {
			s.Step(loss)
			if opt.LR() != tc.wantLRs[i] {
				t.Fatalf("ForgetBest %v step %d: lr %v, want %v", tc.cfg.ForgetBest, i+1, opt.LR(), tc.wantLRs[i])
			}
		}
		if got := s.State().Best; got != tc.wantBest {
			t.Fatalf("ForgetBest %v: best %v, want %v", tc.cfg.ForgetBest, got, tc.wantBest)
		}
	}
}

func TestScheduleConfigErrors(t *testing.T) {
	opt := &rateHolder{lr: 1}
	def := DefaultPlateauConfig()
	with := func(f func(*PlateauConfig)) PlateauConfig {
		c := def
		f(&c)
		return c
	}
	cases := []struct {
		name string
		make func() error
		want string
	}{
		{"cosine T_max 0", func() error { _, err := NewCosineAnnealingLR(opt, 0, 0); return err }, "T_max"},
		{"plateau factor 1", func() error {
			_, err := NewReduceLROnPlateau(opt, with(func(c *PlateauConfig) { c.Factor = 1 }))
			return err
		}, "factor"},
		{"plateau mode", func() error {
			_, err := NewReduceLROnPlateau(opt, with(func(c *PlateauConfig) { c.Mode = 7 }))
			return err
		}, "mode 7"},
		{"plateau threshold mode", func() error {
			_, err := NewReduceLROnPlateau(opt, with(func(c *PlateauConfig) { c.ThresholdMode = 3 }))
			return err
		}, "threshold mode"},
		{"plateau negative patience", func() error {
			_, err := NewReduceLROnPlateau(opt, with(func(c *PlateauConfig) { c.Patience = -1 }))
			return err
		}, "patience"},
		{"reset negative iterations", func() error { _, err := NewPlateauWithReset(opt, -5); return err }, "iterations"},
		{"plateau state", func() error {
			s, err := NewReduceLROnPlateau(opt, def)
			if err != nil {
				return err
			}
			return s.SetState(PlateauState{NumBadEpochs: -1})
		}, "invalid state"},
		{"cosine state", func() error {
			s, err := NewCosineAnnealingLR(opt, 5, 0)
			if err != nil {
				return err
			}
			return s.SetState(CosineState{LastEpoch: -2})
		}, "last epoch"},
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
