package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dghcore/dghcore/assets"
	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/spf13/pflag"
)

// options holds every flag of every command. Names follow the DGH
// reference implementation so its command lines work unchanged
// (docs/DESIGN.md, "Command line").
type options struct {
	// run
	model      string
	checkpoint string
	seed       int64
	jsonPath   string
	stateDir   string
	resume     bool
	maxMemory  string
	compare    bool
	evalFloat  bool
	debug      bool
	inputPath  string
	outputPath string

	// data
	dataPath   string
	batchSize  int
	evalImages int

	// generation (docs/DESIGN.md, "DGH")
	calibDataType  string
	nImages        int
	distillBatch   int
	distillIters   int
	distillLR      float64
	distillPadding int
	distillStd     float64
	outputLoss     float64
	smoothingSize  int
	smoothingSigma float64
	imgSize        int
	mean, std      string
	bnLossType     string
	schedulerType  string
	pngDir         string

	// quantization (docs/DESIGN.md, "BRECQ")
	weightsBits    int
	activationBits int
	actQuant       bool
	numIterations  int
	calibBatch     int
	roundWeight    float64
	bStart, bEnd   int
	warmup         float64
	itersA         int
	lrA            float64
	pNorm          float64
	headStem8bit   bool
	noOutputQuant  bool
	layerRecon     bool
	calibPath      string

	// fs is the parsed flag set: Changed tells an explicit flag from a
	// default, which the quick preset and the "0 means off" flags need.
	fs *pflag.FlagSet
}

// Flag groups, in the order --help prints them.
const (
	groupRun   = "run"
	groupGen   = "generation (DGH)"
	groupQuant = "quantization (BRECQ)"
	groupData  = "data"
)

var groupOrder = []string{groupRun, groupData, groupGen, groupQuant}

