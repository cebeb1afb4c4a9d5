package brecq

// The reconstruction driver (docs/DESIGN.md, "BRECQ", steps 4 to 6). The calibration set flows
// through the network unit by unit in two streams: the float model's
// (targets) and the quantized model's (inputs, earlier units already
// quantized). Each unit is reconstructed on its cached quantized inputs
// against its float outputs, then both streams advance past it, so no
// prefix of the network is ever run twice.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// UnitReport is the reconstruction loss of one unit on the whole
// calibration set, before (round-to-nearest weights, or the searched
// activation steps) and after its reconstruction.
type UnitReport struct {
	Phase         Phase
	Unit          string
	Before, After float64
}

// stage is how far a run has got; it is saved with the state.
type stage int

const (
	stageWeights stage = iota
	stageActInit
	stageActs
	stageDone
)

// run is one Quantize call.
type run struct {
	s     settings
	q     *QuantModel
	calib *tensor.Tensor
	model string

	stage stage
	next  int // first job of the stage not yet finished
	// report collects the units reconstructed in this call.
	report []UnitReport

	// progress bookkeeping for the current phase
	phaseStart  time.Time
	itersDone   int
	itersTotal  int
	jobsInPhase int
}

// Quantize runs BRECQ (docs/DESIGN.md, "BRECQ") on model with the calibration
// images calib [N, C, H, W] (normalised like the model's input) and
// returns the quantized network. model itself is not modified.
//
// The weight phase reconstructs every unit's rounding with AdaRound; then
// cfg.AfterWeights sees the weight-only model. With cfg.ActQuant the
// activation steps are initialised and reconstructed next, and the
// result's Mode quantizes both; otherwise it quantizes weights only.
//
// When ctx is cancelled Quantize saves the state (with cfg.StatePath) and
// returns ctx.Err(); a later call with cfg.Resume continues at the unit
// the run stopped in.
func Quantize(ctx context.Context, model *zoo.Model, calib *tensor.Tensor, cfg Config) (*QuantModel, error) {
	s, err := cfg.resolve(calib)
	if err != nil {
		return nil, err
	}
	if model == nil || model.Net == nil {
		return nil, errors.New("brecq: no model")
	}
	q, err := New(model, s.wBits, s.aBits)
	if err != nil {
		return nil, err
	}
	if err := q.checkInput(calib); err != nil {
		return nil, err
	}
	if s.headStem8bit {
		if err := q.setHeadStem8bit(); err != nil {
			return nil, err
		}
	}
	if s.noOutputQuant {
		q.disableOutputQuant()
	}
	r := &run{s: s, q: q, calib: calib, model: model.Name}
	if s.resume {
		if err := r.load(s.statePath); err != nil {
			return nil, err
		}
	}
	if r.stage == stageWeights {
		if err := r.phase(ctx, PhaseWeights); err != nil {
			return nil, err
		}
		r.stage, r.next = stageActInit, 0
		if !s.actQuant {
			r.stage = stageDone
		}
		if err := r.save(); err != nil {
			return nil, err
		}
	}
	q.Mode = Mode{Weights: true}
	q.Report = r.report
	if s.afterWeights != nil {
		if err := s.afterWeights(q); err != nil {
			return nil, err
		}
	}
	if !s.actQuant {
		return q, nil
	}
	if r.stage == stageActInit {
		if err := r.initActs(ctx); err != nil {
			return nil, err
		}
		r.stage, r.next = stageActs, 0
		if err := r.save(); err != nil {
			return nil, err
		}
	}
	if r.stage == stageActs {
		if err := r.phase(ctx, PhaseActivations); err != nil {
			return nil, err
		}
		r.stage, r.next = stageDone, 0
		if err := r.save(); err != nil {
			return nil, err
		}
	}
	q.Mode = Mode{Weights: true, Acts: true}
	q.Report = r.report
	return q, nil
}

// jobs lists the reconstructions of a phase in network order: the units,
// or under LayerReconstruction the layers of each block.
func (r *run) jobs() []Unit {
	var js []Unit
	for _, u := range r.q.Units() {
		if b, ok := u.(*Block); ok && r.s.layerRecon {
			for _, m := range b.Modules() {
				js = append(js, m)
			}
			continue
		}
		js = append(js, u)
	}
	return js
}

