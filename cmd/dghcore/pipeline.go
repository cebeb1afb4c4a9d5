package main

// The commands (docs/DESIGN.md, "Command line"): the full run (calibration images, BRECQ,
// accuracy table), quantize with given images, generate only, infer.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// result is one calibration run's figures, as the JSON report writes
// them: accuracies in percent, null when not measured.
type result struct {
	Model           string   `json:"model"`
	CalibDataType   string   `json:"calib_data_type"`
	WeightsNBits    int      `json:"weights_n_bits"`
	ActivationNBits int      `json:"activation_n_bits"`
	FloatTop1       *float64 `json:"float_top1"`
	WeightOnlyTop1  *float64 `json:"weight_only_top1"`
	FullQuantTop1   *float64 `json:"full_quant_top1"`
	FloatTop5       *float64 `json:"float_top5"`
	WeightOnlyTop5  *float64 `json:"weight_only_top5"`
	FullQuantTop5   *float64 `json:"full_quant_top5"`
	Kernels         string   `json:"kernels"`
	NImages         int      `json:"n_images"`
	EvalImages      int      `json:"eval_images"`
	Seconds         struct {
		Generation   float64 `json:"generation"`
		Quantization float64 `json:"quantization"`
		Evaluation   float64 `json:"evaluation"`
	} `json:"seconds"`
}

// State files under --state_dir/<calibration type>/.
const (
	dghStateFile   = "dgh.state"
	brecqStateFile = "brecq.state"
	calibFile      = "calib.npy" // the calibration set of an interrupted quantization
)

func (a *app) run(ctx context.Context) error {
	switch a.command {
	case cmdInfer:
		return a.infer(ctx)
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
		return []string{"file"}
	case a.o.compare:
		return []string{dgh.SourceRandomNoise, dgh.SourceDGH, dgh.SourceRealData}
	}
	return []string{a.o.calibDataType}
}

func (a *app) stateDir(kind string) string { return filepath.Join(a.o.stateDir, kind) }

// quantizeRun is the full pipeline and the quantize command: float
// accuracy, then per calibration source its images, BRECQ and the
// weight-only and full accuracies.
func (a *app) quantizeRun(ctx context.Context) error {
	o := a.o
	if err := a.setup(true); err != nil {
		return err
	}
	var given *tensor.Tensor
	if o.calibPath != "" {
		var err error
		if given, err = a.readImages("--calib", o.calibPath); err != nil {
			return err
		}
	}
	kinds := a.kinds()
	nCalib, size := o.nImages, a.imageSize()
	if given != nil {
		nCalib, size = given.Shape[0], given.Shape[2]
	}
	if slices.Contains(kinds, dgh.SourceRealData) && o.nImages > a.data.Len() {
		return usageErrorf("--n_images %d: real_data calibration needs that many images, the data set has %d", o.nImages, a.data.Len())
	}
	if err := a.checkResume(kinds); err != nil {
		return err
	}
	if err := a.checkMemory(slices.Contains(kinds, dgh.SourceDGH), true, nCalib, size); err != nil {
		return err
	}
	a.describeSettings(given == nil)

	var floatAcc *brecq.Accuracy
	var floatSecs float64
	if o.evalFloat {
		start := time.Now()
		acc, err := a.evaluate(ctx, "float model", a.model.Logits)
		if err != nil {
			return err
		}
		floatAcc, floatSecs = &acc, time.Since(start).Seconds()
		fmt.Fprintf(a.out, "Float accuracy: %s\n", percent(acc))
	}
	var results []*result
	for _, kind := range kinds {
		if o.compare {
			fmt.Fprintf(a.out, "\nCalibration with %s:\n", kind)
		}
		res := a.newResult(kind, floatAcc)
		res.Seconds.Evaluation = floatSecs
		calib := given
		if calib == nil {
			var err error
			start := time.Now()
			if calib, err = a.calibration(ctx, kind); err != nil {
				return err
			}
			res.Seconds.Generation = time.Since(start).Seconds()
			if err := a.writeImages(calib); err != nil {
				return err
			}
		}
		res.NImages = calib.Shape[0]
		if err := a.quantize(ctx, kind, calib, res); err != nil {
			return err
		}
		a.removeState(kind)
		results = append(results, res)
	}
	if o.compare {
		a.printTable(results)
	}
	return a.writeJSON(results)
}