// newFlagSet declares every flag, each tagged with its help group.
func newFlagSet(o *options, command string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("dghcore "+command, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		name = strings.ReplaceAll(name, "-", "_")
		if name == "model" {
			name = "model_name"
		}
		return pflag.NormalizedName(name)
	})
	group := func(g string, names ...string) {
		for _, n := range names {
			if err := fs.SetAnnotation(n, "group", []string{g}); err != nil {
				panic(err) // a misspelt name above: a programming error
			}
		}
	}

	fs.StringVarP(&o.model, "model_name", "m", "", "model: "+strings.Join(zoo.Names(), ", ")+" (default: the embedded Fashion-MNIST resnet20)")
	fs.StringVar(&o.checkpoint, "checkpoint", "", "PyTorch checkpoint (default: BRECQ's file name in the current folder or $DGHCORE_MODELS)")
	fs.Int64Var(&o.seed, "random_seed", 0, "random seed")
	fs.StringVar(&o.jsonPath, "json", "", "write a JSON report (accuracies in percent) to this file")
	fs.StringVar(&o.stateDir, "state_dir", "dghcore-state", "folder for the resumable state of long phases; removed after a finished run")
	fs.BoolVar(&o.resume, "resume", false, "continue an interrupted run from --state_dir")
	fs.StringVar(&o.maxMemory, "max_memory", "16GiB", "refuse to start when the estimated memory exceeds this (0: no limit)")
	fs.BoolVar(&o.compare, "compare", false, "run noise, DGH and real-data calibration side by side and print one table")
	fs.BoolVar(&o.evalFloat, "eval_float_accuracy", true, "evaluate the float model")
	fs.BoolVar(&o.debug, "debug", false, "evaluate on the first 1000 images only")
	group(groupRun, "model_name", "checkpoint", "random_seed", "json", "state_dir", "resume", "max_memory", "compare", "eval_float_accuracy", "debug")

	fs.StringVar(&o.dataPath, "data_path", "", "evaluation data: an ImageNet-style folder or a folder of IDX files (default for the embedded model: its Fashion-MNIST test set)")
	fs.IntVar(&o.batchSize, "batch_size", 32, "evaluation batch size")
	fs.IntVar(&o.evalImages, "eval_images", 0, "evaluate on at most this many images (0: all)")
	group(groupData, "data_path", "batch_size", "eval_images")

	fs.StringVar(&o.calibDataType, "calib_data_type", "dgh", "calibration data: dgh, random_noise or real_data")
	fs.IntVar(&o.nImages, "n_images", 1024, "number of calibration images")
	fs.IntVar(&o.distillBatch, "distill_batch_size", 128, "images per generation batch")
	fs.IntVar(&o.distillIters, "distill_num_iter", 1000, "generation iterations")
	fs.Float64Var(&o.distillLR, "distill_lr", 16, "generation learning rate")
	fs.IntVar(&o.distillPadding, "distill_image_padding", 0, "padding around the generated images, cropped by augmentation (default: 32 at 224 pixels, scaled with the image size)")
	fs.Float64Var(&o.distillStd, "distill_std_factor", 10, "weight of the std term of the BatchNorm alignment loss")
	fs.Float64Var(&o.outputLoss, "output_loss_factor", 0, "weight of the output loss (default: the model's, 3e-7 resnet18, 1e-7 resnet50, 3e-5 mobilenet_v2)")
	fs.IntVar(&o.smoothingSize, "distill_smoothing_filter_size", 3, "Gaussian smoothing filter size")
	fs.Float64Var(&o.smoothingSigma, "distill_smoothing_filter_sigma", 1.25, "Gaussian smoothing sigma")
	fs.IntVar(&o.imgSize, "img_size", 0, "generated image size (default: the model's input size)")
	fs.StringVar(&o.mean, "mean", "", "per-channel normalisation mean, comma-separated (default: the model's)")
	fs.StringVar(&o.std, "std", "", "per-channel normalisation std, comma-separated (default: the model's)")
	fs.StringVar(&o.bnLossType, "distill_bn_loss_type", "l2_square", "BatchNorm alignment loss (only l2_square)")
	fs.StringVar(&o.schedulerType, "distill_scheduler_type", "reduce_on_plateau_with_reset", "generation schedule (only reduce_on_plateau_with_reset)")
	fs.StringVar(&o.pngDir, "png", "", "write the generated images as PNG files and a contact sheet into this folder")
	group(groupGen, "calib_data_type", "n_images", "distill_batch_size", "distill_num_iter", "distill_lr", "distill_image_padding",
		"distill_std_factor", "output_loss_factor", "distill_smoothing_filter_size", "distill_smoothing_filter_sigma",
		"img_size", "mean", "std", "distill_bn_loss_type", "distill_scheduler_type", "png")

	fs.IntVar(&o.weightsBits, "weights_n_bits", 4, "weight bits (2..8)")
	fs.IntVar(&o.activationBits, "activation_n_bits", 4, "activation bits (2..8)")
	fs.BoolVar(&o.actQuant, "act_quant", true, "quantize activations too (--act_quant=false for weights only)")
	fs.IntVar(&o.numIterations, "num_iterations", 20000, "AdaRound iterations per unit")
	fs.IntVar(&o.calibBatch, "batch_size_for_calibration", 32, "reconstruction mini-batch size")
	fs.Float64Var(&o.roundWeight, "weight", 0.01, "rounding-regulariser weight (0.1 is usual for mobilenet_v2)")
	fs.IntVar(&o.bStart, "b_start", 20, "rounding temperature at the start")
	fs.IntVar(&o.bEnd, "b_end", 2, "rounding temperature at the end")
	fs.Float64Var(&o.warmup, "warmup", 0.2, "fraction of iterations without the rounding term")
	fs.IntVar(&o.itersA, "iters_a", 5000, "activation step-size (LSQ) iterations per unit")
	fs.Float64Var(&o.lrA, "lr", 4e-4, "LSQ learning rate")
	fs.Float64Var(&o.pNorm, "p", 2.4, "Lp norm of the activation reconstruction loss")
	fs.BoolVar(&o.headStem8bit, "head_stem_8bit", false, "first and last layers at 8 bits, stem not reconstructed")
	fs.BoolVar(&o.noOutputQuant, "disable_network_output_quantization", false, "do not quantize the network output")
	fs.BoolVar(&o.layerRecon, "layer_reconstruction", false, "reconstruct layer by layer instead of block by block")
	fs.Int("step", 20, "accepted for compatibility with the reference; unused")
	fs.StringVar(&o.calibPath, "calib", "", "calibration images .npy to quantize with instead of generating them")
	group(groupQuant, "weights_n_bits", "activation_n_bits", "act_quant", "num_iterations", "batch_size_for_calibration",
		"weight", "b_start", "b_end", "warmup", "iters_a", "lr", "p", "head_stem_8bit",
		"disable_network_output_quantization", "layer_reconstruction", "step", "calib")

	fs.StringVar(&o.inputPath, "input", "", "infer: input batch, float32 NCHW .npy")
	fs.StringVar(&o.outputPath, "output", "", "infer: logits .npy; generate and the full run: calibration images .npy")
	group(groupRun, "input", "output")
	return fs
}

