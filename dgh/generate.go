package dgh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// Generate synthesises cfg.NImages calibration images for model from its
// BatchNorm statistics alone (docs/DESIGN.md, "DGH"). The result is
// N x C x S x S, normalised like the model's input.
//
// Cancelling ctx stops the run between two batch steps; when cfg.StatePath
// is set the state is saved first, and Generate with cfg.Resume continues
// from it and ends with exactly the images an uninterrupted run gives.
// The returned error then wraps ctx's error.
//
// Generate hooks the model's BatchNorm2d layers for the duration of the
// call and turns off gradients of any model parameter that wants one.
// The model's parameters must not change while it runs: they are frozen
// (kernels.FreezeWeights), so each convolution packs its weights once.
func Generate(ctx context.Context, model *zoo.Model, cfg Config) (*tensor.Tensor, error) {
	if model == nil || model.Net == nil {
		return nil, errors.New("dgh: no model")
	}
	s, err := cfg.resolve(model.Spec)
	if err != nil {
		return nil, err
	}
	if cfg.Resume && cfg.StatePath == "" {
		return nil, errors.New("dgh: Resume needs a StatePath")
	}
	g, err := newGenerator(model, s)
	if err != nil {
		return nil, err
	}
	defer g.close()
	if cfg.StatePath != "" {
		g.digest = layers.Digest(model.Net)
	}
	if cfg.Resume {
		err = g.load(ctx, cfg.StatePath)
	} else {
		err = g.start(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := g.run(ctx, cfg); err != nil {
		return nil, err
	}
	return g.finalImages(), nil
}

// generator is the whole optimisation state of one DGH run.
type generator struct {
	s      settings
	net    layers.Module
	rec    *recorder
	lastBN int // index into rec.layers of the output loss's layer
	pipe   *pipeline
	// arena recycles the activations and gradients of one forward (and
	// backward) pass for the next; it is reset once the pass is done.
	arena *autograd.Arena

	imageMean, imageStd []float32 // layer 0 targets: mean 0, variance 1

	rng     *tensor.RNG
	images  *tensor.Tensor // N x C x (S+P) x (S+P); batches are views
	batches []*batch
	stats   []batchStats // per batch, of its finalised images
	// stale marks batches stepped since their statistics were measured.
	// Step 8 of docs/DESIGN.md, "DGH" is done lazily: a batch's statistics are
	// only read by the steps of other batches (its own step replaces them
	// by live ones) and the images do not change in between, so measuring
	// just before they are read gives the same numbers and skips the
	// forward pass whenever a batch is stepped twice in a row (always,
	// with a single batch).
	stale []bool

	iter  int   // completed iterations
	pos   int   // batches of the current iteration already stepped
	order []int // the current iteration's batch order

	// thaw ends the freeze of the model's parameters (close).
	thaw func()

	// digest identifies the model's weights in a saved state.
	digest string
	// lastSave times the periodic saves.
	lastSave time.Time
}

// batch is one generation batch with its own optimizer and scheduler.
type batch struct {
	x     *autograd.Var
	opt   *optim.RAdam
	sched *optim.ReduceLROnPlateau
}

func newGenerator(model *zoo.Model, s settings) (*generator, error) {
	net := model.Net
	for _, p := range layers.Parameters(net) {
		if p != nil && p.RequiresGrad() {
			layers.SetRequiresGrad(net, false)
			break
		}
	}
	rec, err := newRecorder(net)
	if err != nil {
		return nil, err
	}
	g := &generator{s: s, net: net, rec: rec, lastBN: len(rec.layers) - 1, pipe: newPipeline(&s), arena: autograd.NewArena(), thaw: func() {}}
	if name := model.Spec.LastBN; name != "" {
		g.lastBN = -1
		for i, l := range rec.layers {
			if l.name == name {
				g.lastBN = i
			}
		}
		if g.lastBN < 0 {
			rec.remove()
			return nil, fmt.Errorf("dgh: the model spec names %q as its last BatchNorm2d, but there is no such layer", name)
		}
	}
	// DGH optimises the images only: the weights stay as they are for
	// the whole run.
	var ws [][]float32
	for _, p := range layers.Parameters(net) {
		if p != nil && p.Value != nil {
			ws = append(ws, p.Value.Data)
		}
	}
	g.thaw = kernels.FreezeWeights(ws...)
	c := s.channels()
	g.imageMean = make([]float32, c)
	ones := make([]float32, c)
	for i := range ones {
		ones[i] = 1
	}
	g.imageStd = grownSqrt(ones)
	return g, nil
}

func (g *generator) close() {
	g.rec.remove()
	g.thaw()
}

// start draws the initial images from N(0,1), clips them, and measures
// every batch.
func (g *generator) start(ctx context.Context) error {
	g.rng = tensor.NewRNG(g.s.seed)
	h := g.s.paddedSize()
	g.images = tensor.New(g.s.nImages, g.s.channels(), h, h)
	g.rng.FillNormal(g.images, 0, 1)
	clipInPlace(g.images, g.pipe.lo, g.pipe.hi)
	if err := g.makeBatches(); err != nil {
		return err
	}
	return g.measureAll(ctx)
}

// makeBatches cuts the images into batches, each with a fresh RAdam and
// plateau scheduler (docs/DESIGN.md, "DGH").
func (g *generator) makeBatches() error {
	nb := g.s.nBatches()
	g.batches = make([]*batch, nb)
	for b := range nb {
		lo, hi := g.s.batchRange(b)
		x := autograd.NewVar(g.images.Batch(lo, hi), true)
		x.SetArena(g.arena)
		opt, err := optim.NewRAdam([]*autograd.Var{x}, optim.RAdamConfig{
			LR: g.s.lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		})
		if err != nil {
			return fmt.Errorf("dgh: batch %d optimizer: %w", b, err)
		}
		sched, err := optim.NewPlateauWithReset(opt, g.s.iterations)
		if err != nil {
			return fmt.Errorf("dgh: batch %d scheduler: %w", b, err)
		}
		g.batches[b] = &batch{x: x, opt: opt, sched: sched}
	}
	return nil
}

// measureAll computes every batch's statistics on its finalised images.
// The first forward pass is where a model that does not fit the settings
// (channel count, image size) shows itself, so it reports that as an error.
func (g *generator) measureAll(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("dgh: running the model on %dx%dx%d images: %v", g.s.channels(), g.s.imageSize, g.s.imageSize, r)
		}
	}()
	g.stats = make([]batchStats, len(g.batches))
	g.stale = make([]bool, len(g.batches))
	for b, bt := range g.batches {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dgh: stopped while measuring the starting images: %w", err)
		}
		st, err := g.measure(bt.x.Value)
		if err != nil {
			return err
		}
		g.stats[b] = st
	}
	return nil
}