// generate is the generate command: calibration images to files.
func (a *app) generate(ctx context.Context) error {
	o := a.o
	kind := o.calibDataType
	if err := a.setup(kind == dgh.SourceRealData); err != nil {
		return err
	}
	if kind == dgh.SourceRealData && o.nImages > a.data.Len() {
		return usageErrorf("--n_images %d: the data set has %d images", o.nImages, a.data.Len())
	}
	if err := a.checkResume([]string{kind}); err != nil {
		return err
	}
	if err := a.checkMemory(kind == dgh.SourceDGH, false, o.nImages, a.imageSize()); err != nil {
		return err
	}
	a.describeSettings(true)
	imgs, err := a.calibration(ctx, kind)
	if err != nil {
		return err
	}
	if err := a.writeImages(imgs); err != nil {
		return err
	}
	a.removeState(kind)
	return nil
}

// infer is the infer command: the float model's logits for a batch.
func (a *app) infer(ctx context.Context) error {
	if err := a.setup(false); err != nil {
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
			return err
		}
		hi := min(lo+bs, n)
		logits, err := safeForward(a.model.Logits, x.Batch(lo, hi))
		if err != nil {
			return fmt.Errorf("infer on %s: %w", a.o.inputPath, err)
		}
		copy(out.Data[lo*a.classes:hi*a.classes], logits.Data)
		el := time.Since(start)
		a.rep.update(hi == n, "infer: %d/%d images  %.0f img/s  %s left", hi, n,
			float64(hi)/el.Seconds(), eta(time.Duration(float64(el)*float64(n-hi)/float64(hi))))
	}
	if err := tensor.WriteNPY(a.o.outputPath, out); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	fmt.Fprintf(a.out, "Wrote %d x %d logits to %s\n", n, a.classes, a.o.outputPath)
	return nil
}

// readImages reads an N x C x H x W float32 .npy made for this model.
func (a *app) readImages(flag, path string) (*tensor.Tensor, error) {
	x, err := tensor.ReadNPY(path)
	if err != nil {
		return nil, usageErrorf("%s %s: %v", flag, path, err)
	}
	if x.Dims() != 4 || x.Shape[0] < 1 || x.Shape[1] != a.channels || x.Shape[2] < 1 || x.Shape[3] < 1 {
		return nil, usageErrorf("%s %s: shape %v, want N x %d x H x W images for %s", flag, path, x.Shape, a.channels, a.model.Name)
	}
	return x, nil
}

// safeForward turns a panic deep in a forward pass (an input too small
// for the network, say) into an error.
func safeForward(forward func(*tensor.Tensor) *tensor.Tensor, x *tensor.Tensor) (out *tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("forward pass on %v: %v", x.Shape, r)
		}
	}()
	return forward(x), nil
}

func (a *app) imageSize() int {
	if a.o.imgSize > 0 {
		return a.o.imgSize
	}
	return a.model.Spec.InputSize
}

// dghConfig maps the generation flags onto dgh.Config (docs/DESIGN.md, "DGH").
func (a *app) dghConfig() dgh.Config {
	o := a.o
	size := a.imageSize()
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
		NImages: o.nImages, BatchSize: o.distillBatch, Iterations: o.distillIters, LR: o.distillLR,
		Padding: padding, ImageSize: size, StdFactor: o.distillStd, OutputLossFactor: outputLoss,
		SmoothingSize: o.smoothingSize, SmoothingSigma: o.smoothingSigma,
		Mean: a.norm.Mean, Std: a.norm.Std, Seed: uint64(o.seed),
	}
}

// brecqConfig maps the quantization flags onto brecq.Config (docs/DESIGN.md,
// "BRECQ"); an explicit 0 switches a step off where the library reads 0 as its
// default.
func (a *app) brecqConfig() brecq.Config {
	o := a.o
	return brecq.Config{
		WeightBits: o.weightsBits, ActBits: o.activationBits,
		NumIterations: offIfZero(o.numIterations), BatchSize: o.calibBatch,
		Weight: offIfZero(o.roundWeight), BStart: float64(o.bStart), BEnd: float64(o.bEnd),
		Warmup: offIfZero(o.warmup), ActQuant: o.actQuant, ItersA: offIfZero(o.itersA),
		LR: o.lrA, P: o.pNorm, HeadStem8bit: o.headStem8bit,
		DisableNetworkOutputQuantization: o.noOutputQuant, LayerReconstruction: o.layerRecon,
		Seed: uint64(o.seed),
	}
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
				c := a.dghConfig()
				fmt.Fprintf(a.out, "Calibration: dgh, %d images of %dx%d, %d iterations, batch %d\n",
					o.nImages, c.ImageSize, c.ImageSize, o.distillIters, o.distillBatch)
			default:
				fmt.Fprintf(a.out, "Calibration: %s, %d images\n", kind, o.nImages)
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
		bits, o.numIterations, lsq, o.roundWeight)
}