// checkInput runs one calibration image through the float network, so
// images of the wrong shape fail here with an error instead of deep in a
// long run.
func (q *QuantModel) checkInput(calib *tensor.Tensor) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("brecq: calibration images %v do not fit %s: %v", calib.Shape, q.Name, p)
		}
	}()
	if calib.Dims() != 4 {
		return fmt.Errorf("brecq: calibration images %v, want [N, C, H, W]", calib.Shape)
	}
	q.forward(autograd.Const(calib.Batch(0, 1)), Mode{})
	return nil
}

// streams holds the calibration set at one point of the network: as the
// float model computes it (fp) and as the quantized model does (q).
type streams struct{ fp, q *tensor.Tensor }

// phase streams the calibration set through the network, reconstructing
// each job not finished yet.
func (r *run) phase(ctx context.Context, ph Phase) error {
	if r.iters(ph) == 0 {
		return nil // nothing to learn: no need to stream the set
	}
	mode := Mode{Weights: true, Acts: ph == PhaseActivations}
	r.startProgress(ph)
	s := &streams{fp: r.calib, q: r.calib}
	idx := 0
	for _, st := range r.q.steps {
		if st.glue != nil {
			s.fp = r.mapBatches(st.glue, s.fp)
			s.q = r.mapBatches(st.glue, s.q)
			continue
		}
		blk, isBlock := st.unit.(*Block)
		if !isBlock || !r.s.layerRecon {
			if err := r.job(ctx, ph, &idx, st.unit, s, mode); err != nil {
				return err
			}
			continue
		}
		// Layer by layer: the main chain in order, then the shortcut
		// conv on the block's input, then the whole block.
		in := *s
		for _, m := range blk.Main {
			if err := r.job(ctx, ph, &idx, m, s, mode); err != nil {
				return err
			}
		}
		if blk.Downsample != nil {
			ds := in
			if err := r.job(ctx, ph, &idx, blk.Downsample, &ds, mode); err != nil {
				return err
			}
		}
		s.fp = r.forwardAll(blk, in.fp, Mode{})
		s.q = r.forwardAll(blk, in.q, mode)
	}
	return nil
}

// job reconstructs u (unless an earlier run did) on the quantized inputs
// s.q against the float outputs for s.fp, and moves both streams past u.
// The float input is let go as soon as the targets exist, so at most
// three activation-sized tensors of the calibration set are alive.
func (r *run) job(ctx context.Context, ph Phase, idx *int, u Unit, s *streams, mode Mode) error {
	if err := ctx.Err(); err != nil {
		if serr := r.save(); serr != nil {
			return fmt.Errorf("%w (and %v)", err, serr)
		}
		return err
	}
	i := *idx
	*idx++
	s.fp = r.forwardAll(u, s.fp, Mode{})
	var qOut *tensor.Tensor
	if i >= r.next {
		p := r.lossP(ph)
		if r.learns(ph, u) {
			before := lpLoss(r.forwardAll(u, s.q, mode), s.fp, p)
			if err := r.reconstruct(ctx, ph, i, u, s.q, s.fp); err != nil {
				if ctx.Err() != nil {
					if serr := r.save(); serr != nil {
						return fmt.Errorf("%w (and %v)", err, serr)
					}
				}
				return err
			}
			qOut = r.forwardAll(u, s.q, mode)
			r.report = append(r.report, UnitReport{Phase: ph, Unit: u.UnitName(), Before: before, After: lpLoss(qOut, s.fp, p)})
		}
		r.next = i + 1
		if err := r.save(); err != nil {
			return err
		}
	}
	if qOut == nil {
		qOut = r.forwardAll(u, s.q, mode)
	}
	s.q = qOut
	return nil
}

func (r *run) lossP(ph Phase) float64 {
	if ph == PhaseWeights {
		return weightP
	}
	return r.s.p
}

// iters is the number of steps per unit of phase ph.
func (r *run) iters(ph Phase) int {
	if ph == PhaseWeights {
		return r.s.iters
	}
	return r.s.itersA
}

