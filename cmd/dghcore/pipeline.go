package main

// The commands (docs/DESIGN.md, "Command line"): the full run
// (calibration images, BRECQ, accuracy table), quantize with given
// images, generate only, infer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/tensor"
)

func (a *app) run(ctx context.Context) (err error) {
	// The memory limit set from the estimate is this run's.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	switch a.command {
	case cmdInfer:
		return a.infer(ctx)
	case cmdEval:
		return a.evalCommand(ctx)
	case cmdExport:
		return a.exportFloat()
	case cmdGenerate:
		return a.generate(ctx)
	}
	return a.quantizeRun(ctx)
}

// kinds lists the calibration sources of this run, each with its state
// folder: the --calib file, the three of --compare, or --calib_data_type.
func (a *app) kinds() []string {
	switch {
	case a.o.calibPath != "":
		return []string{sourceFile}
	case a.o.compare:
		return []string{dgh.SourceRandomNoise, dgh.SourceDGH, dgh.SourceRealData}
	}
	return []string{a.o.calibDataType}
}

// prepare is what every long command does before its work, in the order
// that refuses bad input soonest: the state folder (lock, the rules of
// resuming), the model, given images, the data set, the resume's settings,
// the memory estimate, and the decode of every image.
func (a *app) prepare(ctx context.Context, kinds []string, needData bool) (given *tensor.Tensor, err error) {
	o := a.o
	if err := a.checkExportPath(); err != nil {
		return nil, err
	}
	if err := a.openState(kinds); err != nil {
		return nil, err
	}
	if err := a.loadModel(); err != nil {
		return nil, err
	}
	if o.calibPath != "" {
		if given, err = a.readImages("--calib", o.calibPath); err != nil {
			return nil, err
		}
		if a.calibSum, err = fileSum(o.calibPath); err != nil {
			return nil, usageErrorf("--calib %s: %v", o.calibPath, err)
		}
	}
	if needData {
		if err := a.openData(ctx); err != nil {
			return nil, err
		}
		if slices.Contains(kinds, dgh.SourceRealData) && o.nImages > a.data.Len() {
			return nil, usageErrorf("--n_images %d: real_data calibration needs that many images, the data set has %d", o.nImages, a.data.Len())
		}
	}
	if err := a.checkResume(a.settings()); err != nil {
		return nil, err
	}
	nCalib := o.nImages
	if given != nil {
		nCalib = given.Shape[0]
	}
	if err := a.checkMemory(slices.Contains(kinds, dgh.SourceDGH) && given == nil, a.command != cmdGenerate, nCalib); err != nil {
		return nil, err
	}
	if needData {
		a.planData()
		if err := a.checkData(ctx); err != nil {
			return nil, err
		}
	}
	return given, nil
}

// quantizeRun is the full pipeline and the quantize command: float
// accuracy, then per calibration source its images, BRECQ and the
// weight-only and full accuracies.
func (a *app) quantizeRun(ctx context.Context) (err error) {
	o := a.o
	kinds := a.kinds()
	defer func() { a.closeState(err == nil) }()
	given, err := a.prepare(ctx, kinds, true)
	if err != nil {
		return err
	}
	a.planRun(kinds, given)
	a.describeSettings(given == nil)
	a.describeResume()

	floatAcc, err := a.floatAccuracy(ctx)
	if err != nil {
		return err
	}
	var runs []*runReport
	for _, kind := range kinds {
		if o.compare {
			fmt.Fprintf(a.out, "\nCalibration with %s:\n", kind)
		}
		src := a.state.source(kind)
		if src.Result != nil {
			a.printReused(kind, src.Result)
			runs = append(runs, src.Result)
			continue
		}
		res := a.newRunReport(kind, floatAcc)
		calib := given
		if calib == nil {
			if calib, err = a.calibration(ctx, kind); err != nil {
				return err
			}
			if err := a.writeImages(calib); err != nil {
				return err
			}
		}
		res.Calibration.Images = calib.Shape[0]
		if err := a.quantize(ctx, kind, calib, res); err != nil {
			return err
		}
		a.seconds(kind, res)
		src.Result = res
		if err := a.saveRecord(); err != nil {
			return err
		}
		for _, f := range stateFiles {
			removeFile(a.state.file(kind, f))
		}
		runs = append(runs, res)
	}
	if o.compare {
		a.printTable(runs)
	}
	return a.writeJSON(runs)
}

