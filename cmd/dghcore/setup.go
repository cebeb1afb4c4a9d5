package main

// Everything a run checks and loads before its long work starts (docs/DESIGN.md,
// "Command line"): the kernels, the model and its checkpoint, the
// normalisation, the evaluation data and the memory estimate.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dghcore/dghcore/assets"
	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/dataset"
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
	rep     *reporter // progress, on stderr

	model    *zoo.Model
	channels int
	classes  int
	norm     dataset.Normalization
	data     dataset.Dataset // the whole labelled set; nil when none is needed
	eval     dataset.Dataset // the part evaluated on
}

// setup loads and checks what every command needs; needData says whether
// the command evaluates (or may sample real calibration images).
func (a *app) setup(needData bool) error {
	if err := kernels.Init(); err != nil {
		return usageErrorf("%v", err)
	}
	if err := a.loadModel(); err != nil {
		return err
	}
	if err := a.resolveNormalization(); err != nil {
		return err
	}
	if needData {
		if err := a.openData(); err != nil {
			return err
		}
	}
	return nil
}

// loadModel resolves and reads the checkpoint and builds the model.
func (a *app) loadModel() error {
	o := a.o
	var err error
	desc := ""
	switch {
	case o.embedded():
		var sd *torchload.StateDict
		sd, err = torchload.LoadBytes(assets.ResNet20Checkpoint())
		if err == nil {
			a.model, err = zoo.Build(assets.ResNet20FashionMNISTModel, sd)
		}
		if err != nil {
			return fmt.Errorf("embedded model: %w", err)
		}
		desc = "the embedded Fashion-MNIST checkpoint"
	default:
		path := o.checkpoint
		if path == "" {
			if path, err = findCheckpoint(o.model); err != nil {
				return usageErrorf("%v", err)
			}
		}
		if o.model == "" {
			return usageErrorf("--checkpoint %s: say which architecture it holds with --model (%s)", path, strings.Join(zoo.Names(), ", "))
		}
		if st, err := os.Stat(path); err != nil {
			return usageErrorf("--checkpoint %s: %v", path, errorsUnwrapPath(err))
		} else if st.IsDir() {
			return usageErrorf("--checkpoint %s: is a folder, want a PyTorch checkpoint file", path)
		}
		if a.model, err = zoo.Load(o.model, path); err != nil {
			return usageErrorf("--checkpoint %s is not a %s checkpoint: %v", path, o.model, err)
		}
		desc = path
	}
	a.channels, a.classes, err = modelShape(a.model)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Model: %s from %s (%d-channel %dx%d input, %d classes)\n",
		a.model.Name, desc, a.channels, a.model.Spec.InputSize, a.model.Spec.InputSize, a.classes)
	fmt.Fprintf(a.out, "Kernels: %s\n", kernels.Active())
	return nil
}