// singleDashLong rewrites "-model" style arguments to "--model" so the
// reference's single-dash long flags work; single-letter flags ("-m")
// and negative numbers are left alone.
func singleDashLong(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if _, err := strconv.ParseFloat(a, 64); err != nil && fs.Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// printUsage writes --help: the commands, then the flags by group.
func printUsage(w io.Writer, fs *pflag.FlagSet) {
	preset := make([]string, len(quickPreset))
	for i, p := range quickPreset {
		preset[i] = "--" + p.flag + " " + p.value
	}
	fmt.Fprintf(w, `dghcore: zero-shot 4-bit quantization with DGH data generation and BRECQ.

usage:
  dghcore [flags]              generate calibration data, quantize, evaluate
  dghcore --compare [flags]    the same with noise, DGH and real calibration data, one table
  dghcore generate [flags]     only generate images (--output images.npy, --png DIR)
  dghcore quantize [flags]     quantize with given calibration images (--calib images.npy)
  dghcore infer [flags]        run the float model on --input X.npy, write --output Y.npy

Without --model and --checkpoint it runs the embedded Fashion-MNIST resnet20
with a quick preset (%s);
flags given explicitly override it. Long flags take one or two dashes; '-'
and '_' are alike. Ctrl-C stops a run after saving its state under
--state_dir; the same command with --resume continues it.
Exit status: 0 done, 1 failed, 2 input refused, 130 interrupted.
`, strings.Join(preset, ", "))
	for _, g := range groupOrder {
		sub := pflag.NewFlagSet(g, pflag.ContinueOnError)
		sub.SortFlags = false
		fs.VisitAll(func(f *pflag.Flag) {
			if a := f.Annotations["group"]; len(a) == 1 && a[0] == g {
				sub.AddFlag(f)
			}
		})
		fmt.Fprintf(w, "\n%s:\n%s", g, sub.FlagUsagesWrapped(100))
	}
}

// brecqCheckpoints are the file names BRECQ publishes its ImageNet
// checkpoints under, and where.
var brecqCheckpoints = map[string]string{
	"resnet18":     "resnet18_imagenet.pth.tar",
	"resnet50":     "resnet50_imagenet.pth.tar",
	"mobilenet_v2": "mobilenetv2.pth.tar",
}

const brecqReleases = "https://github.com/yhhhli/BRECQ/releases/download/v1.0/"

// findCheckpoint resolves the default checkpoint of an ImageNet model:
// BRECQ's file name in the current folder, then in $DGHCORE_MODELS.
func findCheckpoint(model string) (string, error) {
	file, ok := brecqCheckpoints[model]
	if !ok {
		return "", fmt.Errorf("--checkpoint: model %s has no published checkpoint; give one with --checkpoint FILE", model)
	}
	dirs := []string{"."}
	if d := os.Getenv("DGHCORE_MODELS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, file)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("--checkpoint: %s not found in %s; download it from %s%s or give --checkpoint FILE",
		file, strings.Join(dirs, " or "), brecqReleases, file)
}

// parseFloats reads a comma-separated list such as "0.485,0.456,0.406".
func parseFloats(flag, s string) ([]float32, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]float32, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--%s: %q is not a number", flag, p)
		}
		out[i] = float32(v)
	}
	return out, nil
}

// Commands besides the default full run.
const (
	cmdRun      = ""
	cmdGenerate = "generate"
	cmdQuantize = "quantize"
	cmdInfer    = "infer"
)

// splitCommand takes the sub-command off the front of args, if any.
func splitCommand(args []string) (string, []string) {
	if len(args) > 0 {
		switch args[0] {
		case cmdGenerate, cmdQuantize, cmdInfer:
			return args[0], args[1:]
		case "help":
			return cmdRun, []string{"--help"}
		}
	}
	return cmdRun, args
}

// quickPreset makes the no-argument run finish in a few minutes on two
// cores (docs/DESIGN.md, "Command line"); it applies to the embedded model only, and
// only to the flags not given explicitly.
var quickPreset = []struct{ flag, value string }{
	{"n_images", "128"},
	{"distill_batch_size", "128"},
	{"distill_num_iter", "80"},
	{"num_iterations", "200"},
	{"iters_a", "100"},
	{"eval_images", "2000"},
}