// learns reports whether u has anything to reconstruct in phase ph.
func (r *run) learns(ph Phase, u Unit) bool {
	if r.iters(ph) == 0 {
		return false
	}
	if ph == PhaseWeights {
		return len(r.roundable(u)) > 0
	}
	return len(r.learnableActs(u)) > 0
}

// roundable lists the modules of u whose rounding is learned.
func (r *run) roundable(u Unit) []*QuantModule {
	var ms []*QuantModule
	for _, m := range u.Modules() {
		if !m.SkipReconstruction {
			ms = append(ms, m)
		}
	}
	return ms
}

// learnableActs lists the initialised activation quantizers of u; a unit
// holding a module left out of the reconstruction learns none.
func (r *run) learnableActs(u Unit) []*ActQuantizer {
	for _, m := range u.Modules() {
		if m.SkipReconstruction {
			return nil
		}
	}
	var qs []*ActQuantizer
	for _, a := range u.ActQuantizers() {
		if a.Ready() {
			qs = append(qs, a)
		}
	}
	return qs
}

// reconstruct optimises u's rounding (weights phase) or activation steps
// (activations phase) on the cached inputs in and targets target. On
// cancellation the unit's quantizers go back to how they were before.
func (r *run) reconstruct(ctx context.Context, ph Phase, jobIdx int, u Unit, in, target *tensor.Tensor) error {
	rng := tensor.NewRNG(r.s.seed ^ (uint64(ph)+1)*0x9e3779b97f4a7c15 ^ uint64(jobIdx+1)*0xbf58476d1ce4e5b9)
	smp := newSampler(in.Shape[0], min(r.s.batch, in.Shape[0]))
	iters := r.iters(ph)
	var params []*autograd.Var
	var undo func()
	var mode Mode
	var sched *optim.CosineAnnealingLR
	lr := WeightLR
	if ph == PhaseWeights {
		mods := r.roundable(u)
		for _, m := range mods {
			m.WQ.startAdaRound(m.Weight)
			params = append(params, m.WQ.Alpha)
		}
		undo = func() {
			for _, m := range mods {
				m.WQ.Alpha, m.WQ.Soft = nil, false
			}
		}
		mode = Mode{Weights: true}
	} else {
		acts := r.learnableActs(u)
		saved := make([]float32, len(acts))
		for i, a := range acts {
			saved[i] = a.Delta.Value.Data[0]
			a.learn = true
			params = append(params, a.Delta)
		}
		undo = func() {
			for i, a := range acts {
				a.Delta.Value.Data[0] = saved[i]
			}
		}
		defer func() {
			for _, a := range acts {
				a.learn = false
			}
		}()
		mode = Mode{Weights: true, Acts: true}
		lr = r.s.lr
	}
	cfg := optim.DefaultAdamConfig()
	cfg.LR = lr
	opt, err := optim.NewAdam(params, cfg)
	if err != nil {
		undo()
		return fmt.Errorf("brecq: %s: %w", u.UnitName(), err)
	}
	if ph == PhaseActivations {
		if sched, err = optim.NewCosineAnnealingLR(opt, iters, 0); err != nil {
			undo()
			return fmt.Errorf("brecq: %s: %w", u.UnitName(), err)
		}
	}
	xb := tensor.New(append([]int{smp.k}, in.Shape[1:]...)...)
	yb := tensor.New(append([]int{smp.k}, target.Shape[1:]...)...)
	p := float32(r.lossP(ph))
	arena := autograd.NewArena()
	for t := 1; t <= iters; t++ {
		if err := ctx.Err(); err != nil {
			undo()
			return err
		}
		idx := smp.next(rng)
		gather(xb, in, idx)
		gather(yb, target, idx)
		var beta float64 // 0: no rounding term
		if ph == PhaseWeights {
			if b, active := Temperature(t, iters, r.s.warmup, r.s.bStart, r.s.bEnd); active {
				beta = b
			}
		}
		rec, roundLoss, err := reconstructionStep(u, mode, xb, yb, p, opt, params, beta, r.s.weight, arena)
		if err != nil {
			undo()
			return fmt.Errorf("brecq: %s step %d: %w", u.UnitName(), t, err)
		}
		if sched != nil {
			sched.Step()
		}
		if ph == PhaseActivations {
			keepPositive(params)
		}
		r.report1(ph, u, jobIdx, t, iters, rec, roundLoss, beta)
	}
	if ph == PhaseWeights {
		for _, m := range r.roundable(u) {
			m.WQ.Soft = false
		}
	}
	return nil
}