// stepResult is one batch step's loss values.
type stepResult struct {
	total, bn, output float64
}

// run performs the remaining iterations.
func (g *generator) run(ctx context.Context, cfg Config) error {
	nb := len(g.batches)
	startTime, startSteps := time.Now(), g.iter*nb+g.pos
	g.lastSave = startTime
	var sumBN, sumOut float64
	var count int
	for g.iter < g.s.iterations {
		if g.pos == 0 {
			// Stop before drawing the order, so a state saved here
			// redraws the same order on resume.
			if err := g.checkpoint(ctx, cfg); err != nil {
				return err
			}
			g.order = g.rng.Perm(nb)
		}
		for g.pos < nb {
			if g.pos > 0 {
				if err := g.checkpoint(ctx, cfg); err != nil {
					return err
				}
			}
			r, err := g.step(g.order[g.pos])
			if err != nil {
				return err
			}
			sumBN += r.bn
			sumOut += r.output
			count++
			g.pos++
		}
		g.pos = 0
		g.iter++
		if cfg.Progress != nil {
			cfg.Progress(g.progress(startTime, startSteps, sumBN/float64(count), sumOut/float64(count)))
		}
		sumBN, sumOut, count = 0, 0, 0
		if cfg.StatePath != "" && cfg.SaveEvery > 0 && g.iter%cfg.SaveEvery == 0 && g.iter < g.s.iterations {
			if err := g.saveFor(cfg); err != nil {
				return err
			}
		}
	}
	return nil
}

// saveFor saves the state to cfg.StatePath and tells cfg.AfterSave.
func (g *generator) saveFor(cfg Config) error {
	if err := g.save(cfg.StatePath); err != nil {
		return err
	}
	if cfg.AfterSave != nil {
		cfg.AfterSave(g.iter, g.pos)
	}
	return nil
}