// generate is the generate command: calibration images to files.
func (a *app) generate(ctx context.Context) (err error) {
	kind := a.o.calibDataType
	defer func() { a.closeState(err == nil) }()
	if _, err := a.prepare(ctx, []string{kind}, kind == dgh.SourceRealData); err != nil {
		return err
	}
	a.planRun([]string{kind}, nil)
	a.describeSettings(true)
	a.describeResume()
	imgs, err := a.calibration(ctx, kind)
	if err != nil {
		return err
	}
	if err := a.writeImages(imgs); err != nil {
		return err
	}
	res := a.newRunReport(kind, nil)
	res.Calibration.Images = imgs.Shape[0]
	a.seconds(kind, res)
	return a.writeJSON([]*runReport{res})
}

// infer is the infer command: the float model's logits for a batch.
func (a *app) infer(ctx context.Context) error {
	if err := a.loadModel(); err != nil {
		return err
	}
	x, err := a.readImages("--input", a.o.inputPath)
	if err != nil {
		return err
	}
	n, bs := x.Shape[0], a.o.batchSize
	out := tensor.New(n, a.classes)
	start := time.Now()
	for lo := 0; lo < n; lo += bs {
		if err := ctx.Err(); err != nil {
			return a.interrupted(err, "infer", fmt.Sprintf("after %d of %d images", lo, n), false)
		}
		hi := min(lo+bs, n)
		logits, err := safeForward(a.model.Logits, x.Batch(lo, hi))
		if err != nil {
			return fmt.Errorf("infer on %s: %w", a.o.inputPath, err)
		}
		copy(out.Data[lo*a.classes:hi*a.classes], logits.Data)
		el := time.Since(start)
		a.rep.step("infer", float64(hi)/float64(n), time.Duration(float64(el)*float64(n-hi)/float64(hi)), hi == n,
			"infer: %d/%d images  %.0f img/s", hi, n, float64(hi)/el.Seconds())
	}
	if err := tensor.WriteNPY(a.o.outputPath, out); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	fmt.Fprintf(a.out, "Wrote %d x %d logits to %s\n", n, a.classes, a.o.outputPath)
	return nil
}

// safeForward turns a panic deep in a forward pass into an error.
func safeForward(forward func(*tensor.Tensor) *tensor.Tensor, x *tensor.Tensor) (out *tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("forward pass on %v: %v", x.Shape, r)
		}
	}()
	return forward(x), nil
}

func (a *app) imageSize() int { return a.size }

// dghConfig maps the generation flags onto dgh.Config (docs/DESIGN.md,
// "DGH"); an explicit 0 is passed as the library's "off".
func (a *app) dghConfig() dgh.Config {
	o := a.o
	size := a.size
	// The paper's 32 pixels of padding belong to 224-pixel images; a
	// 28-pixel model gets the same share. An explicit 0 means none.
	padding := o.distillPadding
	switch {
	case !o.fs.Changed("distill_image_padding"):
		padding = (32*size + 112) / 224
	case padding == 0:
		padding = -1
	}
	outputLoss := o.outputLoss
	if o.fs.Changed("output_loss_factor") && outputLoss == 0 {
		outputLoss = -1
	}
	return dgh.Config{
		NImages: o.nImages, BatchSize: o.distillBatch, Iterations: offIfZero(o.distillIters), LR: o.distillLR,
		Padding: padding, ImageSize: size, StdFactor: offIfZero(o.distillStd), OutputLossFactor: outputLoss,
		SmoothingSize: o.smoothingSize, SmoothingSigma: o.smoothingSigma,
		Mean: a.norm.Mean, Std: a.norm.Std, Seed: uint64(o.seed),
	}
}