// checkResume refuses --resume without any saved state.
func (a *app) checkResume(kinds []string) error {
	if !a.o.resume {
		return nil
	}
	for _, k := range kinds {
		for _, f := range []string{dghStateFile, brecqStateFile, calibFile} {
			if fileExists(filepath.Join(a.stateDir(k), f)) {
				return nil
			}
		}
	}
	return usageErrorf("--resume: no saved state under %s", a.o.stateDir)
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// removeState deletes a finished run's state files and, when empty, its
// folders.
func (a *app) removeState(kind string) {
	dir := a.stateDir(kind)
	for _, f := range []string{dghStateFile, brecqStateFile, calibFile} {
		os.Remove(filepath.Join(dir, f))
	}
	os.Remove(dir)
	os.Remove(a.o.stateDir)
}

// checkMemory prints the estimated peak and refuses a run above
// --max_memory before any long work.
func (a *app) checkMemory(generates, quantizes bool, nCalib, size int) error {
	limit, err := parseBytes(a.o.maxMemory)
	if err != nil {
		return usageErrorf("--max_memory: %v", err)
	}
	var gen, quant int64
	if generates {
		if gen, err = dgh.EstimateMemory(a.model, a.dghConfig()); err != nil {
			return usageErrorf("%v", err)
		}
	}
	if quantizes {
		quant = a.quantizeMemory(nCalib, size)
	}
	peak := max(gen, quant)
	limitText := "no limit"
	if limit > 0 {
		limitText = "limit " + formatBytes(limit)
	}
	fmt.Fprintf(a.out, "Estimated peak memory: %s (generation %s, quantization %s; %s)\n",
		formatBytes(peak), formatBytes(gen), formatBytes(quant), limitText)
	if limit > 0 && peak > limit {
		return usageErrorf("estimated memory %s exceeds --max_memory %s; lower --n_images or --distill_batch_size, or raise --max_memory",
			formatBytes(peak), formatBytes(limit))
	}
	if limit > 0 {
		// The estimate counts live data; left alone, Go's collector lets
		// the heap grow to about twice that. The soft limit makes it
		// collect harder instead of passing --max_memory.
		debug.SetMemoryLimit(limit)
	}
	return nil
}

// quantizeMemory estimates BRECQ's peak: the calibration set, the float
// and quantized streams through the network with a unit's outputs (five
// copies of the widest activation per image), one mini-batch's
// activations with their gradients, and the parameters with their folded
// copies, rounding variables and Adam moments.
func (a *app) quantizeMemory(nCalib, size int) int64 {
	sum, largest := activationSizes(a.model, a.channels, size)
	n := int64(nCalib)
	batch := int64(min(a.o.calibBatch, nCalib))
	calib := n * int64(a.channels*size*size)
	return 4 * (calib + 5*n*largest + 3*batch*sum + 6*parameterCount(a.model))
}

// calibration produces one source's calibration images, resuming from
// --state_dir with --resume.
func (a *app) calibration(ctx context.Context, kind string) (*tensor.Tensor, error) {
	dir := a.stateDir(kind)
	saved := filepath.Join(dir, calibFile)
	if a.o.resume && fileExists(saved) {
		imgs, err := tensor.ReadNPY(saved)
		if err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		fmt.Fprintf(a.out, "Calibration: %s, %d images resumed from %s\n", kind, imgs.Shape[0], saved)
		return imgs, nil
	}
	cfg := a.dghConfig()
	if kind == dgh.SourceDGH {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("--state_dir: %w", err)
		}
		cfg.StatePath = filepath.Join(dir, dghStateFile)
		cfg.Resume = a.o.resume && fileExists(cfg.StatePath)
		cfg.Progress = a.dghProgress()
	}
	var data dgh.Dataset
	if a.data != nil {
		data = imageSet{a.data}
	}
	src, err := dgh.NewSource(kind, cfg, data)
	if err != nil {
		return nil, err
	}
	imgs, err := src.Images(ctx, a.model)
	if err != nil {
		if ctx.Err() != nil && kind == dgh.SourceDGH {
			return nil, &interruptedError{phase: "generation", err: err, resume: a.resumeHint()}
		}
		return nil, fmt.Errorf("calibration images (%s): %w", kind, err)
	}
	return imgs, nil
}