// checkpoint runs between two batch steps: once ctx is done it saves the
// state (when there is a path) and returns an error wrapping ctx's; when
// cfg.SaveInterval has passed since the last save it saves and goes on.
func (g *generator) checkpoint(ctx context.Context, cfg Config) error {
	err := ctx.Err()
	if err == nil {
		if cfg.StatePath == "" || cfg.SaveInterval <= 0 || time.Since(g.lastSave) < cfg.SaveInterval {
			return nil
		}
		return g.saveFor(cfg)
	}
	err = fmt.Errorf("dgh: stopped at iteration %d, batch %d of %d: %w", g.iter, g.pos, len(g.batches), err)
	if cfg.StatePath != "" {
		if serr := g.saveFor(cfg); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}

// progress builds the report after an iteration.
func (g *generator) progress(startTime time.Time, startSteps int, bn, out float64) Progress {
	nb := len(g.batches)
	lr := 0.0
	for _, bt := range g.batches {
		lr += bt.opt.LR()
	}
	p := Progress{
		Iteration: g.iter, Iterations: g.s.iterations,
		BNLoss: bn, OutputLoss: out, LR: lr / float64(nb),
	}
	elapsed := time.Since(startTime).Seconds()
	done := g.iter*nb - startSteps
	if elapsed > 0 && done > 0 {
		imagesDone := float64(done) * float64(g.s.nImages) / float64(nb)
		p.ImagesPerSec = imagesDone / elapsed
		left := float64(g.s.iterations*nb-g.iter*nb) * elapsed / float64(done)
		p.Remaining = time.Duration(left * float64(time.Second))
	}
	return p
}

// step is one batch's part of an iteration (docs/DESIGN.md, "DGH", steps 1-8).
func (g *generator) step(b int) (stepResult, error) {
	bt := g.batches[b]
	aug := g.pipe.draw(g.rng)
	// Nothing computed in the step outlives it: the loss values are
	// copied out and the images' gradient is a leaf's, on the heap.
	defer g.arena.Reset()
	if err := g.refresh(b); err != nil {
		return stepResult{}, err
	}
	bt.opt.ZeroGrad()
	r, err := g.lossAndGrad(b, aug)
	if err != nil {
		return r, err
	}
	if err := bt.opt.Step(); err != nil {
		return r, fmt.Errorf("dgh: batch %d: %w", b, err)
	}
	bt.sched.Step(r.total)
	g.stale[b] = true
	return r, nil
}

// refresh measures every stale batch but skip (-1 for none), so the
// statistics a step of batch skip reads are those of the current images.
func (g *generator) refresh(skip int) error {
	for j, bt := range g.batches {
		if j == skip || !g.stale[j] {
			continue
		}
		st, err := g.measure(bt.x.Value)
		if err != nil {
			return err
		}
		g.stats[j], g.stale[j] = st, false
	}
	return nil
}

// lossAndGrad augments batch b, runs the model, and backpropagates the
// total loss into the batch's images (steps 1-7 up to the optimizer).
func (g *generator) lossAndGrad(b int, aug augmentation) (stepResult, error) {
	x := g.batches[b].x
	inp := g.pipe.augment(x, aug)
	logits, err := g.rec.forward(g.net, inp)
	if err != nil {
		return stepResult{}, err
	}
	defer clear(g.rec.inputs)
	var r stepResult
	bn := g.bnLoss(inp, b)
	total := bn
	if g.s.outputLossFactor > 0 {
		if sh := g.rec.inputs[g.lastBN].Shape(); sh[2]*sh[3] < 2 {
			return r, fmt.Errorf("dgh: the output loss takes an unbiased std over H, W of %q's input, which is %dx%d at image size %d; use larger images or switch the output loss off",
				g.rec.layers[g.lastBN].name, sh[2], sh[3], g.s.imageSize)
		}
		out := g.outputLoss(logits)
		r.output = float64(out.Value.Data[0])
		total = autograd.Add(bn, autograd.Scale(out, float32(g.s.outputLossFactor)))
	}
	r.total, r.bn = float64(total.Value.Data[0]), float64(bn.Value.Data[0])
	if err := total.Backward(); err != nil {
		return r, fmt.Errorf("dgh: batch %d backward: %w", b, err)
	}
	return r, nil
}

// finalImages finalises every batch into the N x C x S x S result.
func (g *generator) finalImages() *tensor.Tensor {
	s := g.s.imageSize
	out := tensor.New(g.s.nImages, g.s.channels(), s, s)
	for b, bt := range g.batches {
		lo, hi := g.s.batchRange(b)
		f := g.pipe.finalize(autograd.Const(bt.x.Value))
		out.Batch(lo, hi).CopyFrom(f.Value)
	}
	return out
}