// parseOptions parses the flags of command. pflag.ErrHelp comes back
// unwrapped so the caller can print the usage.
func parseOptions(command string, args []string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, command)
	fs.SetOutput(io.Discard)
	o.fs = fs
	if err := fs.Parse(singleDashLong(fs, args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return o, err
		}
		return nil, usageErrorf("%v (see dghcore --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("unexpected argument %q (commands: generate, quantize, infer; see dghcore --help)", fs.Arg(0))
	}
	if o.embedded() {
		for _, p := range quickPreset {
			if !fs.Changed(p.flag) {
				if err := fs.Set(p.flag, p.value); err != nil {
					return nil, fmt.Errorf("quick preset --%s=%s: %w", p.flag, p.value, err)
				}
			}
		}
	}
	if err := o.check(command); err != nil {
		return nil, err
	}
	return o, nil
}

// embedded reports whether the run uses the model compiled into the
// binary: no model named, or resnet20 without a checkpoint.
func (o *options) embedded() bool {
	return o.checkpoint == "" && (o.model == "" || o.model == assets.ResNet20FashionMNISTModel)
}

// check validates everything that needs no file, so bad input fails in
// the first millisecond (docs/DESIGN.md, "Command line").
func (o *options) check(command string) error {
	if o.model != "" && !slices.Contains(zoo.Names(), o.model) {
		return usageErrorf("unknown model %q (known: %s)", o.model, strings.Join(zoo.Names(), ", "))
	}
	if err := checkBits("weights_n_bits", o.weightsBits); err != nil {
		return err
	}
	if err := checkBits("activation_n_bits", o.activationBits); err != nil {
		return err
	}
	positive := []struct {
		flag string
		v    int
	}{
		{"n_images", o.nImages}, {"distill_batch_size", o.distillBatch}, {"batch_size", o.batchSize},
		{"batch_size_for_calibration", o.calibBatch},
	}
	for _, p := range positive {
		if p.v < 1 {
			return usageErrorf("--%s %d: want at least 1", p.flag, p.v)
		}
	}
	for _, p := range []struct {
		flag string
		v    int
	}{
		{"distill_num_iter", o.distillIters}, {"num_iterations", o.numIterations}, {"iters_a", o.itersA},
		{"eval_images", o.evalImages}, {"distill_image_padding", o.distillPadding}, {"img_size", o.imgSize},
	} {
		if p.v < 0 {
			return usageErrorf("--%s %d: want 0 or more", p.flag, p.v)
		}
	}
	if !slices.Contains(dgh.SourceNames(), o.calibDataType) {
		return usageErrorf("unknown --calib_data_type %q (known: %s)", o.calibDataType, strings.Join(dgh.SourceNames(), ", "))
	}
	if o.bnLossType != "l2_square" {
		return usageErrorf("--distill_bn_loss_type %q: only l2_square is implemented", o.bnLossType)
	}
	if o.schedulerType != "reduce_on_plateau_with_reset" {
		return usageErrorf("--distill_scheduler_type %q: only reduce_on_plateau_with_reset is implemented", o.schedulerType)
	}
	if _, err := parseFloats("mean", o.mean); err != nil {
		return usageErrorf("%v", err)
	}
	if _, err := parseFloats("std", o.std); err != nil {
		return usageErrorf("%v", err)
	}
	if _, err := parseBytes(o.maxMemory); err != nil {
		return usageErrorf("--max_memory: %v", err)
	}
	switch command {
	case cmdGenerate:
		if o.outputPath == "" && o.pngDir == "" {
			return usageErrorf("generate: nothing to write; give --output images.npy and/or --png DIR")
		}
	case cmdQuantize:
		if o.calibPath == "" {
			return usageErrorf("quantize: --calib images.npy is required (make one with dghcore generate)")
		}
	case cmdInfer:
		if o.inputPath == "" || o.outputPath == "" {
			return usageErrorf("infer: --input X.npy and --output Y.npy are required")
		}
	}
	if o.compare && command != cmdRun {
		return usageErrorf("--compare belongs to the full run, not to %s", command)
	}
	if o.compare && (o.outputPath != "" || o.pngDir != "") {
		return usageErrorf("--compare writes no images; drop --output and --png")
	}
	if o.compare && o.calibPath != "" {
		return usageErrorf("--compare makes its own calibration sets; drop --calib")
	}
	return nil
}

func checkBits(flag string, bits int) error {
	if bits < 2 || bits > 8 {
		return usageErrorf("--%s %d: want 2..8", flag, bits)
	}
	return nil
}

// parseBytes reads a size such as "16GiB", "512MB", "2e9" or "0".
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "BbKkMmGgTtIi ")
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a size (examples: 16GiB, 512MB, 0 for no limit)", s)
	}
	scale := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if scale == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	return int64(v * scale), nil
}

// formatBytes prints a size in binary units.
func formatBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), "KMGTPE"
	i := -1
	for v >= unit && i < len(u)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, u[i])
}