func (a *app) resumeHint() string {
	return fmt.Sprintf("state saved under %s: run the same command with --resume to continue", a.o.stateDir)
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
func (a *app) quantize(ctx context.Context, kind string, calib *tensor.Tensor, res *result) error {
	dir := a.stateDir(kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--state_dir: %w", err)
	}
	cfg := a.brecqConfig()
	cfg.StatePath = filepath.Join(dir, brecqStateFile)
	cfg.Resume = a.o.resume && fileExists(cfg.StatePath)
	cfg.Progress = a.brecqProgress()
	var evalSecs float64
	cfg.AfterWeights = func(q *brecq.QuantModel) error {
		start := time.Now()
		acc, err := a.evaluate(ctx, "weight-only model", q.Forward)
		evalSecs += time.Since(start).Seconds()
		if err != nil {
			return err
		}
		res.WeightOnlyTop1, res.WeightOnlyTop5 = pct(acc.Top1), pct(acc.Top5)
		fmt.Fprintf(a.out, "----> Weight only quantization: %s\n", percent(acc))
		return nil
	}
	start := time.Now()
	q, err := brecq.Quantize(ctx, a.model, calib, cfg)
	if err != nil {
		if ctx.Err() != nil {
			// The quantizer's state names units, not images: keep the
			// images it was computed from for the resumed run.
			saved := filepath.Join(dir, calibFile)
			if !fileExists(saved) {
				if werr := tensor.WriteNPY(saved, calib); werr != nil {
					return fmt.Errorf("%w (and saving the calibration images: %v)", err, werr)
				}
			}
			return &interruptedError{phase: "quantization", err: err, resume: a.resumeHint()}
		}
		return fmt.Errorf("quantization: %w", err)
	}
	res.Seconds.Quantization = time.Since(start).Seconds() - evalSecs
	res.Seconds.Evaluation += evalSecs
	if a.o.actQuant {
		start := time.Now()
		acc, err := a.evaluate(ctx, "quantized model", q.Forward)
		if err != nil {
			return err
		}
		res.Seconds.Evaluation += time.Since(start).Seconds()
		res.FullQuantTop1, res.FullQuantTop5 = pct(acc.Top1), pct(acc.Top5)
		fmt.Fprintf(a.out, "----> Full quantization (weights + activations): %s\n", percent(acc))
	}
	return nil
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
func (a *app) evaluate(ctx context.Context, what string, forward func(*tensor.Tensor) *tensor.Tensor) (brecq.Accuracy, error) {
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
	acc, err := brecq.Evaluate(ctx, guarded, b, func(done int) {
		el := time.Since(start)
		a.rep.update(done == n, "evaluating %s: batch %d/%d  %.0f img/s  %s left", what, done, n,
			float64(b.loaded)/el.Seconds(), eta(time.Duration(float64(el)*float64(n-done)/float64(done))))
	})
	if fwdErr != nil {
		err = fwdErr
	}
	if err != nil {
		return acc, fmt.Errorf("evaluate the %s: %w", what, err)
	}
	return acc, nil
}

func (a *app) newResult(kind string, floatAcc *brecq.Accuracy) *result {
	if kind == "file" {
		kind = a.o.calibPath
	}
	r := &result{
		Model: a.model.Name, CalibDataType: kind,
		WeightsNBits: a.o.weightsBits, ActivationNBits: a.o.activationBits,
		Kernels: string(kernels.Active()), EvalImages: a.eval.Len(),
	}
	if floatAcc != nil {
		r.FloatTop1, r.FloatTop5 = pct(floatAcc.Top1), pct(floatAcc.Top5)
	}
	return r
}

func pct(v float64) *float64 {
	p := 100 * v
	return &p
}

func percent(acc brecq.Accuracy) string {
	return fmt.Sprintf("%.2f%% (top-5 %.2f%%)", 100*acc.Top1, 100*acc.Top5)
}

// printTable prints the --compare table: one row per calibration source.
func (a *app) printTable(results []*result) {
	cell := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *p)
	}
	w, act := a.o.weightsBits, a.o.activationBits
	fmt.Fprintf(a.out, "\n%-14s %9s %9s %9s %9s %9s %9s %8s\n", "calibration", "float", "float-5",
		fmt.Sprintf("W%d", w), fmt.Sprintf("W%d-5", w), fmt.Sprintf("W%dA%d", w, act), fmt.Sprintf("W%dA%d-5", w, act), "seconds")
	for _, r := range results {
		secs := r.Seconds.Generation + r.Seconds.Quantization
		fmt.Fprintf(a.out, "%-14s %9s %9s %9s %9s %9s %9s %8.0f\n", r.CalibDataType,
			cell(r.FloatTop1), cell(r.FloatTop5), cell(r.WeightOnlyTop1), cell(r.WeightOnlyTop5),
			cell(r.FullQuantTop1), cell(r.FullQuantTop5), secs)
	}
}

// writeJSON writes --json: one object, or with --compare an array of them.
func (a *app) writeJSON(results []*result) error {
	if a.o.jsonPath == "" {
		return nil
	}
	var v any = results
	if !a.o.compare && len(results) == 1 {
		v = results[0]
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	if err := os.WriteFile(a.o.jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
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