// reconstructionStep is one step on the mini-batch xb with targets yb:
// forward under mode, the Lp reconstruction loss, backward, and, when
// beta > 0, AdaRound's rounding term weight*sum(1-|2h-1|^beta) on every
// parameter, then the optimizer update. It returns both losses.
//
// Every step builds the same graph, so its activations and their
// gradients (and the soft weights computed from the parameters) live in
// arena and are handed back when the step ends; nothing computed in the
// step outlives it. A nil arena allocates on the heap.
func reconstructionStep(u Unit, mode Mode, xb, yb *tensor.Tensor, p float32, opt *optim.Adam, params []*autograd.Var, beta, weight float64, arena *autograd.Arena) (rec, round float64, err error) {
	for _, a := range params {
		a.SetArena(arena)
	}
	defer func() {
		for _, a := range params {
			a.SetArena(nil) // later inference must not allocate in the arena
		}
		if arena != nil {
			arena.Reset()
		}
	}()
	opt.ZeroGrad()
	x := autograd.Const(xb)
	x.SetArena(arena)
	out := u.Forward(x, mode)
	loss := autograd.LpLoss(out, autograd.Const(yb), p)
	if err := loss.Backward(); err != nil {
		return 0, 0, err
	}
	if beta > 0 {
		// The rounding term acts on the alphas directly, so one kernel
		// pass gives its value and adds its gradient to the
		// reconstruction gradient, without a second pass through the tape.
		for _, a := range params {
			if a.Grad == nil {
				a.Grad = tensor.New(a.Value.Shape...)
			}
			round += float64(kernels.AdaRoundRegularizer(a.Value.Data, float32(beta), a.Grad.Data, float32(weight)))
		}
	}
	if err := opt.Step(); err != nil {
		return 0, 0, err
	}
	return float64(loss.Value.Data[0]), round, nil
}

// keepPositive stops a learned step from reaching zero or below, where the
// quantizer is undefined; the reference divides by delta+1e-8 instead.
func keepPositive(deltas []*autograd.Var) {
	for _, d := range deltas {
		if v := d.Value.Data[0]; !(v > 1e-8) {
			d.Value.Data[0] = 1e-8
		}
	}
}

// Temperature is AdaRound's schedule at step t (1-based) of iters (docs/DESIGN.md,
// "BRECQ", step 4): the rounding term is active from t >= warmup*iters on, and beta
// stays at bStart until then and falls linearly to bEnd at t = iters.
func Temperature(t, iters int, warmup, bStart, bEnd float64) (beta float64, active bool) {
	start := warmup * float64(iters)
	active = float64(t) >= start
	if float64(t) < start {
		return bStart, active
	}
	rel := (float64(t) - start) / (float64(iters) - start)
	return bEnd + (bStart-bEnd)*max(0, 1-rel), active
}

// initActs initialises every activation quantizer by the scale search on
// its inputs over the first ActInitSamples calibration images, in network
// order with the upstream quantizers already on (docs/DESIGN.md, "BRECQ", step 6).
func (r *run) initActs(ctx context.Context) error {
	x := r.calib.Batch(0, r.s.actInit)
	mode := Mode{Weights: true, Acts: true}
	for _, st := range r.q.steps {
		if err := ctx.Err(); err != nil {
			if serr := r.save(); serr != nil {
				return fmt.Errorf("%w (and %v)", err, serr)
			}
			return err
		}
		if st.glue != nil {
			x = r.mapBatches(st.glue, x)
			continue
		}
		for _, a := range st.unit.ActQuantizers() {
			if a.Ready() {
				continue
			}
			// One image first, to size the buffer for all of them.
			var buf []float32
			a.collect = &buf
			r.forwardAll(st.unit, x.Batch(0, 1), mode)
			buf = make([]float32, 0, len(buf)*x.Shape[0])
			r.forwardAll(st.unit, x, mode)
			a.collect = nil
			d, z, err := ScaleSearch(buf, a.Bits)
			if err != nil {
				return fmt.Errorf("brecq: %s: %w", st.unit.UnitName(), err)
			}
			a.Set(d, z)
		}
		x = r.forwardAll(st.unit, x, mode)
	}
	return nil
}

