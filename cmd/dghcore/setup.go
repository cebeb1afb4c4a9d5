package main

// Everything a run checks and loads before its long work starts
// (docs/DESIGN.md, "Command line"): the kernels, the model and its
// checkpoint, the input resolution, the normalisation and the images a
// command reads.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/dghcore/dghcore/assets"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// app is one invocation: its options, the loaded inputs and the outputs.
type app struct {
	o       *options
	command string
	out     io.Writer // results
	errOut  io.Writer // the lines above an error that lists several things
	rep     *reporter // progress, on stderr

	kernels                       string
	model                         *zoo.Model
	checkpointPath, checkpointSum string
	channels, classes             int
	size                          int // the input resolution, --img_size or the model's
	norm                          dataset.Normalization

	data       dataset.Dataset // the whole labelled set; nil when none is needed
	eval       dataset.Dataset // the part evaluated on
	dataDesc   string
	dataReport *dataReport
	calibSum   string // --calib's sha256

	state *stateDir
	// phase and position say where a long phase is, for the message of
	// an interruption.
	phase, position string
	// embeddedExport marks an ONNX file exported from the embedded
	// model, which evaluates on the embedded test set by default.
	embeddedExport bool
}

// loadModel initialises the kernels, resolves and reads the checkpoint,
// builds the model, refuses non-finite weights, and settles the input
// resolution and the normalisation.
func (a *app) loadModel() error {
	if err := kernels.Init(); err != nil {
		return usageErrorf("%v", err)
	}
	a.kernels = string(kernels.Active())
	o := a.o
	var data []byte
	switch {
	case isONNXFile(o.model):
		return a.loadONNX()
	case o.embedded():
		data, a.checkpointPath = assets.ResNet20Checkpoint(), "embedded"
	default:
		path := o.checkpoint
		if path == "" {
			var err error
			if path, err = findCheckpoint(o.model); err != nil {
				return usageErrorf("%v", err)
			}
		}
		if st, err := os.Stat(path); err != nil {
			return usageErrorf("--checkpoint %s: %v", path, errorsUnwrapPath(err))
		} else if st.IsDir() {
			return usageErrorf("--checkpoint %s: is a folder, want a PyTorch checkpoint file", path)
		}
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return usageErrorf("--checkpoint %s: %v", path, errorsUnwrapPath(err))
		}
		a.checkpointPath = path
	}
	sum := sha256.Sum256(data)
	a.checkpointSum = hex.EncodeToString(sum[:])
	name := o.model
	if o.embedded() {
		name = assets.ResNet20FashionMNISTModel
	}
	sd, err := torchload.LoadBytes(data)
	switch {
	case o.embedded():
		if err == nil {
			a.model, err = zoo.Build(name, sd)
		}
		if err != nil {
			return fmt.Errorf("embedded model: %w", err)
		}
	case err != nil && name == "":
		return usageErrorf("--checkpoint %s: %v", a.checkpointPath, err)
	case err != nil:
		return usageErrorf("--checkpoint %s is not a %s checkpoint: %v", a.checkpointPath, name, err)
	default:
		if err := a.buildModel(a.checkpointPath, sd); err != nil {
			return err
		}
	}
	if err := layers.CheckValues(a.model.Net); err != nil {
		return usageErrorf("--checkpoint %s: %v", a.checkpointPath, err)
	}
	if a.channels, a.classes, err = modelShape(a.model); err != nil {
		return err
	}
	if err := a.resolveNormalization(); err != nil {
		return err
	}
	if err := a.resolveSize(); err != nil {
		return err
	}
	desc := a.checkpointPath
	if o.embedded() {
		desc = "the embedded Fashion-MNIST checkpoint"
	}
	fmt.Fprintf(a.out, "Model: %s from %s (%d-channel %dx%d input, %s)\n",
		modelLabel(a.model), desc, a.channels, a.size, a.size, plural(a.classes, "class", "classes"))
	fmt.Fprintf(a.out, "Kernels: %s\n", a.kernels)
	return nil
}

// buildModel builds --model from the checkpoint, or without --model the
// architecture the checkpoint's keys and shapes say it holds
// (docs/DESIGN.md, "Models and checkpoints"), and says which it took. A
// checkpoint of another known architecture than --model's is named.
func (a *app) buildModel(path string, sd *torchload.StateDict) (err error) {
	if a.o.model != "" {
		if a.model, err = zoo.Build(a.o.model, sd); err != nil {
			if other, rerr := zoo.Recognize(sd); rerr == nil {
				return usageErrorf("--checkpoint %s holds a %s, not a %s; drop --model or give --model %s", path, modelLabel(other), a.o.model, other.Name)
			}
			return usageErrorf("--checkpoint %s is not a %s checkpoint: %v", path, a.o.model, err)
		}
		return nil
	}
	if a.model, err = zoo.Recognize(sd); err != nil {
		return usageErrorf("--checkpoint %s: %v", path, err)
	}
	fmt.Fprintf(a.out, "Recognised %s (%s layout) from the checkpoint's keys and shapes\n", a.model.Name, a.model.Layout)
	return nil
}

// modelLabel names the model, with its key layout where its name has
// several.
func modelLabel(m *zoo.Model) string {
	if len(zoo.Layouts(m.Name)) > 1 {
		return fmt.Sprintf("%s (%s layout)", m.Name, m.Layout)
	}
	return m.Name
}