// errorsUnwrapPath drops the path an *os.PathError repeats.
func errorsUnwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// modelShape finds the input channels and class count by running one
// blank image, which also proves the model works at its input size.
func modelShape(m *zoo.Model) (channels, classes int, err error) {
	channels = len(m.Spec.Mean)
	for _, t := range layers.StateDict(m.Net) {
		if t.Tensor.Dims() == 4 { // the first convolution's weight: [out, in, kh, kw]
			channels = t.Tensor.Shape[1]
			break
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: running a %dx%dx%d image: %v", m.Name, channels, m.Spec.InputSize, m.Spec.InputSize, r)
		}
	}()
	s := m.Spec.InputSize
	out := m.Logits(tensor.New(1, channels, s, s))
	if out.Dims() != 2 {
		return 0, 0, fmt.Errorf("%s: output shape %v, want [1, classes]", m.Name, out.Shape)
	}
	return channels, out.Shape[1], nil
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

// openData opens the labelled set: the embedded Fashion-MNIST test set for
// the embedded model, else --data_path, an ImageNet-style folder or a
// folder of IDX files. One image is decoded as a check.
func (a *app) openData() error {
	o := a.o
	var err error
	desc := ""
	switch {
	case o.dataPath == "" && o.embedded():
		a.data, err = dataset.ReadIDX(bytes.NewReader(assets.FashionMNISTTestImages()),
			bytes.NewReader(assets.FashionMNISTTestLabels()), a.norm, assets.FashionMNISTClasses)
		if err != nil {
			return fmt.Errorf("embedded test set: %w", err)
		}
		desc = "the embedded Fashion-MNIST test set"
	case o.dataPath == "":
		return usageErrorf("--data_path is required for %s: an ImageNet-style folder or a folder of IDX files", a.model.Name)
	default:
		st, serr := os.Stat(o.dataPath)
		if serr != nil {
			return usageErrorf("--data_path %s: %v", o.dataPath, errorsUnwrapPath(serr))
		}
		if !st.IsDir() {
			return usageErrorf("--data_path %s: not a folder", o.dataPath)
		}
		// IDX files hold grey images, class folders are read as RGB.
		idx := isIDXDir(o.dataPath)
		if idx && a.channels != 1 || !idx && a.channels != 3 {
			kind := "an ImageNet-style folder of 3"
			if idx {
				kind = "IDX files of 1"
			}
			return usageErrorf("--data_path %s: %s-channel images for a %d-channel model", o.dataPath, kind, a.channels)
		}
		if idx {
			a.data, err = dataset.OpenIDXDir(o.dataPath, a.norm, nil)
		} else {
			size := a.model.Spec.InputSize
			a.data, err = dataset.OpenFolder(o.dataPath, dataset.FolderOptions{
				Resize: (size*256 + 112) / 224, Crop: size, Norm: a.norm,
			})
		}
		if err != nil {
			return usageErrorf("--data_path %s: %v", o.dataPath, err)
		}
		desc = o.dataPath
	}
	if a.data.Len() == 0 {
		return usageErrorf("--data_path %s: no images", o.dataPath)
	}
	shape := a.data.SampleShape()
	if shape[0] != a.channels {
		return usageErrorf("--data_path %s: %d-channel images for a %d-channel model", desc, shape[0], a.channels)
	}
	if _, _, err := a.data.Load([]int{0}); err != nil {
		return usageErrorf("--data_path %s: %v", desc, err)
	}
	a.eval = a.data
	n := a.data.Len()
	limit := o.evalImages
	if o.debug && (limit == 0 || limit > 1000) {
		limit = 1000
	}
	if limit > 0 && limit < n {
		idx := make([]int, limit)
		for i := range idx {
			idx[i] = i
		}
		if a.eval, err = dataset.Subset(a.data, idx); err != nil {
			return err
		}
	}
	evaluated := ""
	if a.command != cmdGenerate {
		evaluated = fmt.Sprintf(", evaluating on %d", a.eval.Len())
	}
	fmt.Fprintf(a.out, "Data: %s, %d images of %dx%dx%d in %d classes%s\n",
		desc, n, shape[0], shape[1], shape[2], len(a.data.Classes()), evaluated)
	return nil
}

// isIDXDir reports whether dir holds an MNIST-style test split.
func isIDXDir(dir string) bool {
	for _, name := range []string{"t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// activationSizes runs one image through the model and returns the sum
// and the largest of the values its leaf modules output.
func activationSizes(m *zoo.Model, channels, size int) (sum, largest int64) {
	var removes []func()
	for _, nm := range layers.NamedModules(m.Net) {
		if _, ok := nm.Module.(layers.Container); ok {
			continue
		}
		if h, ok := nm.Module.(layers.Hookable); ok {
			removes = append(removes, h.AddHook(func(_ layers.Module, _, out *autograd.Var) {
				n := int64(out.Value.Numel())
				sum += n
				largest = max(largest, n)
			}))
		}
	}
	m.Logits(tensor.New(1, channels, size, size))
	for _, r := range removes {
		r()
	}
	return sum, largest
}

// parameterCount is the number of values in the model's state.
func parameterCount(m *zoo.Model) int64 {
	var n int64
	for _, t := range layers.StateDict(m.Net) {
		n += int64(t.Tensor.Numel())
	}
	return n
}