// forwardAll runs u over x in batches, without a tape.
func (r *run) forwardAll(u Unit, x *tensor.Tensor, m Mode) *tensor.Tensor {
	return r.mapBatches(func(v *autograd.Var) *autograd.Var { return u.Forward(v, m) }, x)
}

// mapBatches applies f to x batch by batch and stacks the results. The
// batches' intermediate values are recycled through an arena: only the
// stacked result is new memory.
func (r *run) mapBatches(f func(*autograd.Var) *autograd.Var, x *tensor.Tensor) *tensor.Tensor {
	n, bs := x.Shape[0], max(r.s.batch, 32)
	arena := autograd.NewArena()
	var out *tensor.Tensor
	for lo := 0; lo < n; lo += bs {
		hi := min(lo+bs, n)
		in := autograd.Const(x.Batch(lo, hi))
		in.SetArena(arena)
		y := f(in).Value
		if out == nil {
			out = tensor.New(append([]int{n}, y.Shape[1:]...)...)
		}
		per := y.Numel() / (hi - lo)
		copy(out.Data[lo*per:hi*per], y.Data)
		arena.Reset()
	}
	return out
}

// lpLoss is LpLoss on whole tensors: |a-b|^p summed over axis 1, mean
// over the rest.
func lpLoss(a, b *tensor.Tensor, p float64) float64 {
	rows := a.Numel() / a.Shape[1]
	return kernels.LpDistance(a.Data, b.Data, float32(p)) / float64(rows)
}

// sampler draws mini-batches of k distinct samples out of n, like
// torch.randperm(n)[:k].
type sampler struct {
	perm []int
	k    int
}

func newSampler(n, k int) *sampler {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return &sampler{perm: p, k: k}
}

// next shuffles the first k positions (a partial Fisher-Yates) and
// returns them.
func (s *sampler) next(rng *tensor.RNG) []int {
	n := len(s.perm)
	for i := range s.k {
		j := i + rng.Intn(n-i)
		s.perm[i], s.perm[j] = s.perm[j], s.perm[i]
	}
	return s.perm[:s.k]
}

// gather copies the samples idx of src into dst.
func gather(dst, src *tensor.Tensor, idx []int) {
	per := src.Numel() / src.Shape[0]
	for i, j := range idx {
		copy(dst.Data[i*per:(i+1)*per], src.Data[j*per:(j+1)*per])
	}
}

// startProgress resets the time estimate for phase ph.
func (r *run) startProgress(ph Phase) {
	r.phaseStart = time.Now()
	r.itersDone = 0
	js := r.jobs()
	r.jobsInPhase = len(js)
	r.itersTotal = 0
	for i, u := range js {
		if i >= r.next && r.learns(ph, u) {
			r.itersTotal += r.iters(ph)
		}
	}
}

// report1 sends one Progress report.
func (r *run) report1(ph Phase, u Unit, jobIdx, t, iters int, rec, round, beta float64) {
	r.itersDone++
	if r.s.progress == nil {
		return
	}
	var left time.Duration
	if r.itersDone > 0 {
		per := time.Since(r.phaseStart) / time.Duration(r.itersDone)
		left = per * time.Duration(max(r.itersTotal-r.itersDone, 0))
	}
	r.s.progress(Progress{
		Phase: ph, Unit: u.UnitName(), UnitIndex: jobIdx, Units: r.jobsInPhase,
		Iteration: t, Iterations: iters, RecLoss: rec, RoundLoss: round, Beta: beta, Remaining: left,
	})
}