// brecqConfig maps the quantization flags onto brecq.Config
// (docs/DESIGN.md, "BRECQ"); an explicit 0 switches a step off where the
// library reads 0 as its default.
func (a *app) brecqConfig() brecq.Config {
	o := a.o
	return brecq.Config{
		WeightBits: o.weightsBits, ActBits: o.activationBits,
		NumIterations: offIfZero(o.numIterations), BatchSize: o.calibBatch,
		Weight: offIfZero(a.roundingWeight()), BStart: float64(o.bStart), BEnd: float64(o.bEnd),
		Warmup: offIfZero(o.warmup), ActQuant: o.actQuant, ItersA: offIfZero(o.itersA),
		LR: o.lrA, P: o.pNorm, HeadStem8bit: o.headStem8bit,
		DisableNetworkOutputQuantization: o.noOutputQuant, LayerReconstruction: o.layerRecon,
		Seed: uint64(o.seed),
	}
}

// roundingWeight is --weight when given, else the model's (zoo.Spec).
func (a *app) roundingWeight() float64 {
	if a.o.fs.Changed("weight") || a.model.Spec.RoundingWeight == 0 {
		return a.o.roundWeight
	}
	return a.model.Spec.RoundingWeight
}

func offIfZero[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// describeSettings prints what the run is about to do.
func (a *app) describeSettings(generates bool) {
	o := a.o
	if generates {
		for _, kind := range a.kinds() {
			switch kind {
			case dgh.SourceDGH:
				fmt.Fprintf(a.out, "Calibration: dgh, %d images of %dx%d, %d iterations, batch %d\n",
					o.nImages, a.size, a.size, o.distillIters, o.distillBatch)
			default:
				fmt.Fprintf(a.out, "Calibration: %s, %d images of %dx%d\n", kind, o.nImages, a.size, a.size)
			}
		}
	}
	if a.command == cmdGenerate {
		return
	}
	bits, lsq := fmt.Sprintf("W%dA%d", o.weightsBits, o.activationBits), fmt.Sprintf(", %d LSQ iterations per unit", o.itersA)
	if !o.actQuant {
		bits, lsq = fmt.Sprintf("W%d (weights only)", o.weightsBits), ""
	}
	fmt.Fprintf(a.out, "Quantization: %s, %d AdaRound iterations per unit%s, rounding weight %g\n",
		bits, o.numIterations, lsq, a.roundingWeight())
}

// describeResume says what a resumed run takes over from the saved one.
func (a *app) describeResume() {
	if !a.o.resume {
		return
	}
	rec := a.state.record
	var parts []string
	if rec.Float != nil && rec.EvalSet == a.evalKey() {
		parts = append(parts, "the float accuracy")
	}
	for _, k := range a.kinds() {
		s := rec.Sources[k]
		switch {
		case s == nil:
		case s.Result != nil:
			parts = append(parts, k+" finished")
		case s.Position != "":
			parts = append(parts, k+" "+s.Position)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing yet")
	}
	fmt.Fprintf(a.out, "Resuming the run saved under %s (started %s): %s\n", a.state.path,
		rec.Started.Format("2006-01-02 15:04"), strings.Join(parts, "; "))
}

// evalKey identifies the evaluation set; empty without data.
func (a *app) evalKey() string {
	if a.dataReport == nil {
		return ""
	}
	return a.evalSetKey()
}

// floatAccuracy evaluates the float model, or takes the accuracy an
// interrupted run of the same settings saved.
func (a *app) floatAccuracy(ctx context.Context) (*savedAccuracy, error) {
	if !a.o.evalFloat {
		return nil, nil
	}
	rec := a.state.record
	if rec.Float != nil && rec.EvalSet == a.evalKey() {
		fmt.Fprintf(a.out, "Float accuracy: %s (saved by the interrupted run)\n", percent2(*rec.Float))
		a.rep.plan.skip(phaseFloatEval)
		return rec.Float, nil
	}
	start := time.Now()
	acc, err := a.evaluate(ctx, phaseFloatEval, "float model", a.model.Logits)
	if err != nil {
		return nil, err
	}
	rec.Float, rec.EvalSet = &acc, a.evalKey()
	rec.FloatSeconds += time.Since(start).Seconds()
	if err := a.saveRecord(); err != nil {
		return nil, err
	}
	fmt.Fprintf(a.out, "Float accuracy: %s\n", percent2(acc))
	return &acc, nil
}

// calibration produces one source's calibration images: from the state
// of an interrupted run when there is one, else anew, and saves them
// under --state_dir for the quantization that follows.
func (a *app) calibration(ctx context.Context, kind string) (*tensor.Tensor, error) {
	src := a.state.source(kind)
	saved := a.state.file(kind, calibStateFile)
	if a.o.resume && fileExists(saved) {
		imgs, err := loadCalibration(saved)
		if err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		fmt.Fprintf(a.out, "Calibration: %s, %d images resumed from %s\n", kind, imgs.Shape[0], saved)
		a.rep.plan.skip(phaseName(kind, phaseGeneration))
		return imgs, nil
	}
	if err := makeDir(a.state.sourceDir(kind)); err != nil {
		return nil, err
	}
	cfg := a.dghConfig()
	if kind == dgh.SourceDGH {
		cfg.StatePath = a.state.file(kind, dghStateFile)
		cfg.Resume = a.o.resume && fileExists(cfg.StatePath)
		cfg.SaveInterval = a.o.saveEvery
		cfg.Progress = a.dghProgress(kind)
	}
	start := time.Now()
	base := src.Seconds.Generation
	if kind == dgh.SourceDGH {
		iterations := a.o.distillIters
		cfg.AfterSave = func(iter, pos int) {
			src.Position = fmt.Sprintf("generation saved at iteration %d of %d", iter, iterations)
			src.Seconds.Generation = base + time.Since(start).Seconds()
			a.saveRecordQuietly()
		}
	}
	var data dgh.Dataset
	if a.data != nil {
		data = imageSet{a.data}
	}
	gen, err := dgh.NewSource(kind, cfg, data)
	if err != nil {
		return nil, err
	}
	a.phase, a.position = "generation ("+kind+")", ""
	imgs, err := gen.Images(ctx, a.model)
	src.Seconds.Generation = base + time.Since(start).Seconds()
	if err != nil {
		if ctx.Err() != nil {
			return nil, a.interrupted(err, a.phase, a.position, kind == dgh.SourceDGH)
		}
		return nil, fmt.Errorf("calibration images (%s): %w", kind, err)
	}
	// The quantization's state names units, not images: keep the images
	// it works on, so a resumed quantization does not regenerate them.
	if err := saveCalibration(saved, imgs); err != nil {
		return nil, fmt.Errorf("--state_dir: %w", err)
	}
	removeFile(a.state.file(kind, dghStateFile))
	src.Position = fmt.Sprintf("%d calibration images saved", imgs.Shape[0])
	if err := a.saveRecord(); err != nil {
		return nil, err
	}
	return imgs, nil
}

// imageSet serves a labelled data set image by image to dgh.RealData.
type imageSet struct{ d dataset.Dataset }

func (s imageSet) Len() int { return s.d.Len() }

func (s imageSet) Image(i int) (*tensor.Tensor, error) {
	x, _, err := s.d.Load([]int{i})
	if err != nil {
		return nil, err
	}
	return x.Reshape(x.Shape[1:]...), nil
}

// quantize runs BRECQ with calib, evaluating the weight-only model between
// the phases and the full one at the end.
func (a *app) quantize(ctx context.Context, kind string, calib *tensor.Tensor, res *runReport) error {
	src := a.state.source(kind)
	if err := makeDir(a.state.sourceDir(kind)); err != nil {
		return err
	}
	cfg := a.brecqConfig()
	cfg.StatePath = a.state.file(kind, brecqStateFile)
	cfg.Resume = a.o.resume && fileExists(cfg.StatePath)
	cfg.SaveInterval = a.o.saveEvery
	cfg.Progress = a.brecqProgress(kind)
	start := time.Now()
	baseQuant, baseEval := src.Seconds.Quantization, src.Seconds.Evaluation
	var evalSecs float64
	clock := func() {
		src.Seconds.Quantization = baseQuant + time.Since(start).Seconds() - evalSecs
		src.Seconds.Evaluation = baseEval + evalSecs
	}
	cfg.AfterSave = func(p brecq.SavePoint) {
		what := "AdaRound"
		if p.Phase == brecq.PhaseActivations {
			what = "LSQ"
		}
		switch {
		case p.Done:
			src.Position = "quantization saved, finished"
		case p.Job >= p.Jobs:
			src.Position = fmt.Sprintf("quantization saved after %s", what)
		default:
			src.Position = fmt.Sprintf("quantization saved at %s unit %d of %d, step %d of %d", what, p.Job+1, p.Jobs, p.Step, p.Steps)
		}
		clock()
		a.saveRecordQuietly()
	}
	cfg.AfterWeights = func(q *brecq.QuantModel) error {
		if src.WeightOnly != nil {
			fmt.Fprintf(a.out, "----> Weight only quantization: %s (saved by the interrupted run)\n", percent2(*src.WeightOnly))
			a.rep.plan.skip(phaseName(kind, phaseWeightEval))
			return nil
		}
		t := time.Now()
		acc, err := a.evaluate(ctx, phaseName(kind, phaseWeightEval), "weight-only model", q.Forward)
		evalSecs += time.Since(t).Seconds()
		if err != nil {
			return err
		}
		src.WeightOnly = &acc
		clock()
		if err := a.saveRecord(); err != nil {
			return err
		}
		fmt.Fprintf(a.out, "----> Weight only quantization: %s\n", percent2(acc))
		return nil
	}
	a.phase, a.position = "quantization ("+kind+")", ""
	q, err := brecq.Quantize(ctx, a.model, calib, cfg)
	clock()
	if err != nil {
		if ctx.Err() != nil {
			return a.interrupted(err, a.phase, a.position, true)
		}
		return fmt.Errorf("quantization: %w", err)
	}
	res.Accuracy.WeightOnly = newTopK(*src.WeightOnly)
	res.Units = unitReports(q)
	if err := a.exportQuantized(q, kind, res); err != nil {
		return err
	}
	if a.o.actQuant {
		t := time.Now()
		acc, err := a.evaluate(ctx, phaseName(kind, phaseFullEval), "quantized model", q.Forward)
		evalSecs += time.Since(t).Seconds()
		clock()
		if err != nil {
			return err
		}
		res.Accuracy.Full = newTopK(acc)
		fmt.Fprintf(a.out, "----> Full quantization (weights + activations): %s\n", percent2(acc))
	}
	return nil
}

// seconds copies a source's phase times, summed over resumes, into its
// report.
func (a *app) seconds(kind string, res *runReport) {
	s := a.state.source(kind).Seconds
	res.Seconds = phaseReport{Generation: seconds(s.Generation), Quantization: seconds(s.Quantization), Evaluation: seconds(s.Evaluation)}
}

// evalBatches serves a data set to brecq.Evaluate in order.
type evalBatches struct {
	d      dataset.Dataset
	size   int
	lo     int
	loaded int
}

func (b *evalBatches) Len() int { return (b.d.Len() + b.size - 1) / b.size }

func (b *evalBatches) Next() (*tensor.Tensor, []int, error) {
	if b.lo >= b.d.Len() {
		return nil, nil, io.EOF
	}
	hi := min(b.lo+b.size, b.d.Len())
	x, y, err := dataset.Range(b.d, b.lo, hi)
	b.lo = hi
	b.loaded = hi
	return x, y, err
}

// evaluate measures top-1 and top-5 accuracy of forward on the evaluation
// set, showing progress.
func (a *app) evaluate(ctx context.Context, phase, what string, forward func(*tensor.Tensor) *tensor.Tensor) (savedAccuracy, error) {
	b := &evalBatches{d: a.eval, size: a.o.batchSize}
	n := b.Len()
	start := time.Now()
	var fwdErr error
	guarded := func(x *tensor.Tensor) *tensor.Tensor {
		out, err := safeForward(forward, x)
		if err != nil {
			fwdErr = err
			return tensor.New(0, 0)
		}
		return out
	}
	prevPhase, prevPos := a.phase, a.position
	a.phase = "the evaluation of the " + what
	acc, err := brecq.Evaluate(ctx, guarded, b, func(done int) {
		el := time.Since(start)
		a.position = fmt.Sprintf("at batch %d of %d", done, n)
		a.rep.step(phase, float64(done)/float64(n), time.Duration(float64(el)*float64(n-done)/float64(done)), done == n,
			"evaluating %s: batch %d/%d  %.0f img/s", what, done, n, float64(b.loaded)/el.Seconds())
	})
	if fwdErr != nil {
		err = fwdErr
	}
	if err != nil {
		if ctx.Err() != nil {
			return savedAccuracy{}, a.interrupted(err, a.phase, a.position, false)
		}
		return savedAccuracy{}, fmt.Errorf("evaluate the %s: %w", what, err)
	}
	a.phase, a.position = prevPhase, prevPos
	return savedAccuracy{Top1: acc.Top1, Top5: acc.Top5, Samples: acc.Samples}, nil
}

// interrupted is the error of a long phase stopped by Ctrl-C: where it
// stopped and whether, and where, its state was saved, without the
// library's chain of wrapped errors.
func (a *app) interrupted(err error, phase, position string, saves bool) error {
	ie := &interruptedError{phase: phase, position: position, err: err}
	if a.state != nil && a.state.record != nil {
		a.saveRecordQuietly() // the seconds spent up to here
	}
	var se *statefile.SaveError
	switch {
	case errors.As(err, &se):
		ie.resume = fmt.Sprintf("the state could NOT be saved (%v); --resume would continue from the last save, if any", errorsUnwrapPath(se.Err))
		ie.saveFailed = true
	case saves || a.state != nil && a.hasSavedWork():
		ie.resume = fmt.Sprintf("the state is saved under %s: run the same command with --resume to continue", a.o.stateDir)
	default:
		ie.resume = "nothing was saved: run the command again"
	}
	return ie
}

func (a *app) newRunReport(kind string, floatAcc *savedAccuracy) *runReport {
	r := &runReport{Calibration: calibrationReport{Type: kind, ImageSize: a.size}, Units: []unitReport{}}
	if kind == sourceFile {
		r.Calibration.File, r.Calibration.SHA256 = a.o.calibPath, a.calibSum
	}
	if floatAcc != nil {
		r.Accuracy.Float = newTopK(*floatAcc)
	}
	return r
}

// printReused prints the results of a source an interrupted run finished.
func (a *app) printReused(kind string, r *runReport) {
	if r.Accuracy.WeightOnly != nil {
		fmt.Fprintf(a.out, "----> Weight only quantization: %s (%s: finished by the interrupted run)\n", r.Accuracy.WeightOnly, kind)
	}
	if r.Accuracy.Full != nil {
		fmt.Fprintf(a.out, "----> Full quantization (weights + activations): %s (%s: finished by the interrupted run)\n", r.Accuracy.Full, kind)
	}
}

func (t *topK) String() string {
	return fmt.Sprintf("%.2f%% (top-5 %.2f%%)", float64(t.Top1), float64(t.Top5))
}

func percent2(acc savedAccuracy) string {
	return fmt.Sprintf("%.2f%% (top-5 %.2f%%)", 100*acc.Top1, 100*acc.Top5)
}

// printTable prints the --compare table: one row per calibration source.
func (a *app) printTable(runs []*runReport) {
	cell := func(t *topK, five bool) string {
		switch {
		case t == nil:
			return "-"
		case five:
			return fmt.Sprintf("%.2f", float64(t.Top5))
		}
		return fmt.Sprintf("%.2f", float64(t.Top1))
	}
	w, act := a.o.weightsBits, a.o.activationBits
	fmt.Fprintf(a.out, "\n%-14s %9s %9s %9s %9s %9s %9s %8s\n", "calibration", "float", "float-5",
		fmt.Sprintf("W%d", w), fmt.Sprintf("W%d-5", w), fmt.Sprintf("W%dA%d", w, act), fmt.Sprintf("W%dA%d-5", w, act), "seconds")
	for _, r := range runs {
		ac := r.Accuracy
		secs := float64(r.Seconds.Generation + r.Seconds.Quantization)
		fmt.Fprintf(a.out, "%-14s %9s %9s %9s %9s %9s %9s %8.0f\n", r.Calibration.Type,
			cell(ac.Float, false), cell(ac.Float, true), cell(ac.WeightOnly, false), cell(ac.WeightOnly, true),
			cell(ac.Full, false), cell(ac.Full, true), secs)
	}
}

// writeImages writes --output (.npy) and --png (one file per image and a
// contact sheet).
func (a *app) writeImages(imgs *tensor.Tensor) error {
	if a.o.outputPath != "" {
		if err := tensor.WriteNPY(a.o.outputPath, imgs); err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		fmt.Fprintf(a.out, "Wrote %d images to %s\n", imgs.Shape[0], a.o.outputPath)
	}
	if a.o.pngDir != "" {
		n, err := writePNGs(a.o.pngDir, imgs, a.norm)
		if err != nil {
			return fmt.Errorf("--png: %w", err)
		}
		fmt.Fprintf(a.out, "Wrote %d PNG files and %s to %s\n", n, contactSheetName, a.o.pngDir)
	}
	return nil
}

// settings lists everything that changes a run's result, for the check of
// a resume: every flag that does, with its resolved value, the
// checkpoint's and --calib's contents, and the kernel path (its floats
// differ in the last bits).
func (a *app) settings() statefile.Settings {
	resolved := a.resolvedFlags()
	var s statefile.Settings
	for _, name := range resultFlags {
		f := a.o.fs.Lookup(name)
		v := f.Value.String()
		if r, ok := resolved[name]; ok {
			v = r
		}
		s = append(s, statefile.Setting{Name: "--" + name, Value: v})
	}
	s = append(s,
		statefile.Setting{Name: "the checkpoint's sha256", Value: a.checkpointSum},
		statefile.Setting{Name: "--calib's sha256", Value: a.calibSum},
		statefile.Setting{Name: "the kernels", Value: a.kernels})
	return s
}

// resultFlags are the flags that change what a run computes.
var resultFlags = []string{
	"model_name", "random_seed", "compare", "eval_float_accuracy", "debug",
	"data_path", "eval_images", "skip_bad_images",
	"calib_data_type", "n_images", "distill_batch_size", "distill_num_iter", "distill_lr", "distill_image_padding",
	"distill_std_factor", "output_loss_factor", "distill_smoothing_filter_size", "distill_smoothing_filter_sigma",
	"img_size", "mean", "std",
	"weights_n_bits", "activation_n_bits", "act_quant", "num_iterations", "batch_size_for_calibration",
	"weight", "b_start", "b_end", "warmup", "iters_a", "lr", "p", "head_stem_8bit",
	"disable_network_output_quantization", "layer_reconstruction", "calib",
}

// resolvedFlags are the values the run uses where a flag left the choice
// to the model.
func (a *app) resolvedFlags() map[string]string {
	floats := func(v []float32) string {
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
		return strings.Join(parts, ",")
	}
	cfg := a.dghConfig()
	r := map[string]string{
		"model_name": a.model.Name, "checkpoint": a.checkpointPath,
		"img_size": strconv.Itoa(a.size), "mean": floats(a.norm.Mean), "std": floats(a.norm.Std),
		"distill_image_padding": strconv.Itoa(max(cfg.Padding, 0)),
	}
	if !a.o.fs.Changed("output_loss_factor") {
		r["output_loss_factor"] = strconv.FormatFloat(float64(a.model.Spec.OutputLossFactor), 'g', -1, 32)
	}
	if a.o.dataPath == "" && a.o.embedded() {
		r["data_path"] = "embedded"
	}
	return r
}

// saveRecordQuietly saves run.state from a save callback, where an error
// cannot stop the library: the next save tries again, and the library's
// own state is what a resume needs.
func (a *app) saveRecordQuietly() { _ = a.saveRecord() }