// errorsUnwrapPath drops the path an *os.PathError repeats.
func errorsUnwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// modelShape finds the input channels (the first convolution's weight is
// [out, in, kh, kw]) and the class count from the shapes of one image at
// the model's own size.
func modelShape(m *zoo.Model) (channels, classes int, err error) {
	channels = len(m.Spec.Mean)
	for _, t := range layers.StateDict(m.Net) {
		if t.Tensor.Dims() == 4 {
			channels = t.Tensor.Shape[1]
			break
		}
	}
	s := m.Spec.InputSize
	shapes, err := layers.RunShapes(m.Net, channels, s)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: running a %dx%dx%d image: %w", m.Name, channels, s, s, err)
	}
	out := shapes[len(shapes)-1].Out
	if len(out) != 1 {
		return 0, 0, fmt.Errorf("%s: output shape %v for one image, want [classes]", m.Name, out)
	}
	return channels, out[0], nil
}

// resolveSize settles the input resolution: --img_size, else the model's.
// A side the network cannot take is refused, and so is one at which DGH's
// output loss has too few pixels to take a standard deviation over.
func (a *app) resolveSize() error {
	a.size = a.model.Spec.InputSize
	if a.o.imgSize > 0 {
		a.size = a.o.imgSize
	}
	factor := a.dghConfig().OutputLossFactor // 0: the model's, negative: off
	needsStd := a.generatesDGH() && (factor > 0 || factor == 0 && a.model.Spec.OutputLossFactor > 0)
	fits := func(shapes []layers.LeafShape) bool {
		if !needsStd {
			return true
		}
		in, ok := bnInput(shapes, a.model.Spec.LastBN)
		return !ok || len(in) != 3 || in[1]*in[2] >= 2
	}
	shapes, err := layers.ProbeShapes(a.model.Net, a.channels, a.size)
	if err == nil && fits(shapes) {
		return nil
	}
	// Small sides are cheap to run: find the smallest one that works.
	limit := max(a.model.Spec.InputSize, a.size)
	least := layers.MinInputSize(a.model.Net, a.channels, limit, fits)
	why := fmt.Sprintf("%s cannot take %dx%d images", a.model.Name, a.size, a.size)
	if err == nil {
		why = fmt.Sprintf("at %dx%d the input of %s's %s is a single pixel, and DGH's output loss takes a standard deviation over it (or set --output_loss_factor 0)",
			a.size, a.size, a.model.Name, a.model.Spec.LastBN)
	}
	if least > 0 {
		return usageErrorf("--img_size %d: %s; want at least %d", a.size, why, least)
	}
	return usageErrorf("--img_size %d: %s", a.size, why)
}

// bnInput is the input shape of the named BatchNorm among shapes.
func bnInput(shapes []layers.LeafShape, name string) ([]int, bool) {
	for _, l := range shapes {
		if l.Name == name {
			return l.In, true
		}
	}
	return nil, false
}

// generatesDGH reports whether the run generates DGH images.
func (a *app) generatesDGH() bool {
	if a.o.calibPath != "" || a.command == cmdInfer {
		return false
	}
	return a.o.compare || a.o.calibDataType == dgh.SourceDGH
}

// resolveNormalization applies --mean/--std over the model's own.
func (a *app) resolveNormalization() error {
	mean, _ := parseFloats("mean", a.o.mean)
	std, _ := parseFloats("std", a.o.std)
	if mean == nil {
		mean = a.model.Spec.Mean
	}
	if std == nil {
		std = a.model.Spec.Std
	}
	if len(mean) != a.channels || len(std) != a.channels {
		return usageErrorf("--mean/--std: %d means and %d stds for a model with %d input channels", len(mean), len(std), a.channels)
	}
	for c, s := range std {
		if !(s > 0) {
			return usageErrorf("--std: %g for channel %d, want a positive number", s, c)
		}
	}
	a.norm = dataset.Normalization{Mean: mean, Std: std}
	a.model.Spec.Mean, a.model.Spec.Std = mean, std
	return nil
}

// readImages reads the images of --calib or --input: a normalised float32
// N x C x S x S .npy at the model's resolution, every value finite. Other
// element types are refused rather than converted, since a float64 or
// integer array usually means unnormalised or unconverted data.
func (a *app) readImages(flag, path string) (*tensor.Tensor, error) {
	want := fmt.Sprintf("normalised float32 N x %d x %d x %d images for %s at %dx%d (--img_size)",
		a.channels, a.size, a.size, a.model.Name, a.size, a.size)
	arr, err := tensor.ReadNPYArray(path)
	if err != nil {
		return nil, usageErrorf("%s %s: %v", flag, path, errorsUnwrapPath(err))
	}
	if arr.DType != tensor.Float32 {
		return nil, usageErrorf("%s %s holds %s values; want %s (convert with x.astype(numpy.float32))", flag, path, arr.DType, want)
	}
	x := arr.Tensor()
	if x.Dims() != 4 || x.Shape[0] < 1 || x.Shape[1] != a.channels || x.Shape[2] != a.size || x.Shape[3] != a.size {
		hint := ""
		if x.Dims() == 4 && x.Shape[1] == a.channels && x.Shape[2] == x.Shape[3] && x.Shape[2] != a.size {
			hint = fmt.Sprintf(" (for %dx%d images give --img_size %d)", x.Shape[2], x.Shape[3], x.Shape[2])
		}
		return nil, usageErrorf("%s %s: shape %v, want %s%s", flag, path, x.Shape, want, hint)
	}
	for i, v := range x.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			per := len(x.Data) / x.Shape[0]
			return nil, usageErrorf("%s %s: image %d holds %v (value %d); want finite values", flag, path, i/per, v, i%per)
		}
	}
	return x, nil
}

// fileSum is the sha256 of a file, in hex.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// plural writes "1 class" or "3 classes".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
